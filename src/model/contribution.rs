//! What one route (HTTPRoute, or GRPCRoute as the HTTPRoute it routes like) adds to the model, computed on its own so that an unchanged route's share
//! is reused by the next build (see `Builder`).

use std::collections::BTreeSet;
use std::sync::Arc;

use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::standard::grpcroutes::GrpcRoute;

use super::conditions::{Condition, RouteParentStatus};
use super::gateways::GatewayInfo;
use super::policy::{self, Decisions, PolicyIndex, RuleRef};
use super::types::{ClusterModel, GrpcRank, Provider, RouteAction, RouteAuth, RouteModel};
use super::validate::{self, Problem};
use super::validate_route::{self, RuleCheck};
use super::{FAIL_CLOSED_STATUS, external_auth, grpc, matches, routes};
use crate::model::condition_names as cond;
use crate::store::{AnyRoute, Kind, ObjKey, ObjectRef, Store};

/// What the matches of an invalid rule answer.
const INVALID_RULE_STATUS: u32 = 500;

/// (gateway index, listener index) in a build's Gateways.
pub type ListenerAt = (usize, usize);

/// One Envoy route of the HTTPRoute, placed on a hostname of a port of a served Gateway.
#[derive(Clone, Debug)]
pub struct HostRoute {
    /// Index into the build's served Gateways.
    pub gateway: usize,
    pub port: u16,
    pub hostname: String,
    /// The Gateway listener the route attached through.
    pub listener: String,
    pub route: Arc<RouteModel>,
    /// The HTTPRoute's creation timestamp, for precedence.
    pub created: Arc<str>,
}

/// Everything one route adds to a build. Only valid with the store context (every kind but
/// the routes) it was computed from: the Gateway indices point into that build's Gateways.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub key: Arc<ObjectRef>,
    /// The route's creation timestamp, for precedence and cross-serving.
    pub created: Arc<str>,
    /// (Gateway index, listener index) of every attachment, with the hostnames served there.
    pub attachments: Vec<(ListenerAt, Arc<Vec<String>>)>,
    /// The listeners each entry of `status` attached through.
    pub through: Vec<Vec<ListenerAt>>,
    /// The route's parent status; `None` when no parent is Gatehouse's.
    pub status: Option<Arc<Vec<RouteParentStatus>>>,
    /// Indices of the Gateways the route is attached to, ascending and without repeats.
    pub gateways: Vec<usize>,
    /// Gateways the route is attached to.
    pub parents: BTreeSet<ObjKey>,
    pub entries: Vec<HostRoute>,
    /// Clusters the route's forwarding rules use, by Gateway index.
    pub clusters: Vec<(usize, ClusterModel)>,
    /// Valid providers of the route's own `ExternalAuth` filters.
    pub inline_providers: Vec<(ObjKey, (Provider, ClusterModel))>,
    /// Which policies decided (or lost on) the route, for their status.
    pub decisions: Decisions,
    /// TrafficPolicies the route's rules name in `ExtensionRef` filters.
    pub extension_refs: BTreeSet<ObjKey>,
}

/// The read-only inputs every route's contribution is computed against.
pub struct Context<'a> {
    pub store: &'a Store,
    pub gateways: &'a [GatewayInfo],
    pub policies: &'a PolicyIndex,
    pub report_unknown: bool,
}

/// Computes what `route`, named `at`, adds to the build.
pub fn compute(cx: &Context<'_>, at: &ObjectRef, route: AnyRoute<'_>) -> Contribution {
    match route {
        AnyRoute::Http(r) => compute_http(cx, at, r, &[], None),
        AnyRoute::Grpc(r) => compute_grpc(cx, at, r),
    }
}

fn compute_grpc(cx: &Context<'_>, at: &ObjectRef, route: &GrpcRoute) -> Contribution {
    match grpc::as_http_route(route) {
        Ok(converted) => compute_http(
            cx,
            at,
            &converted.route,
            &converted.problems,
            Some(&converted.ranks),
        ),
        Err(e) => {
            // The two kinds' rule types share their fields; this is a bug, not a tenant's
            // mistake, and the route serves nothing rather than something else.
            tracing::error!(route = %at, error = %e, "GRPCRoute does not convert; not served");
            empty(at)
        }
    }
}

fn empty(at: &ObjectRef) -> Contribution {
    Contribution {
        key: Arc::new(at.clone()),
        created: Arc::from(""),
        attachments: Vec::new(),
        through: Vec::new(),
        status: None,
        gateways: Vec::new(),
        parents: BTreeSet::new(),
        entries: Vec::new(),
        clusters: Vec::new(),
        inline_providers: Vec::new(),
        decisions: Decisions::default(),
        extension_refs: BTreeSet::new(),
    }
}

