//! TrafficPolicy attachment and the precedence that decides each route's ext auth:
//! a rule's `ExtensionRef` > rule > HTTPRoute > listener > Gateway; at one level the oldest
//! policy (then name) wins, whether it got there by `targetRefs` or `targetSelectors`
//! (docs/policy-attachment.md).

use std::collections::{BTreeMap, BTreeSet};

use super::counts;
use super::extensions::ProviderResult;
use super::types::RouteAuth;

mod resolve;
mod status;

use resolve::resolve;
pub use resolve::{extension_refs, is_policy_ref, refused};

/// Precedence at one level: the oldest policy, then the first by namespace and name.
fn order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    (&a.created, &a.key).cmp(&(&b.created, &b.key))
}
use crate::api::GATEWAY_API_GROUP;
use crate::store::{Kind, ObjKey, ObjectRef, Store};

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
        /// An HTTPRoute or a GRPCRoute.
        key: ObjectRef,
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

/// A `targetSelectors` entry over HTTPRoutes or GRPCRoutes: routes change without rebuilding
/// the index, so it is matched against each route's labels as the route is decided.
#[derive(Clone, Debug)]
struct RouteSelector {
    kind: Kind,
    labels: BTreeMap<String, String>,
    rule: Option<String>,
}

impl RouteSelector {
    fn selects(&self, kind: Kind, labels: &BTreeMap<String, String>) -> bool {
        self.kind == kind && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The kind of route a policy's `targetRefs` or `targetSelectors` entry names.
fn route_kind(kind: &str) -> Option<Kind> {
    match kind {
        "HTTPRoute" => Some(Kind::HttpRoute),
        "GRPCRoute" => Some(Kind::GrpcRoute),
        _ => None,
    }
}

/// The route rule being decided.
pub struct RuleRef<'a> {
    pub route: &'a ObjectRef,
    pub labels: &'a BTreeMap<String, String>,
    /// The rule's name.
    pub rule: Option<&'a str>,
    /// TrafficPolicies the rule names in `ExtensionRef` filters (in the route's namespace).
    pub extension_refs: &'a [ObjKey],
}

/// Policies by target, plus bookkeeping for their status.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    by_target: BTreeMap<Target, Vec<Entry>>,
    /// Policies that decide ext auth, by name: what a rule's `ExtensionRef` reaches.
    by_key: BTreeMap<ObjKey, Entry>,
    /// Every TrafficPolicy, deciding or not.
    known: BTreeSet<ObjKey>,
    /// HTTPRoute selectors of deciding policies, by namespace.
    route_selectors: BTreeMap<String, Vec<(RouteSelector, Entry)>>,
    /// Every policy's HTTPRoute selectors, for status.
    selectors: BTreeMap<ObjKey, Vec<RouteSelector>>,
    /// kgateway fields of each policy that Gatehouse does not serve.
    unimplemented: BTreeMap<ObjKey, Vec<(&'static str, bool)>>,
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
    /// Indexes every TrafficPolicy. Those with `extAuth`, or with a field that denies requests
    /// that Gatehouse does not serve, decide ext auth where they attach.
    pub fn build(store: &Store, providers: &BTreeMap<ObjKey, ProviderResult>) -> Self {
        let mut index = PolicyIndex::default();
        for (key, policy) in &store.traffic_policies {
            index.known.insert(key.clone());
            let unimplemented = policy.spec.unimplemented();
            if !unimplemented.is_empty() {
                index
                    .unimplemented
                    .insert(key.clone(), unimplemented.clone());
            }
            let decides = policy.spec.ext_auth.is_some()
                || unimplemented.iter().any(|f| f.1)
                || refused(&policy.metadata).is_some();
            let entry = decides.then(|| {
                let resolution = resolve(store, key, policy, providers);
                if let Resolution::Broken { reason, message } = &resolution {
                    index.broken.insert(key.clone(), (reason, message.clone()));
                }
                let ext_auth = policy.spec.ext_auth.clone().unwrap_or_default();
                Entry {
                    key: key.clone(),
                    created: policy
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    resolution,
                    context_extensions: ext_auth.context_extensions.unwrap_or_default(),
                    with_request_body: ext_auth.with_request_body,
                }
            });
            if let Some(entry) = &entry {
                index.by_key.insert(key.clone(), entry.clone());
            }
            let mut targets = Vec::new();
            for t in &policy.spec.target_refs {
                let target_key = ObjKey::new(key.namespace.clone(), t.name.clone());
                match (t.group.as_str(), t.kind.as_str()) {
                    (GATEWAY_API_GROUP, "Gateway") => targets.push(Target::Gateway {
                        key: target_key,
                        listener: t.section_name.clone(),
                    }),
                    (GATEWAY_API_GROUP, kind) => {
                        if let Some(kind) = route_kind(kind) {
                            targets.push(Target::Route {
                                key: ObjectRef {
                                    kind,
                                    key: target_key,
                                },
                                rule: t.section_name.clone(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            for sel in &policy.spec.target_selectors {
                // An empty selector is refused by the CRD; here it selects nothing.
                if sel.group != GATEWAY_API_GROUP || sel.match_labels.is_empty() {
                    continue;
                }
                match sel.kind.as_str() {
                    "Gateway" => {
                        for (gw_key, gw) in &store.gateways {
                            let labels = gw.metadata.labels.as_ref();
                            let selected = gw_key.namespace == key.namespace
                                && sel
                                    .match_labels
                                    .iter()
                                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                            if selected {
                                targets.push(Target::Gateway {
                                    key: gw_key.clone(),
                                    listener: sel.section_name.clone(),
                                });
                            }
                        }
                    }
                    kind => {
                        let Some(kind) = route_kind(kind) else {
                            continue;
                        };
                        let selector = RouteSelector {
                            kind,
                            labels: sel.match_labels.clone(),
                            rule: sel.section_name.clone(),
                        };
                        if let Some(entry) = &entry {
                            index
                                .route_selectors
                                .entry(key.namespace.clone())
                                .or_default()
                                .push((selector.clone(), entry.clone()));
                        }
                        index
                            .selectors
                            .entry(key.clone())
                            .or_default()
                            .push(selector);
                    }
                }
            }
            targets.dedup();
            index
                .targets
                .entry(key.clone())
                .or_default()
                .extend(targets.iter().cloned());
            if let Some(entry) = entry {
                for target in targets {
                    index
                        .by_target
                        .entry(target)
                        .or_default()
                        .push(entry.clone());
                }
            }
        }
        for entries in index.by_target.values_mut() {
            entries.sort_by(order);
        }
        index
    }

    /// The ext auth of one route rule served through `listener` of `gateway`; which policies
    /// won and lost goes to `trace`, for their status (see [`PolicyIndex::record`]).
    pub fn decide(
        &self,
        gateway: &ObjKey,
        listener: &str,
        rule: &RuleRef<'_>,
        trace: &mut Decisions,
    ) -> RouteAuth {
        // A rule's own ExtensionRef names its policy; one that does not exist fails the
        // rule closed rather than leave it to a broader policy (or none).
        if let Some(missing) = rule
            .extension_refs
            .iter()
            .find(|k| !self.known.contains(*k))
        {
            return RouteAuth::FailClosed {
                policy: missing.clone(),
                reason: format!("ExtensionRef: TrafficPolicy {missing} not found"),
            };
        }
        let named: Vec<&Entry> = rule
            .extension_refs
            .iter()
            .filter_map(|k| self.by_key.get(k))
            .collect();
        let selected = |rule_name: Option<&str>| -> Vec<&Entry> {
            self.route_selectors
                .get(&rule.route.key.namespace)
                .into_iter()
                .flatten()
                .filter(|(sel, _)| {
                    sel.rule.as_deref() == rule_name && sel.selects(rule.route.kind, rule.labels)
                })
                .map(|(_, e)| e)
                .collect()
        };
        let targeted =
            |t: Target| -> Vec<&Entry> { self.by_target.get(&t).into_iter().flatten().collect() };
        let mut levels: Vec<Vec<&Entry>> = Vec::with_capacity(5);
        levels.push(named);
        if let Some(name) = rule.rule {
            let mut level = targeted(Target::Route {
                key: rule.route.clone(),
                rule: Some(name.to_string()),
            });
            level.extend(selected(Some(name)));
            levels.push(level);
        }
        let mut level = targeted(Target::Route {
            key: rule.route.clone(),
            rule: None,
        });
        level.extend(selected(None));
        levels.push(level);
        levels.push(targeted(Target::Gateway {
            key: gateway.clone(),
            listener: Some(listener.to_string()),
        }));
        levels.push(targeted(Target::Gateway {
            key: gateway.clone(),
            listener: None,
        }));
        for mut entries in levels {
            entries.sort_by(|a, b| order(a, b));
            // A policy both named and selected counts once.
            entries.dedup_by(|a, b| a.key == b.key);
            let Some((winner, losers)) = entries.split_first() else {
                continue;
            };
            for loser in losers {
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

    /// Whether a change to an HTTPRoute in `namespace` can change which policies select it.
    pub fn selects_routes_in(&self, namespace: &str) -> bool {
        self.selectors
            .range(ObjKey::new(namespace.to_string(), String::new())..)
            .next()
            .is_some_and(|(policy, _)| policy.namespace == namespace)
    }

    /// Whether `name` is a TrafficPolicy.
    pub fn exists(&self, name: &ObjKey) -> bool {
        self.known.contains(name)
    }

    /// The routes some policy targets (their status reads those routes' parents).
    pub fn targeted_routes(&self) -> BTreeSet<ObjectRef> {
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
}
