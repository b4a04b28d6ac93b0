//! The model build, incremental in HTTPRoutes: a route whose revision did not change keeps its
//! contribution, and a Gateway none of whose routes changed keeps its model (the same `Arc`, so
//! the engine skips translating it). Any change to another kind rebuilds everything: every
//! route's resolution may read it, and such changes are rare next to route churn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::contribution::{self, Contribution};
use super::types::{
    ClusterKey, ClusterModel, GatewayModel, PortModel, Provider, RouteModel, VirtualHostModel,
};
use super::{Model, ModelConfig, Status, extensions, gateways, matches, policy, route_cache};
use crate::store::{ObjKey, Store};

/// Routes of one virtual host while they are collected: listener name and (route, created).
type HostRoutes<'a> = (String, Vec<(&'a Arc<RouteModel>, &'a Arc<str>)>);

/// Builds models, reusing what the previous build computed from unchanged inputs.
#[derive(Debug, Default)]
pub struct Builder {
    /// Store context revision and config the memos below were computed with.
    context: Option<(u64, ModelConfig)>,
    /// What the context alone decides, computed once per context.
    base: Option<Base>,
    /// Contributions of the previous build's routes, sorted by key.
    routes: Vec<Arc<Contribution>>,
    /// Each Gateway's model, with the revisions of the routes it was assembled from.
    gateways: BTreeMap<ObjKey, (Vec<u64>, Arc<GatewayModel>)>,
    /// The previous build's policy status, before route-cache warnings.
    policy_status: Option<BTreeMap<ObjKey, Arc<Vec<super::PolicyAncestorStatus>>>>,
}

/// Everything a build derives from the store context (every kind but HTTPRoute).
#[derive(Debug)]
struct Base {
    /// GatewayClass and GatewayExtension status.
    status: Status,
    infos: Vec<gateways::GatewayInfo>,
    served: BTreeSet<ObjKey>,
    providers: BTreeMap<ObjKey, extensions::ProviderResult>,
    policies: policy::PolicyIndex,
    /// HTTPRoutes some policy targets.
    targeted: BTreeSet<ObjKey>,
    /// Valid providers attached to each Gateway's ports as a whole, by Gateway index.
    attached: Vec<BTreeMap<u16, BTreeSet<ObjKey>>>,
}

impl Base {
    fn new(store: &Store, config: &ModelConfig) -> Self {
        let mut status = Status::default();
        let owned = gateways::owned_classes(store, config, &mut status);
        let infos = gateways::gateways(store, config, &owned);
        let providers = extensions::providers(store, &mut status);
        let policies = policy::PolicyIndex::build(store, &providers);
        let attached = infos
            .iter()
            .map(|info| {
                let mut attached: BTreeMap<u16, BTreeSet<ObjKey>> = BTreeMap::new();
                for l in info.listeners.iter().filter(|l| l.valid) {
                    attached
                        .entry(l.port)
                        .or_default()
                        .extend(policies.listener_providers(&info.key, &l.name));
                }
                attached
            })
            .collect();
        Base {
            status,
            served: infos.iter().map(|g| g.key.clone()).collect(),
            infos,
            providers,
            targeted: policies.targeted_routes(),
            policies,
            attached,
        }
    }
}

impl Builder {
    /// Builds the model of `store`; equal to a fresh [`super::build`] of it.
    pub fn build(&mut self, store: &Store, config: &ModelConfig) -> Model {
        let context = (store.context_revision(), config.clone());
        if self.context.as_ref() != Some(&context) {
            *self = Builder {
                context: Some(context),
                ..Builder::default()
            };
        }
        let mut base = self.base.take().unwrap_or_else(|| Base::new(store, config));
        let mut status = base.status.clone();
        let decided_before = base.policies.take_decisions();

        let (routes, changed) = self.contributions(
            store,
            &contribution::Context {
                store,
                gateways: &base.infos,
                policies: &base.policies,
                report_unknown: config.accept_unknown_classes,
            },
        );
        let infos = &base.infos;
        let mut attached_counts: Vec<Vec<i32>> =
            infos.iter().map(|g| vec![0; g.listeners.len()]).collect();
        let mut per_gateway: Vec<Vec<&Contribution>> = vec![Vec::new(); infos.len()];
        let mut route_status = Vec::with_capacity(routes.len());
        for c in &routes {
            if !c.decisions.is_empty() {
                base.policies.record(&c.decisions);
            }
            for &(g, l) in &c.listeners {
                attached_counts[g][l] += 1;
            }
            for &g in &c.gateways {
                per_gateway[g].push(c);
            }
            if let Some(s) = &c.status {
                route_status.push((c.key.clone(), s.clone()));
            }
        }
        // Sorted already: collecting builds the map in one pass, inserting searched per route.
        status.http_routes = route_status.into_iter().collect();

        // A policy's status reads the decisions and the parents of the routes it targets.
        let kept = self.policy_status.take().filter(|_| {
            base.policies.decisions_are(&decided_before)
                && !changed.iter().any(|k| base.targeted.contains(&**k))
        });
        match kept {
            Some(kept) => status.traffic_policies = kept,
            None => {
                let parents = |key: &ObjKey| {
                    routes
                        .binary_search_by(|c| (*c.key).cmp(key))
                        .ok()
                        .map(|i| &routes[i].parents)
                };
                base.policies
                    .finish_status(store, parents, &base.served, &mut status);
            }
        }
        self.policy_status = Some(status.traffic_policies.clone());

        let mut previous = std::mem::take(&mut self.gateways);
        let mut models = Vec::with_capacity(infos.len());
        for (i, info) in infos.iter().enumerate() {
            gateways::finish_status(store, info, &attached_counts[i], &mut status);
            let signature: Vec<u64> = per_gateway[i].iter().map(|c| c.revision).collect();
            let model = match previous.remove(&info.key) {
                Some((old, model)) if old == signature => model,
                _ => Arc::new(assemble(
                    i,
                    info,
                    &per_gateway[i],
                    &base.providers,
                    &base.attached[i],
                )),
            };
            self.gateways
                .insert(info.key.clone(), (signature, model.clone()));
            models.push(model);
        }
        route_cache::warn(&models, &mut status);
        drop(per_gateway);
        self.routes = routes;
        self.base = Some(base);
        Model {
            gateways: models,
            status,
        }
    }

