//! Route (HTTPRoute, GRPCRoute) attachment to Gateway listeners, route status, and route rules → [`RouteModel`]s.

use std::collections::BTreeMap;

use gateway_api::apis::experimental::httproutes::{HttpRoute, HttpRouteRules};
use gateway_api::apis::standard::gateways::GatewayListenersAllowedRoutesNamespacesFrom as From;

use super::conditions::{Condition, ParentRef, RouteParentStatus};
use super::filters;
use super::gateways::{GatewayInfo, ListenerInfo};
use super::hostname;
use super::refs;
use super::types::RouteFilters;
use super::types::{ClusterKey, ClusterModel, RouteAction, WeightedBackend};
use crate::api::GATEWAY_API_GROUP;
use crate::model::condition_names as cond;
use crate::store::{Kind, ObjKey, ObjectRef, Store};

/// One route attached to one listener, with the hostnames it serves there.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub gateway: usize,
    pub listener: usize,
    pub hostnames: Vec<String>,
}

/// What [`attach`] found.
pub struct Attached {
    pub attachments: Vec<Attachment>,
    /// The parents' status (empty when no parent is Gatehouse's).
    pub statuses: Vec<RouteParentStatus>,
    /// The (Gateway, listener) indices each entry of `statuses` attached through.
    pub through: Vec<Vec<(usize, usize)>>,
}

/// Attaches `route` to the served Gateways.
pub fn attach(
    store: &Store,
    at: &ObjectRef,
    route: &HttpRoute,
    gateways: &[GatewayInfo],
    report_unknown: bool,
) -> Attached {
    let key = &at.key;
    let kind_allowed = |l: &ListenerInfo| match at.kind {
        Kind::GrpcRoute => l.allows_grpc_route,
        _ => l.allows_http_route,
    };
    let mut attachments: Vec<Attachment> = Vec::new();
    let mut statuses = Vec::new();
    let mut through = Vec::new();
    let route_hosts = route.spec.hostnames.clone().unwrap_or_default();
    for parent in route.spec.parent_refs.iter().flatten() {
        if parent.group.as_deref().unwrap_or(GATEWAY_API_GROUP) != GATEWAY_API_GROUP
            || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway"
        {
            continue;
        }
        let gw_key = ObjKey::new(
            parent
                .namespace
                .clone()
                .unwrap_or_else(|| key.namespace.clone()),
            parent.name.clone(),
        );
        let parent_ref = ParentRef {
            namespace: gw_key.namespace.clone(),
            name: gw_key.name.clone(),
            section_name: parent.section_name.clone(),
            port: parent.port,
        };
        let Some(gw_index) = gateways.iter().position(|g| g.key == gw_key) else {
            if report_unknown && !store.gateways.contains_key(&gw_key) {
                let c = Condition::fail(
                    cond::ACCEPTED,
                    cond::NO_MATCHING_PARENT,
                    format!("Gateway {gw_key} not found"),
                );
                statuses.push(RouteParentStatus {
                    parent_ref,
                    conditions: vec![c],
                });
                through.push(Vec::new());
            }
            continue;
        };
        let gw = &gateways[gw_index];
        let mut via = Vec::new();
        let candidates: Vec<(usize, &ListenerInfo)> = gw
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
            .filter(|(_, l)| parent.port.is_none_or(|p| i32::from(l.port) == p))
            .collect();
        let accepted = if candidates.is_empty() {
            Condition::fail(
                cond::ACCEPTED,
                cond::NO_MATCHING_PARENT,
                "no listener of the Gateway matches sectionName/port",
            )
        } else {
            let allowed: Vec<_> = candidates
                .into_iter()
                // An invalid listener (unsupported protocol, conflict) takes no routes.
                .filter(|(_, l)| {
                    l.valid
                        && kind_allowed(l)
                        && namespace_allowed(store, l, &key.namespace, &gw_key.namespace)
                })
                .collect();
            if allowed.is_empty() {
                Condition::fail(
                    cond::ACCEPTED,
                    cond::NOT_ALLOWED_BY_LISTENERS,
                    "no listener allows routes from this namespace or of this kind",
                )
            } else {
                let mut any = false;
                for (li, l) in allowed {
                    let hosts = hostname::intersect(l.hostname.as_deref(), &route_hosts);
                    if hosts.is_empty() {
                        continue;
                    }
                    any = true;
                    via.push((gw_index, li));
                    if !attachments
                        .iter()
                        .any(|a| a.gateway == gw_index && a.listener == li)
                    {
                        attachments.push(Attachment {
                            gateway: gw_index,
                            listener: li,
                            hostnames: hosts,
                        });
                    }
                }
                if any {
                    Condition::ok(cond::ACCEPTED, cond::ACCEPTED, "route is attached")
                } else {
                    Condition::fail(
                        cond::ACCEPTED,
                        cond::NO_MATCHING_LISTENER_HOSTNAME,
                        "no listener hostname intersects the route's hostnames",
                    )
                }
            }
        };
        statuses.push(RouteParentStatus {
            parent_ref,
            conditions: vec![accepted],
        });
        through.push(via);
    }
    Attached {
        attachments,
        statuses,
        through,
    }
}

