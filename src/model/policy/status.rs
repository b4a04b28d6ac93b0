//! What each TrafficPolicy's status says, per Gateway it affects.

use std::collections::{BTreeMap, BTreeSet};

use super::super::conditions::{AncestorRef, Condition, PolicyAncestorStatus, Status};
use super::{PolicyIndex, Target};
use crate::model::condition_names as cond;
use crate::store::{Kind, ObjKey, ObjectRef, Store};

impl PolicyIndex {
    /// Writes every policy's ancestor status. `route_parents` gives the Gateways an HTTPRoute
    /// is attached to; `has_routes` whether any route is attached to a Gateway (through one
    /// listener, when named); `served` is the set of Gateways Gatehouse serves; `referrers` the
    /// HTTPRoutes whose rules name each policy in an `ExtensionRef` filter.
    pub fn finish_status<'a>(
        &self,
        store: &Store,
        route_parents: impl Fn(&ObjectRef) -> Option<&'a BTreeSet<ObjKey>>,
        has_routes: impl Fn(&ObjKey, Option<&str>) -> bool,
        served: &BTreeSet<ObjKey>,
        referrers: &BTreeMap<ObjKey, BTreeSet<ObjectRef>>,
        status: &mut Status,
    ) {
        let mut all = self.targets.clone();
        for (policy, selectors) in &self.selectors {
            let from = ObjKey::new(policy.namespace.clone(), String::new());
            let in_namespace = |k: &&ObjKey| k.namespace == policy.namespace;
            let http = store
                .http_routes
                .range(from.clone()..)
                .map(|(k, r)| (k, Kind::HttpRoute, &r.metadata))
                .take_while(|(k, _, _)| in_namespace(k));
            let grpc = store
                .grpc_routes
                .range(from..)
                .map(|(k, r)| (k, Kind::GrpcRoute, &r.metadata))
                .take_while(|(k, _, _)| in_namespace(k));
            for (key, kind, meta) in http.chain(grpc) {
                let labels = meta.labels.clone().unwrap_or_default();
                let key = ObjectRef {
                    kind,
                    key: key.clone(),
                };
                for sel in selectors.iter().filter(|s| s.selects(kind, &labels)) {
                    all.entry(policy.clone()).or_default().push(Target::Route {
                        key: key.clone(),
                        rule: sel.rule.clone(),
                    });
                }
            }
        }
        for (policy, routes) in referrers {
            for route in routes {
                all.entry(policy.clone()).or_default().push(Target::Route {
                    key: route.clone(),
                    rule: None,
                });
            }
        }
        for (policy, targets) in &all {
            let mut ancestors: BTreeMap<AncestorRef, Vec<Condition>> = BTreeMap::new();
            // Each Gateway the policy reaches, and whether any of its targets there has a route.
            let mut reached: BTreeMap<ObjKey, bool> = BTreeMap::new();
            for target in targets {
                let gateways: Vec<ObjKey> = match target {
                    Target::Gateway { key, .. } if served.contains(key) => vec![key.clone()],
                    Target::Route { key, .. } => {
                        route_parents(key).into_iter().flatten().cloned().collect()
                    }
                    _ => vec![],
                };
                if gateways.is_empty() {
                    let (kind, key, section, exists) = match target {
                        Target::Gateway { key, listener } => {
                            ("Gateway", key, listener, store.gateways.contains_key(key))
                        }
                        Target::Route { key, rule } => {
                            (key.kind.name(), &key.key, rule, store.route(key).is_some())
                        }
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
                            Condition::fail(
                                cond::ACCEPTED,
                                cond::TARGET_NOT_FOUND,
                                message.clone(),
                            ),
                            Condition::fail(cond::ATTACHED, cond::TARGET_NOT_FOUND, message),
                        ],
                    );
                    continue;
                }
                for gw in gateways {
                    let routed = match target {
                        Target::Gateway { key, listener } => has_routes(key, listener.as_deref()),
                        Target::Route { .. } => true,
                    };
                    *reached.entry(gw).or_default() |= routed;
                }
            }
            for (gw, routed) in reached {
                let ancestor = AncestorRef {
                    kind: "Gateway".into(),
                    namespace: gw.namespace.clone(),
                    name: gw.name.clone(),
                    section_name: None,
                };
                ancestors.insert(ancestor, self.conditions(policy, &gw, routed));
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

    /// `routed`: some route is attached where the policy targets this Gateway.
    fn conditions(&self, policy: &ObjKey, gateway: &ObjKey, routed: bool) -> Vec<Condition> {
        let unimplemented = self.unimplemented.get(policy);
        let accepted = match self.broken.get(policy) {
            Some((reason, message)) => Condition::fail(
                cond::ACCEPTED,
                reason,
                format!("{message}; the routes it decides fail closed"),
            ),
            None => Condition::ok(cond::ACCEPTED, cond::ACCEPTED, "policy is valid"),
        };
        let pair = (policy.clone(), gateway.clone());
        let attached = if !self.by_key.contains_key(policy) {
            Condition::fail(
                cond::ATTACHED,
                cond::NO_EFFECT,
                "the policy sets nothing Gatehouse serves",
            )
        } else if self.decided.contains_key(&pair) {
            Condition::ok(
                cond::ATTACHED,
                cond::ATTACHED,
                "decides ext auth for at least one route",
            )
        } else if self.overridden.contains_key(&pair) {
            Condition::fail(
                cond::ATTACHED,
                cond::OVERRIDDEN,
                "an older policy at the same level decides instead",
            )
        } else if !routed {
            // Nothing to decide yet is not being overridden: the first route that attaches is
            // decided by this policy unless a more specific one targets it.
            Condition::ok(
                cond::ATTACHED,
                cond::ATTACHED,
                "attached; no route is attached to its target yet",
            )
        } else {
            Condition::fail(
                cond::ATTACHED,
                cond::OVERRIDDEN,
                "more specific policies decide every route it targets",
            )
        };
        let mut conditions = vec![accepted, attached];
        if let Some(fields) = unimplemented {
            conditions.push(Condition::fail(
                cond::IMPLEMENTED,
                cond::UNSUPPORTED_FIELD,
                unimplemented_message(fields),
            ));
        }
        conditions
    }
}

/// What a policy's status says of the kgateway fields Gatehouse does not serve.
fn unimplemented_message(fields: &[(&str, bool)]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
    let denying: Vec<&str> = fields.iter().filter(|f| f.1).map(|f| f.0).collect();
    let mut message = format!("not implemented by Gatehouse: {}", names.join(", "));
    if denying.is_empty() {
        message.push_str("; they have no effect");
    } else {
        message.push_str(&format!(
            "; the routes this policy decides answer 500 rather than be served without {}",
            denying.join(", ")
        ));
    }
    message
}
