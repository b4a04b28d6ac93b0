//! Resolves references, attaches routes and policies, and computes status — as data.
//!
//! Pure: no I/O, no async. [`build`] turns a [`Store`] into the [`Model`] the translator reads.

mod conditions;
mod extensions;
mod external_auth;
mod filters;
#[cfg(test)]
mod filters_tests;
mod gateways;
mod hostname;
mod matches;
pub mod parameters;
mod policy;
mod refs;
mod route_cache;
mod routes;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use conditions::{
    AncestorRef, Condition, GatewayStatus, ListenerStatus, ParentRef, PolicyAncestorStatus,
    RouteParentStatus, Status, find,
};
pub use filters::{HeaderEdits, Mirror, PathRewrite, Redirect, Retry, Rewrite, RouteFilters};
pub use types::*;

use crate::store::{ObjKey, Store};

/// Default `controllerName` of GatewayClasses Gatehouse owns.
pub const DEFAULT_CONTROLLER_NAME: &str = "gatehouse.dev/gatehouse";

/// Status code of a route whose deciding auth policy is broken (fail closed).
pub const FAIL_CLOSED_STATUS: u32 = 500;

/// How the model treats its input.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// GatewayClasses with this `controllerName` are Gatehouse's.
    pub controller_name: String,
    /// Serve Gateways whose GatewayClass is not in the store (manifest directories often carry
    /// no GatewayClass); a cluster controller leaves this off.
    pub accept_unknown_classes: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            controller_name: DEFAULT_CONTROLLER_NAME.into(),
            accept_unknown_classes: true,
        }
    }
}

/// Everything computed from one store.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Served Gateways, sorted by key.
    pub gateways: Vec<GatewayModel>,
    pub status: Status,
}

impl Model {
    /// The model of one Gateway.
    pub fn gateway(&self, key: &ObjKey) -> Option<&GatewayModel> {
        self.gateways.iter().find(|g| &g.key == key)
    }
}

/// Routes of one virtual host while they are collected: listener name and (route, created).
type HostRoutes = (String, Vec<(RouteModel, String)>);

