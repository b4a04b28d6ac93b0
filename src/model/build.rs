//! The model build, incremental in HTTPRoutes: the store's route history names the routes
//! changed since the last build, only those get a new contribution, and a Gateway none of whose
//! routes changed keeps its model (the same `Arc`, so the engine skips translating it). Any change to another kind rebuilds everything: every
//! route's resolution may read it, and such changes are rare next to route churn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::assembly::Assembly;
use super::conditions::{PolicyAncestorStatus, RouteStatusMap};
use super::contribution::{self, Contribution, ListenerAt};
use super::cross_serving::{self, CrossServing};
use super::types::GatewayModel;
use super::{Model, ModelConfig, Status, extensions, gateways, policy, route_cache};
use crate::store::{Kind, ObjKey, ObjectRef, RouteCursor, Store};

/// Builds models, reusing what the previous build computed from unchanged inputs.
#[derive(Debug, Default)]
pub struct Builder {
    /// Store context revision and config the state below was computed with.
    context: Option<(u64, ModelConfig)>,
    state: Option<State>,
    /// Routes the last build resolved.
    resolved: usize,
    /// Certificates of HTTPS listeners, parsed once per Secret content.
    certificates: super::tls::CertificateCache,
}

/// What a build keeps for the next one; valid for one store context.
#[derive(Debug)]
struct State {
    base: Base,
    /// Where in the store's route history `routes` is.
    cursor: RouteCursor,
    /// Every route's contribution, sorted by key.
    routes: Vec<Arc<Contribution>>,
    /// Routes attached through each listener, by Gateway and listener index.
    attached_counts: Vec<Vec<i32>>,
    /// The routes attached to each Gateway, arranged for its model.
    assemblies: Vec<Assembly>,
    /// Each Gateway's model; `None` once a route of it changed.
    models: Vec<Option<Arc<GatewayModel>>>,
    /// Route status, HTTPRoutes and GRPCRoutes apart (the status has a map for each).
    http_status: RouteStatusMap,
    grpc_status: RouteStatusMap,
    /// Where HTTPRoutes and GRPCRoutes share hostnames on a listener, and which lost.
    cross: CrossServing,
    /// The contributions of the routes that lose somewhere, as computed (before
    /// [`cross_serving::served`] took out where they lost); the others' are in `routes`.
    computed_losers: BTreeMap<Arc<ObjectRef>, Arc<Contribution>>,
    /// Policy status before route-cache warnings; `None` once a decision or a targeted route
    /// changed.
    policy_status: Option<BTreeMap<ObjKey, Arc<Vec<PolicyAncestorStatus>>>>,
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
    /// Routes some policy targets.
    targeted: BTreeSet<ObjectRef>,
    /// Valid providers attached to each Gateway's ports as a whole, by Gateway index.
    attached: Vec<BTreeMap<u16, BTreeSet<ObjKey>>>,
}

