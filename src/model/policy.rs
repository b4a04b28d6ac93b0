//! TrafficPolicy attachment and the precedence that decides each route's ext auth:
//! rule > HTTPRoute > listener > Gateway; at one level the oldest policy (then name) wins.

use std::collections::{BTreeMap, BTreeSet};

use super::conditions::{AncestorRef, Condition, PolicyAncestorStatus, Status};
use super::counts;
use super::extensions::ProviderResult;
use super::refs;
use super::types::RouteAuth;
use super::{validate, validate_auth};
use crate::api::{GROUP, TrafficPolicy};
use crate::store::{ObjKey, Store};

/// What a policy's `extAuth` resolves to.
#[derive(Clone, Debug)]
enum Resolution {
    Disable,
    Provider(ObjKey),
    Broken {
        reason: &'static str,
        message: String,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    key: ObjKey,
    /// Creation time (RFC 3339 sorts lexically); unset sorts first, as files carry none.
    created: String,
    resolution: Resolution,
    context_extensions: BTreeMap<String, String>,
    with_request_body: Option<crate::api::ExtAuthBufferSettings>,
}

/// What a policy may target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Gateway {
        key: ObjKey,
        listener: Option<String>,
    },
    Route {
        key: ObjKey,
        rule: Option<String>,
    },
}

/// (policy, gateway) pairs seen while deciding routes: where a policy decided, and where it
/// lost at its own level.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decisions {
    decided: Vec<(ObjKey, ObjKey)>,
    overridden: Vec<(ObjKey, ObjKey)>,
}

impl Decisions {
    fn add_decided(&mut self, policy: &ObjKey, gateway: &ObjKey) {
        add(&mut self.decided, policy, gateway);
    }

    fn add_overridden(&mut self, policy: &ObjKey, gateway: &ObjKey) {
        add(&mut self.overridden, policy, gateway);
    }
}

fn add(pairs: &mut Vec<(ObjKey, ObjKey)>, policy: &ObjKey, gateway: &ObjKey) {
    if !pairs.iter().any(|(p, g)| p == policy && g == gateway) {
        pairs.push((policy.clone(), gateway.clone()));
    }
}

/// Policies by target, plus bookkeeping for their status.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    by_target: BTreeMap<Target, Vec<Entry>>,
    /// Every policy's targets, for status.
    targets: BTreeMap<ObjKey, Vec<Target>>,
    /// Broken resolution per policy.
    broken: BTreeMap<ObjKey, (&'static str, String)>,
    /// (policy, gateway) pairs where the policy decided routes, with how many routes: the
    /// builder adds and removes one route's decisions at a time.
    decided: BTreeMap<(ObjKey, ObjKey), u32>,
    /// (policy, gateway) pairs where the policy was a candidate but lost at its own level.
    overridden: BTreeMap<(ObjKey, ObjKey), u32>,
}

impl PolicyIndex {
    /// Indexes every TrafficPolicy with `extAuth`.
    pub fn build(store: &Store, providers: &BTreeMap<ObjKey, ProviderResult>) -> Self {
        let mut index = PolicyIndex::default();
        for (key, policy) in &store.traffic_policies {
            let Some(ext_auth) = policy.spec.ext_auth.as_ref() else {
                continue;
            };
            let resolution = resolve(store, key, policy, providers);
            if let Resolution::Broken { reason, message } = &resolution {
                index.broken.insert(key.clone(), (reason, message.clone()));
            }
            let entry = Entry {
                key: key.clone(),
                created: policy
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                resolution,
                context_extensions: ext_auth.context_extensions.clone().unwrap_or_default(),
                with_request_body: ext_auth.with_request_body.clone(),
            };
            for t in &policy.spec.target_refs {
                let target_key = ObjKey::new(key.namespace.clone(), t.name.clone());
                let target = match (t.group.as_str(), t.kind.as_str()) {
                    ("gateway.networking.k8s.io", "Gateway") => Target::Gateway {
                        key: target_key,
                        listener: t.section_name.clone(),
                    },
                    ("gateway.networking.k8s.io", "HTTPRoute") => Target::Route {
                        key: target_key,
                        rule: t.section_name.clone(),
                    },
                    _ => continue,
                };
                index
                    .targets
                    .entry(key.clone())
                    .or_default()
                    .push(target.clone());
                index
                    .by_target
                    .entry(target)
                    .or_default()
                    .push(entry.clone());
            }
        }
        for entries in index.by_target.values_mut() {
            entries.sort_by(|a, b| (&a.created, &a.key).cmp(&(&b.created, &b.key)));
        }
        index
    }

