//! A Gateway's `Programmed` as its proxies make it true (controller mode): the build says the
//! listeners can be served; this says whether anything serves them — the provisioned
//! Deployment has an available replica (its readiness needs Envoy's initial configuration),
//! and the proxies connected to this replica (the leader) run what they were last sent.
//! Pure: the xDS server's proxy table and the Deployments' status come in as values.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gatehouse_xds::ProxyState;

use crate::model::{self, condition_names as cond};
use crate::store::ObjKey;

/// A proxy that has not accepted what it was sent for this long makes its Gateway
/// `Programmed=False`: an update normally takes milliseconds, and a proxy stuck warming or
/// waiting on a dependency serves an older configuration than the status would claim.
pub const LAG: Duration = Duration::from_secs(10);

/// What tracking applies (set once by the controller; standalone and translate track nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracking {
    /// Gatehouse provisions each Gateway's Deployment, so its availability counts.
    pub deployments: bool,
}

/// A provisioned proxy Deployment's replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    /// `namespace/name` of the Deployment.
    pub deployment: String,
    pub available: i32,
    pub desired: i32,
}

/// A Gateway's connected proxies, summarized without timestamps so that the summary changes
/// only when the status should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proxies {
    /// Connected proxies that run what they were sent (or are taking an update, for less
    /// than [`LAG`]).
    Current { connected: usize },
    /// Connected, none has accepted a configuration yet.
    Waiting { connected: usize },
    /// This proxy has not accepted what it was sent for longer than [`LAG`].
    Lagging { node: String },
}

/// The summary of one Gateway's proxies at `now`; `None` without any.
pub fn summarize(states: &[ProxyState], now: Instant) -> Option<Proxies> {
    if states.is_empty() {
        return None;
    }
    let lagging = states
        .iter()
        .filter(|s| !s.settled && now.saturating_duration_since(s.since) >= LAG)
        .map(|s| s.node.clone())
        .min();
    if let Some(node) = lagging {
        return Some(Proxies::Lagging { node });
    }
    let connected = states.len();
    if states.iter().any(|s| s.ever_settled) {
        Some(Proxies::Current { connected })
    } else {
        Some(Proxies::Waiting { connected })
    }
}

/// The `Programmed=False` a Gateway whose listeners can be served gets from its proxies, or
/// `None` when they serve it.
pub fn pending(
    tracking: Tracking,
    gateway: &ObjKey,
    availability: Option<&Availability>,
    has_address: bool,
    proxies: Option<&Proxies>,
) -> Option<model::Condition> {
    let fail = |reason: &str, message: String| {
        Some(model::Condition::fail(cond::PROGRAMMED, reason, message))
    };
    if tracking.deployments {
        match availability {
            None => {
                return fail(
                    cond::PENDING,
                    format!(
                        "waiting for the proxy Deployment {}/{} to be created",
                        gateway.namespace,
                        crate::provisioned::proxy_name(&gateway.name)
                    ),
                );
            }
            Some(a) if a.available < 1 => {
                return fail(
                    cond::PENDING,
                    format!(
                        "proxy Deployment {} has {} of {} replicas available",
                        a.deployment, a.available, a.desired
                    ),
                );
            }
            Some(_) => {}
        }
        if !has_address {
            return fail(
                cond::ADDRESS_NOT_ASSIGNED,
                "the proxy Service has no address yet".to_string(),
            );
        }
    }
    match proxies {
        // With provisioning, an available replica passed its readiness probe, which Envoy
        // answers only once its initial configuration arrived — from whichever controller
        // replica it dialled: the leader's own connections are not all there are.
        None if tracking.deployments => None,
        None => fail(
            cond::PENDING,
            "no proxy of this Gateway is connected to Gatehouse (the leader)".to_string(),
        ),
        Some(Proxies::Waiting { connected }) => fail(
            cond::PENDING,
            format!("{connected} proxies connected; none has accepted its configuration yet"),
        ),
        Some(Proxies::Lagging { node }) => fail(
            cond::PENDING,
            format!(
                "proxy {node} has not accepted the configuration it was sent for over {}s",
                LAG.as_secs()
            ),
        ),
        Some(Proxies::Current { .. }) => None,
    }
}