fn namespace_allowed(store: &Store, l: &ListenerInfo, route_ns: &str, gateway_ns: &str) -> bool {
    match l.allowed_from {
        From::All => true,
        From::Same => route_ns == gateway_ns,
        From::Selector => {
            let mut labels: BTreeMap<String, String> = store
                .namespaces
                .get(&ObjKey::cluster(route_ns))
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            // The API server sets this label on every Namespace; files may not declare it.
            labels.insert("kubernetes.io/metadata.name".into(), route_ns.into());
            l.selector.as_ref().is_some_and(|s| s.matches(&labels))
        }
    }
}

/// What a rule resolves to.
#[derive(Debug)]
pub struct RuleResolution {
    pub action: RouteAction,
    pub filters: RouteFilters,
    /// Every cluster the rule uses (backends and mirrors).
    pub clusters: Vec<ClusterModel>,
    /// The first resolution failure, for status.
    pub error: Option<refs::RefError>,
}

/// Resolves a rule's backends and filters. A backendRef that does not resolve keeps its
/// weight and answers 500 for that share, as the spec requires; a RequestRedirect answers
/// every request with the redirect.
pub fn rule_action(store: &Store, route: &ObjectRef, rule: &HttpRouteRules) -> RuleResolution {
    let filters::RuleFilters {
        filters,
        redirect,
        clusters: mut all_clusters,
        error: filter_error,
    } = filters::rule_filters(store, route, rule);
    let mut backends = Vec::new();
    let mut first_error = None;
    for b in rule.backend_refs.iter().flatten() {
        let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        let (request_headers, response_headers) =
            filters::backend_header_edits(b.filters.as_deref().unwrap_or_default());
        let resolved = refs::resolve_route_backend(store, route, b);
        let cluster = match resolved {
            Ok(svc) => {
                let key = ClusterKey::Backend {
                    service: svc.key.clone(),
                    port: svc.port,
                };
                all_clusters.push(ClusterModel {
                    key: key.clone(),
                    service: svc.key,
                    port: svc.port,
                    protocol: svc.protocol,
                    endpoints: svc.endpoints,
                    tls: svc.tls,
                });
                key
            }
            Err(e) => {
                first_error.get_or_insert(e);
                ClusterKey::Invalid
            }
        };
        if weight > 0 {
            backends.push(WeightedBackend {
                cluster,
                weight,
                request_headers,
                response_headers,
            });
        }
    }
    let action = if let Some(redirect) = redirect {
        RouteAction::Redirect(redirect)
    } else if backends.iter().all(|b| b.cluster == ClusterKey::Invalid) {
        // No backend (or none that resolves, or all weights zero): 500 for everything.
        RouteAction::Respond {
            status: 500,
            body: String::new(),
        }
    } else {
        RouteAction::Forward(backends)
    };
    RuleResolution {
        action,
        filters,
        clusters: all_clusters,
        error: first_error.or(filter_error),
    }
}