    /// The ext auth of one route rule served through `listener` of `gateway`; which policies
    /// won and lost goes to `trace`, for their status (see [`PolicyIndex::record`]).
    pub fn decide(
        &self,
        gateway: &ObjKey,
        listener: &str,
        route: &ObjKey,
        rule: Option<&str>,
        trace: &mut Decisions,
    ) -> RouteAuth {
        let mut levels = Vec::with_capacity(4);
        if let Some(rule) = rule {
            levels.push(Target::Route {
                key: route.clone(),
                rule: Some(rule.to_string()),
            });
        }
        levels.push(Target::Route {
            key: route.clone(),
            rule: None,
        });
        levels.push(Target::Gateway {
            key: gateway.clone(),
            listener: Some(listener.to_string()),
        });
        levels.push(Target::Gateway {
            key: gateway.clone(),
            listener: None,
        });
        for level in levels {
            let Some(entries) = self.by_target.get(&level) else {
                continue;
            };
            let Some(winner) = entries.first() else {
                continue;
            };
            for loser in &entries[1..] {
                trace.add_overridden(&loser.key, gateway);
            }
            trace.add_decided(&winner.key, gateway);
            let policy = winner.key.clone();
            return match &winner.resolution {
                Resolution::Disable => RouteAuth::Disabled { policy },
                Resolution::Provider(provider) => RouteAuth::Enabled {
                    provider: provider.clone(),
                    policy,
                    context_extensions: winner.context_extensions.clone(),
                    with_request_body: winner.with_request_body.clone(),
                },
                Resolution::Broken { reason, message } => RouteAuth::FailClosed {
                    policy,
                    reason: format!("{reason}: {message}"),
                },
            };
        }
        RouteAuth::None
    }

    /// The HTTPRoutes some policy targets (their status reads those routes' parents).
    pub fn targeted_routes(&self) -> BTreeSet<ObjKey> {
        self.targets
            .values()
            .flatten()
            .filter_map(|t| match t {
                Target::Route { key, .. } => Some(key.clone()),
                Target::Gateway { .. } => None,
            })
            .collect()
    }

    /// Takes in what deciding one route found, for the policies' status; true when a
    /// (policy, Gateway) pair appeared.
    pub fn record(&mut self, trace: &Decisions) -> bool {
        counts::add_all(&mut self.decided, &trace.decided)
            | counts::add_all(&mut self.overridden, &trace.overridden)
    }

    /// Takes back what [`PolicyIndex::record`] took in for a route that changed or went away;
    /// true when a (policy, Gateway) pair disappeared.
    pub fn forget(&mut self, trace: &Decisions) -> bool {
        counts::remove_all(&mut self.decided, &trace.decided)
            | counts::remove_all(&mut self.overridden, &trace.overridden)
    }