    /// Every route's contribution, reusing the previous build's where the route is unchanged;
    /// also the keys of routes added, changed or removed since.
    fn contributions(
        &mut self,
        store: &Store,
        cx: &contribution::Context<'_>,
    ) -> (Vec<Arc<Contribution>>, Vec<Arc<ObjKey>>) {
        let mut old = std::mem::take(&mut self.routes).into_iter().peekable();
        let mut out = Vec::with_capacity(store.http_routes.len());
        let mut changed = Vec::new();
        for (key, route, revision) in store.http_routes_with_revisions() {
            // A revision names one version of one route, so an equal one is a match, and the
            // common case costs no key comparison.
            if let Some(c) = old.next_if(|c| revision != 0 && c.revision == revision) {
                out.push(c);
                continue;
            }
            while let Some(gone) = old.next_if(|c| *c.key <= *key) {
                changed.push(gone.key.clone());
            }
            let fresh = Arc::new(contribution::compute(cx, key, route, revision));
            changed.push(fresh.key.clone());
            out.push(fresh);
        }
        changed.extend(old.map(|gone| gone.key.clone()));
        (out, changed)
    }
}

/// Puts one Gateway's model together from the contributions of the routes attached to it.
fn assemble(
    index: usize,
    info: &gateways::GatewayInfo,
    routes: &[&Contribution],
    providers: &BTreeMap<ObjKey, extensions::ProviderResult>,
    attached: &BTreeMap<u16, BTreeSet<ObjKey>>,
) -> GatewayModel {
    // port → hostname → routes
    let mut hosts: BTreeMap<u16, BTreeMap<String, HostRoutes>> = BTreeMap::new();
    let mut clusters: BTreeMap<ClusterKey, ClusterModel> = BTreeMap::new();
    let mut inline: BTreeMap<&ObjKey, &(Provider, ClusterModel)> = BTreeMap::new();
    for c in routes {
        for e in c.entries.iter().filter(|e| e.gateway == index) {
            hosts
                .entry(e.port)
                .or_default()
                .entry(e.hostname.clone())
                .or_insert_with(|| (e.listener.clone(), Vec::new()))
                .1
                .push((&e.route, &e.created));
        }
        for (_, cluster) in c.clusters.iter().filter(|(g, _)| *g == index) {
            // Many routes share a backend: clone its endpoints once.
            clusters
                .entry(cluster.key.clone())
                .or_insert_with(|| cluster.clone());
        }
        for (key, p) in &c.inline_providers {
            inline.entry(key).or_insert(p);
        }
    }
    // A GatewayExtension wins over a route's inline provider of the same name.
    let lookup = |key: &ObjKey| match providers.get(key) {
        Some(found) => found.as_ref().ok(),
        None => inline.get(key).copied(),
    };

    let mut used = BTreeMap::new();
    let mut ports = Vec::new();
    // Valid listeners with no routes still get an Envoy listener, so the port answers 404.
    let mut all_ports: BTreeSet<u16> = info
        .listeners
        .iter()
        .filter(|l| l.valid)
        .map(|l| l.port)
        .collect();
    all_ports.extend(hosts.keys().copied());
    for port in all_ports {
        let mut port_providers = BTreeSet::new();
        let mut use_provider = |key: &ObjKey| {
            if let Some((p, c)) = lookup(key) {
                port_providers.insert(key.clone());
                used.insert(key.clone(), p.clone());
                clusters.insert(c.key.clone(), c.clone());
            }
        };
        for provider in attached.get(&port).into_iter().flatten() {
            use_provider(provider);
        }
        let mut virtual_hosts = Vec::new();
        for (hostname, (listener, mut routes)) in hosts.remove(&port).unwrap_or_default() {
            routes.sort_by(|(a, ca), (b, cb)| matches::precedence((a, ca), (b, cb)));
            let routes: Vec<Arc<RouteModel>> = routes.into_iter().map(|(r, _)| r.clone()).collect();
            for r in &routes {
                if let super::RouteAuth::Enabled { provider, .. } = &r.auth {
                    use_provider(provider);
                }
            }
            virtual_hosts.push(VirtualHostModel {
                hostname,
                listener,
                routes,
            });
        }
        ports.push(PortModel {
            port,
            virtual_hosts,
            providers: port_providers,
        });
    }
    GatewayModel {
        key: info.key.clone(),
        ports,
        clusters,
        providers: used,
    }
}