impl Base {
    fn new(
        store: &Store,
        config: &ModelConfig,
        certificates: &super::tls::CertificateCache,
    ) -> Self {
        certificates.next_build();
        let mut status = Status::default();
        let owned = gateways::owned_classes(store, config, &mut status);
        let infos = gateways::gateways(store, config, &owned, certificates);
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

impl State {
    /// No routes yet: the first build takes every route as a change.
    fn new(
        store: &Store,
        config: &ModelConfig,
        certificates: &super::tls::CertificateCache,
    ) -> Self {
        let base = Base::new(store, config, certificates);
        let gateways = base.infos.len();
        State {
            attached_counts: base
                .infos
                .iter()
                .map(|g| vec![0; g.listeners.len()])
                .collect(),
            assemblies: (0..gateways).map(|_| Assembly::default()).collect(),
            models: vec![None; gateways],
            base,
            cursor: RouteCursor::default(),
            routes: Vec::new(),
            http_status: RouteStatusMap::new(),
            grpc_status: RouteStatusMap::new(),
            cross: CrossServing::default(),
            computed_losers: BTreeMap::new(),
            policy_status: None,
        }
    }

    /// The contribution of `key` as computed, whether it is served as is or not.
    fn computed(&self, key: &ObjectRef) -> Option<Arc<Contribution>> {
        if let Some(c) = self.computed_losers.get(key) {
            return Some(c.clone());
        }
        let i = self.routes.binary_search_by(|c| (*c.key).cmp(key)).ok()?;
        Some(self.routes[i].clone())
    }

    /// Takes the freshly computed contributions (`None`: the route is gone), decides again
    /// the listeners they were or are on, and serves each affected route as decided.
    fn take(&mut self, fresh: Vec<(&ObjectRef, Option<Arc<Contribution>>)>) {
        let mut touched: BTreeSet<ListenerAt> = BTreeSet::new();
        let mut pending: BTreeMap<Arc<ObjectRef>, Option<Arc<Contribution>>> = BTreeMap::new();
        for (key, c) in fresh {
            if let Some(old) = self.computed(key) {
                touched.extend(self.cross.remove(&old));
            }
            if let Some(new) = &c {
                touched.extend(self.cross.add(new));
            }
            pending.insert(Arc::new(key.clone()), c);
        }
        for route in self.cross.decide(&touched) {
            if let std::collections::btree_map::Entry::Vacant(e) = pending.entry(route) {
                let computed = self.computed(e.key());
                e.insert(computed);
            }
        }
        for (key, computed) in pending {
            let served = computed.map(|c| {
                let lost = self.cross.losses(&key);
                if lost.is_some() {
                    self.computed_losers.insert(key.clone(), c.clone());
                } else {
                    self.computed_losers.remove(&key);
                }
                cross_serving::served(&c, lost, &self.base.infos)
            });
            if served.is_none() {
                self.computed_losers.remove(&key);
            }
            self.replace(&key, served);
        }
    }

    fn route_status(&mut self, kind: Kind) -> &mut RouteStatusMap {
        match kind {
            Kind::GrpcRoute => &mut self.grpc_status,
            _ => &mut self.http_status,
        }
    }

    /// Takes `key`'s new contribution (`None`: the route is gone) in place of its old one.
    fn replace(&mut self, key: &ObjectRef, fresh: Option<Arc<Contribution>>) {
        let old = match (self.routes.binary_search_by(|c| (*c.key).cmp(key)), &fresh) {
            (Ok(i), Some(f)) => Some(std::mem::replace(&mut self.routes[i], f.clone())),
            (Ok(i), None) => Some(self.routes.remove(i)),
            (Err(i), Some(f)) => {
                self.routes.insert(i, f.clone());
                None
            }
            (Err(_), None) => None,
        };
        if let Some(old) = old {
            for &((g, l), _) in &old.attachments {
                self.attached_counts[g][l] -= 1;
            }
            for &g in &old.gateways {
                self.assemblies[g].remove(&old, g);
                self.models[g] = None;
            }
            self.route_status(old.key.kind).remove(&old.key.key);
            if self.base.policies.forget(&old.decisions) || !old.extension_refs.is_empty() {
                self.policy_status = None;
            }
        }
        if let Some(c) = fresh {
            for &((g, l), _) in &c.attachments {
                self.attached_counts[g][l] += 1;
            }
            for &g in &c.gateways {
                self.assemblies[g].add(&c, g);
                self.models[g] = None;
            }
            if let Some(s) = &c.status {
                let route = Arc::new(c.key.key.clone());
                self.route_status(c.key.kind).insert(route, s.clone());
            }
            if self.base.policies.record(&c.decisions) || !c.extension_refs.is_empty() {
                self.policy_status = None;
            }
        }
        // A policy's status reads the parents of the routes it targets or selects.
        if self.base.targeted.contains(key)
            || self.base.policies.selects_routes_in(&key.key.namespace)
        {
            self.policy_status = None;
        }
    }
}

impl Builder {
    /// How many HTTPRoutes the last build resolved: the changed ones, or all of them.
    pub fn last_resolved(&self) -> usize {
        self.resolved
    }

    /// Builds the model of `store`; equal to a fresh [`super::build`] of it. Visits only the
    /// routes changed since the last build, and assembles only the Gateways they touch.
    pub fn build(&mut self, store: &Store, config: &ModelConfig) -> Model {
        let context = (store.context_revision(), config.clone());
        if self.context.as_ref() != Some(&context) {
            self.context = Some(context);
            self.state = None;
        }
        let mut state = self
            .state
            .take()
            .unwrap_or_else(|| State::new(store, config, &self.certificates));
        let all;
        let changes = match store.route_changes(state.cursor) {
            Some(changes) => changes,
            None => {
                // Another store, or too far behind its history: start from no routes.
                if !state.routes.is_empty() {
                    state = State::new(store, config, &self.certificates);
                }
                all = store.routes();
                all.iter().map(|(key, route)| (key, Some(*route))).collect()
            }
        };
        let cx = contribution::Context {
            store,
            gateways: &state.base.infos,
            policies: &state.base.policies,
            report_unknown: config.accept_unknown_classes,
        };
        let fresh: Vec<_> = changes
            .into_iter()
            .map(|(key, now)| {
                let c = now.map(|route| Arc::new(contribution::compute(&cx, key, route)));
                (key, c)
            })
            .collect();
        self.resolved = fresh.len();
        state.take(fresh);
        state.cursor = store.route_cursor();

        let mut status = state.base.status.clone();
        status.http_routes = state.http_status.clone();
        status.grpc_routes = state.grpc_status.clone();
        match &state.policy_status {
            Some(kept) => status.traffic_policies = kept.clone(),
            None => {
                let routes = &state.routes;
                let parents = |key: &ObjectRef| {
                    routes
                        .binary_search_by(|c| (*c.key).cmp(key))
                        .ok()
                        .map(|i| &routes[i].parents)
                };
                let mut referrers: BTreeMap<ObjKey, BTreeSet<ObjectRef>> = BTreeMap::new();
                for c in routes {
                    for policy in &c.extension_refs {
                        referrers
                            .entry(policy.clone())
                            .or_default()
                            .insert((*c.key).clone());
                    }
                }
                let base = &state.base;
                let counts = &state.attached_counts;
                let has_routes = |gateway: &ObjKey, listener: Option<&str>| {
                    let Some(g) = base.infos.iter().position(|i| i.key == *gateway) else {
                        return false;
                    };
                    base.infos[g]
                        .listeners
                        .iter()
                        .zip(&counts[g])
                        .any(|(l, n)| *n > 0 && listener.is_none_or(|name| l.name == name))
                };
                base.policies.finish_status(
                    store,
                    parents,
                    has_routes,
                    &base.served,
                    &referrers,
                    &mut status,
                );
                state.policy_status = Some(status.traffic_policies.clone());
            }
        }

        let base = &state.base;
        let mut models = Vec::with_capacity(base.infos.len());
        for (i, info) in base.infos.iter().enumerate() {
            gateways::finish_status(store, info, &state.attached_counts[i], &mut status);
            let assembly = &mut state.assemblies[i];
            let model = state.models[i].get_or_insert_with(|| {
                Arc::new(assembly.model(info, &base.providers, &base.attached[i]))
            });
            models.push(model.clone());
        }
        route_cache::warn(&models, &mut status);
        if !store.backend_tls_policies.is_empty() {
            status.backend_tls_policies = backend_tls_status(store, &models, &state.base.served);
        }
        self.state = Some(state);
        Model {
            gateways: models,
            status,
        }
    }
}

/// What BackendTLSPolicy status reads of a route of either kind.
struct RouteRefs<'a> {
    kind: &'static str,
    key: &'a ObjKey,
    /// parentRefs as (kind, namespace, name).
    parents: Vec<(Option<&'a str>, Option<&'a str>, &'a str)>,
    /// backendRefs as (namespace, name).
    backends: Vec<(Option<&'a str>, &'a str)>,
}

/// BackendTLSPolicy status, for the served Gateways whose clusters, or whose routes'
/// backendRefs, use a Service a policy targets (a route whose backend an invalid policy
/// refused has no cluster to show it).
fn backend_tls_status(
    store: &Store,
    models: &[Arc<GatewayModel>],
    served: &BTreeSet<ObjKey>,
) -> BTreeMap<ObjKey, Arc<Vec<super::conditions::PolicyAncestorStatus>>> {
    let mut users: BTreeMap<ObjKey, BTreeSet<ObjKey>> = BTreeMap::new();
    for m in models {
        for c in m.clusters.values() {
            users
                .entry(c.service.clone())
                .or_default()
                .insert(m.key.clone());
        }
    }
    // Gateways of each route (HTTPRoute or GRPCRoute, by kind and key), for the auth
    // services below too.
    let mut routes: Vec<RouteRefs<'_>> = Vec::new();
    // The two kinds' types differ, their fields are the same.
    macro_rules! refs_of {
        ($kind:literal, $map:expr) => {
            for (key, r) in $map {
                let parents = r.spec.parent_refs.iter().flatten();
                let rules = r.spec.rules.iter().flatten();
                routes.push(RouteRefs {
                    kind: $kind,
                    key,
                    parents: parents
                        .map(|p| (p.kind.as_deref(), p.namespace.as_deref(), p.name.as_str()))
                        .collect(),
                    backends: rules
                        .flat_map(|rule| rule.backend_refs.iter().flatten())
                        .map(|b| (b.namespace.as_deref(), b.name.as_str()))
                        .collect(),
                });
            }
        };
    }
    refs_of!("HTTPRoute", &store.http_routes);
    refs_of!("GRPCRoute", &store.grpc_routes);
    let mut route_gateways: BTreeMap<(&str, &ObjKey), Vec<ObjKey>> = BTreeMap::new();
    for RouteRefs {
        kind,
        key,
        parents,
        backends,
    } in routes
    {
        let gateways: Vec<ObjKey> = parents
            .into_iter()
            .filter(|(k, _, _)| k.unwrap_or("Gateway") == "Gateway")
            .map(|(_, ns, name)| ObjKey::new(ns.unwrap_or(&key.namespace), name))
            .filter(|g| served.contains(g))
            .collect();
        for (ns, name) in backends {
            let svc = ObjKey::new(ns.unwrap_or(&key.namespace), name);
            users
                .entry(svc)
                .or_default()
                .extend(gateways.iter().cloned());
        }
        route_gateways.insert((kind, key), gateways);
    }
    // An auth service is used by the Gateways its TrafficPolicies target (directly or through
    // a route): a provider an invalid policy broke has no cluster to show it.
    for (key, policy) in &store.traffic_policies {
        let Some(ext) = policy
            .spec
            .ext_auth
            .as_ref()
            .and_then(|a| a.extension_ref.as_ref())
        else {
            continue;
        };
        let ext_key = ObjKey::new(
            ext.namespace
                .clone()
                .unwrap_or_else(|| key.namespace.clone()),
            ext.name.clone(),
        );
        let Some(provider) = store
            .gateway_extensions
            .get(&ext_key)
            .and_then(|e| e.spec.ext_auth.as_ref())
        else {
            continue;
        };
        let backend = provider
            .grpc_service
            .as_ref()
            .map(|g| &g.backend_ref)
            .or(provider.http_service.as_ref().map(|h| &h.backend_ref));
        let Some(b) = backend else { continue };
        let svc = ObjKey::new(
            b.namespace
                .clone()
                .unwrap_or_else(|| ext_key.namespace.clone()),
            b.name.clone(),
        );
        for t in &policy.spec.target_refs {
            let target = ObjKey::new(key.namespace.clone(), t.name.clone());
            let gateways = match t.kind.as_str() {
                "Gateway" => vec![target]
                    .into_iter()
                    .filter(|g| served.contains(g))
                    .collect(),
                kind @ ("HTTPRoute" | "GRPCRoute") => route_gateways
                    .get(&(kind, &target))
                    .cloned()
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            users.entry(svc.clone()).or_default().extend(gateways);
        }
    }
    super::backend_tls::statuses(store, |svc| {
        users.get(svc).into_iter().flatten().cloned().collect()
    })
}