    /// Valid providers of the policies attached to a Gateway as a whole or to one of its
    /// listeners: their filters belong on that listener even where routes switch them off.
    pub fn listener_providers(&self, gateway: &ObjKey, listener: &str) -> Vec<ObjKey> {
        let levels = [
            Target::Gateway {
                key: gateway.clone(),
                listener: None,
            },
            Target::Gateway {
                key: gateway.clone(),
                listener: Some(listener.to_string()),
            },
        ];
        levels
            .iter()
            .filter_map(|t| self.by_target.get(t))
            .flatten()
            .filter_map(|e| match &e.resolution {
                Resolution::Provider(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Writes every policy's ancestor status. `route_parents` gives the Gateways an HTTPRoute
    /// is attached to; `served` is the set of Gateways Gatehouse serves.
    pub fn finish_status<'a>(
        &self,
        store: &Store,
        route_parents: impl Fn(&ObjKey) -> Option<&'a BTreeSet<ObjKey>>,
        served: &BTreeSet<ObjKey>,
        status: &mut Status,
    ) {
        for (policy, targets) in &self.targets {
            let mut ancestors: BTreeMap<AncestorRef, Vec<Condition>> = BTreeMap::new();
            for target in targets {
                let gateways: Vec<ObjKey> = match target {
                    Target::Gateway { key, .. } if served.contains(key) => vec![key.clone()],
                    Target::Route { key, .. } => {
                        route_parents(key).into_iter().flatten().cloned().collect()
                    }
                    _ => vec![],
                };
                if gateways.is_empty() {
                    let (kind, key, section) = match target {
                        Target::Gateway { key, listener } => ("Gateway", key, listener),
                        Target::Route { key, rule } => ("HTTPRoute", key, rule),
                    };
                    let exists = match kind {
                        "Gateway" => store.gateways.contains_key(key),
                        _ => store.http_routes.contains_key(key),
                    };
                    if exists && kind == "Gateway" {
                        continue; // a Gateway of another controller: not ours to report on
                    }
                    let message = if exists {
                        format!("{kind} {key} is not attached to a Gateway served by Gatehouse")
                    } else {
                        format!("{kind} {key} not found")
                    };
                    ancestors.insert(
                        AncestorRef {
                            kind: kind.into(),
                            namespace: key.namespace.clone(),
                            name: key.name.clone(),
                            section_name: section.clone(),
                        },
                        vec![
                            Condition::fail("Accepted", "TargetNotFound", message.clone()),
                            Condition::fail("Attached", "TargetNotFound", message),
                        ],
                    );
                    continue;
                }
                for gw in gateways {
                    let ancestor = AncestorRef {
                        kind: "Gateway".into(),
                        namespace: gw.namespace.clone(),
                        name: gw.name.clone(),
                        section_name: None,
                    };
                    ancestors.insert(ancestor, self.conditions(policy, &gw));
                }
            }
            let list = ancestors
                .into_iter()
                .map(|(ancestor_ref, conditions)| PolicyAncestorStatus {
                    ancestor_ref,
                    conditions,
                })
                .collect();
            status
                .traffic_policies
                .insert(policy.clone(), std::sync::Arc::new(list));
        }
    }

    fn conditions(&self, policy: &ObjKey, gateway: &ObjKey) -> Vec<Condition> {
        let accepted = match self.broken.get(policy) {
            Some((reason, message)) => Condition::fail(
                "Accepted",
                reason,
                format!("{message}; the routes it decides fail closed"),
            ),
            None => Condition::ok("Accepted", "Accepted", "policy is valid"),
        };
        let pair = (policy.clone(), gateway.clone());
        let attached = if self.decided.contains_key(&pair) {
            Condition::ok(
                "Attached",
                "Attached",
                "decides ext auth for at least one route",
            )
        } else if self.overridden.contains_key(&pair) {
            Condition::fail(
                "Attached",
                "Overridden",
                "an older policy at the same level decides instead",
            )
        } else {
            Condition::fail(
                "Attached",
                "Overridden",
                "more specific policies decide every route it targets",
            )
        };
        vec![accepted, attached]
    }
}

fn resolve(
    store: &Store,
    key: &ObjKey,
    policy: &TrafficPolicy,
    providers: &BTreeMap<ObjKey, ProviderResult>,
) -> Resolution {
    let Some(ext_auth) = &policy.spec.ext_auth else {
        return Resolution::Disable;
    };
    let problems = validate_auth::policy(ext_auth);
    if !problems.is_empty() {
        return Resolution::Broken {
            reason: "InvalidSpec",
            message: validate::summary(&problems),
        };
    }
    match (&ext_auth.extension_ref, &ext_auth.disable) {
        (None, Some(_)) => Resolution::Disable,
        (Some(r), None) => {
            let ext = ObjKey::new(
                r.namespace.clone().unwrap_or_else(|| key.namespace.clone()),
                r.name.clone(),
            );
            let from = refs::From {
                group: GROUP,
                kind: "TrafficPolicy",
                namespace: &key.namespace,
            };
            if !refs::permitted(store, &from, GROUP, "GatewayExtension", &ext) {
                return Resolution::Broken {
                    reason: "RefNotPermitted",
                    message: format!(
                        "no ReferenceGrant in namespace {} allows TrafficPolicies in {} to use GatewayExtension {ext}",
                        ext.namespace, key.namespace
                    ),
                };
            }
            match providers.get(&ext) {
                None => Resolution::Broken {
                    reason: "ExtensionNotFound",
                    message: format!("GatewayExtension {ext} not found"),
                },
                Some(Err(e)) => Resolution::Broken {
                    reason: "InvalidExtension",
                    message: format!(
                        "GatewayExtension {ext} is not usable: {}: {}",
                        e.reason, e.message
                    ),
                },
                Some(Ok(_)) => Resolution::Provider(ext),
            }
        }
        _ => Resolution::Broken {
            reason: "InvalidSpec",
            message: "exactly one of extensionRef or disable must be set".into(),
        },
    }
}