/// Summaries of every group's proxies, keyed by Gateway (groups are `namespace/name`).
pub fn by_gateway(
    groups: BTreeMap<String, Vec<ProxyState>>,
    now: Instant,
) -> BTreeMap<ObjKey, Proxies> {
    groups
        .into_iter()
        .filter_map(|(g, states)| {
            let (ns, name) = g.split_once('/')?;
            Some((ObjKey::new(ns, name), summarize(&states, now)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(node: &str, settled: bool, ever: bool, age: Duration, now: Instant) -> ProxyState {
        ProxyState {
            node: node.into(),
            settled,
            ever_settled: ever,
            since: now - age,
        }
    }

    #[test]
    fn summaries() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(summarize(&[], now), None);
        assert_eq!(
            summarize(&[state("a", false, false, s, now)], now),
            Some(Proxies::Waiting { connected: 1 })
        );
        // Taking an update for a moment is still current.
        assert_eq!(
            summarize(
                &[
                    state("a", false, true, s, now),
                    state("b", true, true, s * 30, now)
                ],
                now
            ),
            Some(Proxies::Current { connected: 2 })
        );
        // Stuck past LAG, even with another proxy current.
        assert_eq!(
            summarize(
                &[
                    state("b", true, true, s, now),
                    state("a", false, true, LAG + s, now)
                ],
                now
            ),
            Some(Proxies::Lagging { node: "a".into() })
        );
        // A new proxy that never settled, stuck past LAG.
        assert_eq!(
            summarize(&[state("c", false, false, LAG, now)], now),
            Some(Proxies::Lagging { node: "c".into() })
        );
    }

    #[test]
    fn pending_reasons_in_order() {
        let gw = ObjKey::new("ns", "gw");
        let tracked = Tracking { deployments: true };
        let current = Proxies::Current { connected: 1 };
        let up = Availability {
            deployment: "ns/gatehouse-gw".into(),
            available: 1,
            desired: 2,
        };
        let down = Availability {
            available: 0,
            ..up.clone()
        };
        let reason = |c: Option<model::Condition>| c.map(|c| (c.reason, c.message));
        let r = reason(pending(tracked, &gw, None, true, Some(&current))).unwrap();
        assert_eq!(r.0, "Pending");
        assert!(r.1.contains("ns/gatehouse-gw to be created"), "{}", r.1);
        let r = reason(pending(tracked, &gw, Some(&down), true, Some(&current))).unwrap();
        assert_eq!(
            r.1,
            "proxy Deployment ns/gatehouse-gw has 0 of 2 replicas available"
        );
        let r = reason(pending(tracked, &gw, Some(&up), false, Some(&current))).unwrap();
        assert_eq!(r.0, "AddressNotAssigned");
        // Provisioned and available: proxies connected to another replica count.
        assert_eq!(pending(tracked, &gw, Some(&up), true, None), None);
        let waiting = Proxies::Waiting { connected: 2 };
        let r = reason(pending(tracked, &gw, Some(&up), true, Some(&waiting))).unwrap();
        assert!(r.1.starts_with("2 proxies connected"), "{}", r.1);
        assert_eq!(pending(tracked, &gw, Some(&up), true, Some(&current)), None);
        // Without provisioning only the proxies count.
        let untracked = Tracking { deployments: false };
        assert_eq!(pending(untracked, &gw, None, false, Some(&current)), None);
        let r = reason(pending(untracked, &gw, None, false, None)).unwrap();
        assert!(r.1.contains("no proxy"), "{}", r.1);
        let lagging = Proxies::Lagging { node: "n".into() };
        let r = reason(pending(tracked, &gw, Some(&up), true, Some(&lagging))).unwrap();
        assert!(r.1.starts_with("proxy n has not accepted"), "{}", r.1);
    }
}