/// Builds the model.
pub fn build(store: &Store, config: &ModelConfig) -> Model {
    let mut status = Status::default();
    let owned = gateways::owned_classes(store, config, &mut status);
    let infos = gateways::gateways(store, config, &owned);
    let mut providers = extensions::providers(store, &mut status);
    let mut policies = policy::PolicyIndex::build(store, &providers);

    let mut attached_counts: Vec<Vec<i32>> =
        infos.iter().map(|g| vec![0; g.listeners.len()]).collect();
    // gateway index → port → hostname → routes
    let mut hosts: Vec<BTreeMap<u16, BTreeMap<String, HostRoutes>>> =
        vec![BTreeMap::new(); infos.len()];
    let mut clusters: Vec<BTreeMap<ClusterKey, ClusterModel>> = vec![BTreeMap::new(); infos.len()];
    let mut route_parents: BTreeMap<ObjKey, BTreeSet<ObjKey>> = BTreeMap::new();

    for (key, route) in &store.http_routes {
        let (attachments, mut parent_status) =
            routes::attach(store, key, route, &infos, config.accept_unknown_classes);
        let created = route
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let rules = route.spec.rules.clone().unwrap_or_default();
        let resolved: Vec<_> = rules
            .iter()
            .map(|r| routes::rule_action(store, key, r))
            .collect();
        let inline: Vec<_> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| external_auth::resolve(store, key, r, i))
            .collect();
        let inline_error = inline.iter().flatten().find_map(|(_, r)| r.as_ref().err());
        let refs_condition = match resolved
            .iter()
            .find_map(|r| r.error.as_ref())
            .or(inline_error)
        {
            Some(e) => Condition::fail("ResolvedRefs", e.reason, e.message.clone()),
            None => Condition::ok("ResolvedRefs", "ResolvedRefs", "all backendRefs resolved"),
        };
        for p in &mut parent_status {
            p.conditions.push(refs_condition.clone());
        }
        if !parent_status.is_empty() {
            status.http_routes.insert(key.clone(), parent_status);
        }
        for a in &attachments {
            let gw = &infos[a.gateway];
            let listener = &gw.listeners[a.listener];
            attached_counts[a.gateway][a.listener] += 1;
            route_parents
                .entry(key.clone())
                .or_default()
                .insert(gw.key.clone());
            for (rule_index, (rule, resolution)) in rules.iter().zip(&resolved).enumerate() {
                let routes::RuleResolution {
                    action,
                    filters,
                    clusters: rule_clusters,
                    ..
                } = resolution;
                // An ExternalAuth filter is part of the rule: it decides ahead of any policy.
                let auth = match &inline[rule_index] {
                    Some((provider, Ok(p))) => {
                        providers
                            .entry(provider.clone())
                            .or_insert_with(|| Ok(p.clone()));
                        RouteAuth::Enabled {
                            provider: provider.clone(),
                            policy: key.clone(),
                            context_extensions: Default::default(),
                            with_request_body: None,
                        }
                    }
                    Some((_, Err(e))) => RouteAuth::FailClosed {
                        policy: key.clone(),
                        reason: format!("ExternalAuth filter: {}: {}", e.reason, e.message),
                    },
                    None => policies.decide(&gw.key, &listener.name, key, rule.name.as_deref()),
                };
                let action = match &auth {
                    RouteAuth::FailClosed { .. } => RouteAction::Respond {
                        status: FAIL_CLOSED_STATUS,
                        body: "external authorization is misconfigured for this route\n".into(),
                    },
                    _ => action.clone(),
                };
                if matches!(action, RouteAction::Forward(_)) {
                    for c in rule_clusters {
                        // Many routes share a backend: clone its endpoints once.
                        clusters[a.gateway]
                            .entry(c.key.clone())
                            .or_insert_with(|| c.clone());
                    }
                }
                for (match_index, m) in matches::rule_matches(rule.matches.as_ref())
                    .into_iter()
                    .enumerate()
                {
                    let model = RouteModel {
                        route: key.clone(),
                        rule_index,
                        rule_name: rule.name.clone(),
                        match_index,
                        matches: m,
                        action: action.clone(),
                        filters: filters.clone(),
                        auth: auth.clone(),
                    };
                    for host in &a.hostnames {
                        hosts[a.gateway]
                            .entry(listener.port)
                            .or_default()
                            .entry(host.clone())
                            .or_insert_with(|| (listener.name.clone(), Vec::new()))
                            .1
                            .push((model.clone(), created.clone()));
                    }
                }
            }
        }
    }

    let served: BTreeSet<ObjKey> = infos.iter().map(|g| g.key.clone()).collect();
    policies.finish_status(store, &route_parents, &served, &mut status);

    let mut models = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        gateways::finish_status(store, info, &attached_counts[i], &mut status);
        let mut attached: BTreeMap<u16, BTreeSet<ObjKey>> = BTreeMap::new();
        for l in info.listeners.iter().filter(|l| l.valid) {
            attached
                .entry(l.port)
                .or_default()
                .extend(policies.listener_providers(&info.key, &l.name));
        }
        models.push(gateway_model(
            info,
            std::mem::take(&mut hosts[i]),
            std::mem::take(&mut clusters[i]),
            &providers,
            &attached,
        ));
    }
    route_cache::warn(&models, &mut status);
    Model {
        gateways: models,
        status,
    }
}

fn gateway_model(
    info: &gateways::GatewayInfo,
    hosts: BTreeMap<u16, BTreeMap<String, HostRoutes>>,
    mut clusters: BTreeMap<ClusterKey, ClusterModel>,
    providers: &BTreeMap<ObjKey, extensions::ProviderResult>,
    attached: &BTreeMap<u16, BTreeSet<ObjKey>>,
) -> GatewayModel {
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
    let mut hosts = hosts;
    for port in all_ports {
        let mut port_providers = BTreeSet::new();
        for provider in attached.get(&port).into_iter().flatten() {
            if let Some(Ok((p, c))) = providers.get(provider) {
                port_providers.insert(provider.clone());
                used.insert(provider.clone(), p.clone());
                clusters.insert(c.key.clone(), c.clone());
            }
        }
        let mut virtual_hosts = Vec::new();
        for (hostname, (listener, mut routes)) in hosts.remove(&port).unwrap_or_default() {
            routes.sort_by(matches::precedence);
            let routes: Vec<RouteModel> = routes.into_iter().map(|(r, _)| r).collect();
            for r in &routes {
                if let RouteAuth::Enabled { provider, .. } = &r.auth
                    && let Some(Ok((p, c))) = providers.get(provider)
                {
                    port_providers.insert(provider.clone());
                    used.insert(provider.clone(), p.clone());
                    clusters.insert(c.key.clone(), c.clone());
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