/// `extra` holds problems of each rule found before conversion (a GRPCRoute's method matches);
/// `grpc_ranks` a GRPCRoute's precedence of each rule's matches.
fn compute_http(
    cx: &Context<'_>,
    at: &ObjectRef,
    route: &HttpRoute,
    extra: &[Vec<Problem>],
    grpc_ranks: Option<&[Vec<GrpcRank>]>,
) -> Contribution {
    let store = cx.store;
    let key = &at.key;
    let grpc = at.kind == Kind::GrpcRoute;
    let routes::Attached {
        mut attachments,
        statuses: mut parent_status,
        through,
    } = routes::attach(store, at, route, cx.gateways, cx.report_unknown);
    let host_problems =
        validate_route::hostnames(route.spec.hostnames.as_deref().unwrap_or_default());
    if !host_problems.is_empty() {
        // No hostname can be dropped alone: fewer hostnames would widen the route.
        attachments.clear();
    }
    let created = route
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let created: Arc<str> = created.into();
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let resolved: Vec<_> = rules
        .iter()
        .map(|r| {
            let mut resolution = routes::rule_action(store, at, r);
            if grpc {
                grpc::over_http2(&mut resolution);
            }
            resolution
        })
        .collect();
    let inline: Vec<_> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| external_auth::resolve(store, at, r, i))
        .collect();
    let inline_error = inline.iter().flatten().find_map(|(_, r)| r.as_ref().err());
    let refs_condition = match resolved
        .iter()
        .find_map(|r| r.error.as_ref())
        .or(inline_error)
    {
        Some(e) => Condition::fail(cond::RESOLVED_REFS, e.reason, e.message.clone()),
        None => Condition::ok(
            cond::RESOLVED_REFS,
            cond::RESOLVED_REFS,
            "all backendRefs resolved",
        ),
    };
    let named: Vec<Vec<(usize, ObjKey)>> = rules
        .iter()
        .map(|r| policy::extension_refs(key, r))
        .collect();
    let mut checks: Vec<_> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut check = validate_route::rule(i, r);
            check
                .problems
                .extend(extra.get(i).into_iter().flatten().cloned());
            check
        })
        .collect();
    if let Some(why) = policy::refused(&route.metadata) {
        // Its rules cannot be read as written: each answers 500 rather than leave its paths
        // to a broader route.
        for (i, check) in checks.iter_mut().enumerate() {
            check.problems.push(Problem {
                field: format!("spec.rules[{i}]"),
                message: format!("the route was refused when loaded: {why}"),
            });
        }
    }
    for (i, refs) in named.iter().enumerate() {
        for (j, missing) in refs.iter().filter(|(_, k)| !cx.policies.exists(k)) {
            checks[i].problems.push(Problem {
                field: format!("spec.rules[{i}].filters[{j}].extensionRef"),
                message: format!(
                    "ExtensionRef names TrafficPolicy {missing}, which does not exist: the rule answers 500 rather than run without it"
                ),
            });
        }
    }
    let extension_refs: Vec<Vec<ObjKey>> = named
        .into_iter()
        .map(|refs| refs.into_iter().map(|(_, k)| k).collect())
        .collect();
    let labels = route.metadata.labels.clone().unwrap_or_default();
    let validity = validity_condition(&host_problems, &checks);
    for p in &mut parent_status {
        if let Some(c) = &validity
            && p.conditions
                .iter()
                .any(|c| c.type_ == cond::ACCEPTED && c.is_true())
        {
            if c.type_ == cond::ACCEPTED {
                p.conditions.retain(|c| c.type_ != cond::ACCEPTED);
            }
            p.conditions.push(c.clone());
        }
        p.conditions.push(refs_condition.clone());
    }
    let mut out = Contribution {
        key: Arc::new(at.clone()),
        created: created.clone(),
        attachments: attachments
            .iter()
            .map(|a| ((a.gateway, a.listener), Arc::new(a.hostnames.clone())))
            .collect(),
        through,
        status: (!parent_status.is_empty()).then(|| Arc::new(parent_status)),
        gateways: {
            let mut g: Vec<usize> = attachments.iter().map(|a| a.gateway).collect();
            g.sort_unstable();
            g.dedup();
            g
        },
        parents: BTreeSet::new(),
        entries: Vec::new(),
        clusters: Vec::new(),
        inline_providers: inline
            .iter()
            .flatten()
            .filter_map(|(k, r)| r.as_ref().ok().map(|p| (k.clone(), p.clone())))
            .collect(),
        decisions: Decisions::default(),
        extension_refs: extension_refs.iter().flatten().cloned().collect(),
    };
    for a in &attachments {
        let gw = &cx.gateways[a.gateway];
        let listener = &gw.listeners[a.listener];
        out.parents.insert(gw.key.clone());
        for (rule_index, (rule, resolution)) in rules.iter().zip(&resolved).enumerate() {
            // An ExternalAuth filter is part of the rule: it decides ahead of any policy.
            let auth = match &inline[rule_index] {
                Some((provider, Ok(_))) => RouteAuth::Enabled {
                    provider: provider.clone(),
                    policy: key.clone(),
                    context_extensions: Default::default(),
                    with_request_body: None,
                },
                Some((_, Err(e))) => RouteAuth::FailClosed {
                    policy: key.clone(),
                    reason: format!("ExternalAuth filter: {}: {}", e.reason, e.message),
                },
                None => cx.policies.decide(
                    &gw.key,
                    &listener.name,
                    &RuleRef {
                        route: at,
                        labels: &labels,
                        rule: rule.name.as_deref(),
                        extension_refs: &extension_refs[rule_index],
                    },
                    &mut out.decisions,
                ),
            };
            let check = &checks[rule_index];
            let invalid = !check.problems.is_empty();
            let action = match &auth {
                RouteAuth::FailClosed { .. } => RouteAction::Respond {
                    status: FAIL_CLOSED_STATUS,
                    body: "external authorization is misconfigured for this route\n".into(),
                },
                // Gateway API: a rule whose filters cannot be honoured answers 500.
                _ if invalid => RouteAction::Respond {
                    status: INVALID_RULE_STATUS,
                    body: format!("this route rule is invalid; see the {}'s status\n", at.kind),
                },
                _ => resolution.action.clone(),
            };
            // An invalid rule's own settings are what Envoy might refuse: none goes out.
            let filters = if invalid {
                Default::default()
            } else {
                resolution.filters.clone()
            };
            if matches!(action, RouteAction::Forward(_)) {
                out.clusters
                    .extend(resolution.clusters.iter().map(|c| (a.gateway, c.clone())));
            }
            for (match_index, m) in matches::rule_matches(rule.matches.as_ref())
                .into_iter()
                .enumerate()
            {
                let grpc_rank = grpc_ranks.map(|r| {
                    r.get(rule_index)
                        .and_then(|m| m.get(match_index))
                        .copied()
                        .unwrap_or_default()
                });
                let model = if check.bad_matches.contains(&match_index) {
                    // Where a match Envoy cannot take stood, a broader one answers 500, so its
                    // requests never fall through to a less specific (unprotected) rule.
                    let Some(stand_in) = validate_route::fail_closed_stand_in(&m) else {
                        continue;
                    };
                    Arc::new(RouteModel {
                        route: at.clone(),
                        rule_index,
                        rule_name: rule.name.clone(),
                        match_index,
                        matches: stand_in,
                        ranked_as: Some(Box::new(m)),
                        action: RouteAction::Respond {
                            status: INVALID_RULE_STATUS,
                            body: format!(
                                "this route match is invalid; see the {}'s status\n",
                                at.kind
                            ),
                        },
                        filters: Default::default(),
                        auth: auth.clone(),
                        grpc_rank,
                    })
                } else {
                    Arc::new(RouteModel {
                        route: at.clone(),
                        rule_index,
                        rule_name: rule.name.clone(),
                        match_index,
                        matches: m,
                        ranked_as: None,
                        action: action.clone(),
                        filters: filters.clone(),
                        auth: auth.clone(),
                        grpc_rank,
                    })
                };
                for host in &a.hostnames {
                    out.entries.push(HostRoute {
                        gateway: a.gateway,
                        port: listener.port,
                        hostname: host.clone(),
                        listener: listener.name.clone(),
                        route: model.clone(),
                        created: created.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The condition an invalid route or rule sets on each parent that accepted the route (Gateway
/// API v1.5.1): invalid hostnames or every rule invalid → `Accepted=False`, reason
/// `UnsupportedValue`; some rules invalid → `PartiallyInvalid=True`, whose message must start
/// with "Dropped Rule". A dropped rule keeps answering 500 on its valid matches rather than
/// letting them fall through to another route.
fn validity_condition(hosts: &[Problem], checks: &[RuleCheck]) -> Option<Condition> {
    if !hosts.is_empty() {
        return Some(Condition::fail(
            cond::ACCEPTED,
            cond::UNSUPPORTED_VALUE,
            format!("the route serves no traffic: {}", validate::summary(hosts)),
        ));
    }
    let invalid: Vec<usize> = (0..checks.len())
        .filter(|i| !checks[*i].problems.is_empty())
        .collect();
    if invalid.is_empty() {
        return None;
    }
    let problems: Vec<Problem> = invalid
        .iter()
        .flat_map(|i| checks[*i].problems.iter().cloned())
        .collect();
    let problems = validate::summary(&problems);
    if invalid.len() == checks.len() {
        return Some(Condition::fail(
            cond::ACCEPTED,
            cond::UNSUPPORTED_VALUE,
            format!("every rule is invalid and answers 500 on its valid matches: {problems}"),
        ));
    }
    let list: Vec<String> = invalid.iter().map(|i| i.to_string()).collect();
    Some(Condition::ok(
        cond::PARTIALLY_INVALID,
        cond::UNSUPPORTED_VALUE,
        format!(
            "Dropped Rule {}: it answers 500 on its valid matches: {problems}",
            list.join(", ")
        ),
    ))
}
