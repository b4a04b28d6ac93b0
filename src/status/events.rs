//! Kubernetes Events for status transitions an operator should hear about without polling
//! status: a condition that stops holding (a route failing closed, a policy overridden,
//! invalid parameters, a proxy rejecting an update) and a Gateway programmed again.
//!
//! [`transitions`] is pure (two model statuses in, events out); [`Events`] publishes them
//! through kube's `Recorder` (events.k8s.io/v1, deduplicated into series), a bounded number
//! per round so a change that breaks 10,000 routes does not become 10,000 API calls.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::desired::changed_between;
use crate::metrics::Metrics;
use crate::model::{Condition, Status, condition_names as cond};
use crate::store::{Kind, KindFn, ObjKey, StoredKind};

/// Most Events published per status round; the rest are counted in the log line.
pub const MAX_PER_ROUND: usize = 32;

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Noted {
    pub kind: Kind,
    pub key: ObjKey,
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Conditions of one object, each with where it sits (a listener, a parent, an ancestor).
type Flat = BTreeMap<(String, String), Condition>;

fn flat<'a>(entries: impl Iterator<Item = (String, &'a [Condition])>) -> Flat {
    let mut out = Flat::new();
    for (place, conditions) in entries {
        for c in conditions {
            out.insert((place.clone(), c.type_.clone()), c.clone());
        }
    }
    out
}

/// `what ns/name[/section]: `, prefixed to a note.
fn place(what: &str, namespace: &str, name: &str, section: Option<&str>) -> String {
    match section {
        Some(section) => format!("{what} {namespace}/{name}/{section}: "),
        None => format!("{what} {namespace}/{name}: "),
    }
}

fn of(status: &Status, kind: Kind, key: &ObjKey) -> Flat {
    match kind {
        Kind::Gateway => status
            .gateways
            .get(key)
            .map(|g| {
                let own = std::iter::once((String::new(), g.conditions.as_slice()));
                let listeners = g
                    .listeners
                    .iter()
                    .map(|l| (format!("listener {}: ", l.name), l.conditions.as_slice()));
                flat(own.chain(listeners))
            })
            .unwrap_or_default(),
        Kind::HttpRoute | Kind::GrpcRoute => status
            .routes_of(kind)
            .get(key)
            .map(|parents| {
                flat(parents.iter().map(|p| {
                    (
                        place(
                            "parent",
                            &p.parent_ref.namespace,
                            &p.parent_ref.name,
                            p.parent_ref.section_name.as_deref(),
                        ),
                        p.conditions.as_slice(),
                    )
                }))
            })
            .unwrap_or_default(),
        Kind::TrafficPolicy | Kind::BackendTlsPolicy => {
            let map = if kind == Kind::TrafficPolicy {
                &status.traffic_policies
            } else {
                &status.backend_tls_policies
            };
            map.get(key)
                .map(|ancestors| {
                    flat(ancestors.iter().map(|a| {
                        (
                            place(
                                &a.ancestor_ref.kind,
                                &a.ancestor_ref.namespace,
                                &a.ancestor_ref.name,
                                a.ancestor_ref.section_name.as_deref(),
                            ),
                            a.conditions.as_slice(),
                        )
                    }))
                })
                .unwrap_or_default()
        }
        Kind::GatewayClass => status
            .gateway_classes
            .get(key)
            .map(|c| flat(std::iter::once((String::new(), c.as_slice()))))
            .unwrap_or_default(),
        Kind::GatewayExtension => status
            .gateway_extensions
            .get(key)
            .map(|c| flat(std::iter::once((String::new(), c.as_slice()))))
            .unwrap_or_default(),
        _ => Flat::new(),
    }
}

/// The Events that the change from `before` to `after` calls for: a Warning for each
/// condition that newly does not hold (or holds no longer for a different reason), a Normal
/// `Programmed` for a Gateway programmed again.
pub fn transitions(before: &Status, after: &Status) -> Vec<Noted> {
    let mut out = Vec::new();
    for (kind, keys) in changed_between(before, after) {
        for key in keys {
            let old = of(before, kind, &key);
            for ((place, type_), c) in of(after, kind, &key) {
                let was = old.get(&(place.clone(), type_.clone()));
                let note = |c: &Condition| format!("{place}{}: {}", c.type_, c.message);
                if c.status == "False" {
                    if was.is_some_and(|w| w.status == "False" && w.reason == c.reason) {
                        continue;
                    }
                    out.push(Noted {
                        kind,
                        key: key.clone(),
                        warning: true,
                        reason: c.reason.clone(),
                        note: note(&c),
                    });
                } else if kind == Kind::Gateway
                    && place.is_empty()
                    && type_ == cond::PROGRAMMED
                    && was.is_some_and(|w| w.status == "False")
                {
                    out.push(Noted {
                        kind,
                        key: key.clone(),
                        warning: false,
                        reason: cond::PROGRAMMED.to_string(),
                        note: note(&c),
                    });
                }
            }
        }
    }
    out
}

struct ApiVersion;

impl KindFn for ApiVersion {
    type Output = String;
    fn call<K: StoredKind>(self) -> String {
        K::api_version(&()).to_string()
    }
}

/// Publishes Events as the controller.
pub struct Events {
    recorder: Recorder,
    metrics: std::sync::Arc<Metrics>,
}

impl Events {
    pub fn new(client: kube::Client, instance: String, metrics: std::sync::Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "gatehouse".into(),
            instance: Some(instance),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            metrics,
        }
    }

    /// Publishes up to [`MAX_PER_ROUND`] of `noted`; a failed publish is logged, never
    /// retried (the status carries the same news).
    pub async fn publish(&self, noted: Vec<Noted>) {
        let total = noted.len();
        for n in noted.into_iter().take(MAX_PER_ROUND) {
            let reference = ObjectReference {
                api_version: Some(n.kind.with(ApiVersion)),
                kind: Some(n.kind.name().to_string()),
                name: Some(n.key.name.clone()),
                namespace: (!n.kind.cluster_scoped()).then(|| n.key.namespace.clone()),
                ..Default::default()
            };
            let event = Event {
                type_: if n.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: n.reason.chars().take(128).collect(),
                note: Some(n.note.chars().take(1024).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            match self.recorder.publish(&event, &reference).await {
                Ok(()) => {
                    self.metrics
                        .events
                        .get_or_create(&[("reason", n.reason.clone())])
                        .inc();
                }
                Err(e) => {
                    tracing::warn!(kind = %n.kind, object = %n.key, reason = %n.reason, error = %e, "publishing an Event failed")
                }
            }
        }
        if total > MAX_PER_ROUND {
            tracing::info!(
                published = MAX_PER_ROUND,
                suppressed = total - MAX_PER_ROUND,
                "more status transitions than Events published per round; the rest are only in status"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GatewayStatus;

    fn gateway(programmed: Condition) -> Status {
        let mut s = Status::default();
        s.gateways.insert(
            ObjKey::new("ns", "gw"),
            GatewayStatus {
                conditions: vec![
                    Condition::ok(cond::ACCEPTED, cond::ACCEPTED, "ok"),
                    programmed,
                ],
                listeners: vec![],
                addresses: vec![],
            },
        );
        s
    }

    #[test]
    fn warnings_on_new_failures_and_normal_on_recovery() {
        let ok = gateway(Condition::ok(cond::PROGRAMMED, cond::PROGRAMMED, "served"));
        let nack = gateway(Condition::fail(
            cond::PROGRAMMED,
            cond::INVALID,
            "proxy p rejected Listener",
        ));
        let pending = gateway(Condition::fail(cond::PROGRAMMED, cond::PENDING, "no proxy"));
        let e = transitions(&ok, &nack);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].warning);
        assert_eq!(e[0].reason, "Invalid");
        assert_eq!(e[0].note, "Programmed: proxy p rejected Listener");
        assert_eq!(e[0].kind, Kind::Gateway);
        // Same failure, same reason: nothing new to say.
        assert!(transitions(&nack, &nack).is_empty());
        // Another reason is news.
        assert_eq!(transitions(&nack, &pending)[0].reason, "Pending");
        let back = transitions(&pending, &ok);
        assert_eq!(back.len(), 1);
        assert!(!back[0].warning);
        assert_eq!(back[0].reason, "Programmed");
        // A first status that holds says nothing.
        assert!(transitions(&Status::default(), &ok).is_empty());
    }
}
