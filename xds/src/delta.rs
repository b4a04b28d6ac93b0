//! Incremental (delta) ADS, as a state machine without I/O.
//!
//! Per type the connection tracks which version of each resource the client holds and sends
//! only the difference: changed or new resources, and `removed_resources` for subscribed
//! names that left the snapshot. The held versions are updated when a response is sent, so
//! a rejected version is never resent; the next snapshot that changes it is. One response
//! per type is in flight at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as PbResource,
};

use crate::event::{Event, Output};
use crate::order::{self, DueMemo, EdsDeps, Ordered, Progress, RemovalGrace, wildcard_by_default};
use crate::resource::Resource;
use crate::snapshot::Snapshot;
use crate::type_url::{CLUSTER, ENDPOINT};

/// One delta ADS stream. Feed it requests and snapshots; send what it returns, in order.
#[derive(Default)]
pub struct DeltaConnection {
    snapshot: Option<Arc<Snapshot>>,
    /// Present once the client asked for the type.
    types: BTreeMap<String, TypeState>,
    eds_deps: EdsDeps,
    grace: RemovalGrace,
    nonce: u64,
    out: Output<DeltaDiscoveryResponse>,
}

#[derive(Default)]
struct TypeState {
    /// Once the client subscribed to any name, the legacy "no names = wildcard" is over.
    ever_named: bool,
    /// Explicitly subscribed to "*".
    star: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// Name → version the client holds (or was sent and rejected), covered names only.
    client_has: BTreeMap<String, String>,
    /// A fresh wildcard subscription is answered even when there is nothing to send, so
    /// that Envoy finishes initialising a type that happens to be empty.
    owe_response: bool,
    latest_nonce: Option<String>,
    in_flight: Option<Sent>,
    nacked: bool,
    due: DueMemo<Due>,
}

impl TypeState {
    fn covers(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

struct Sent {
    version: String,
    due: Arc<Due>,
}

struct Due {
    resources: Vec<Arc<Resource>>,
    removed: Vec<String>,
    adds: bool,
}

impl DeltaConnection {
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection that removes clusters (and delta endpoints) only once the ACKs that made
    /// the removal safe are `delay` old (see [`crate::order`]).
    pub fn with_removal_grace(delay: std::time::Duration) -> Self {
        Self {
            grace: RemovalGrace::new(delay),
            ..Self::default()
        }
    }

    /// True when the client runs the current snapshot: every type it asked for is at rest —
    /// nothing due (held removals aside), nothing in flight, nothing rejected. A client that
    /// reconnects holding the current versions is at rest without a response.
    pub fn settled(&self) -> bool {
        let Some(snap) = self.snapshot.as_deref() else {
            return false;
        };
        // The cheap checks first: in a burst something is nearly always in flight, and
        // what is due is computed only for a stream that is otherwise idle.
        if self.types.is_empty()
            || self
                .types
                .values()
                .any(|st| st.in_flight.is_some() || st.nacked)
        {
            return false;
        }
        self.types.keys().all(|t| self.progress(t, snap).at_rest())
    }

    /// When [`Self::on_tick`] should run next: removals held back by the grace period.
    pub fn wakeup(&self) -> Option<std::time::Instant> {
        self.grace.wakeup()
    }

    /// Sends what became due with time alone (removals whose grace period ended).
    pub fn on_tick(&mut self) -> Output<DeltaDiscoveryResponse> {
        self.flush();
        self.take()
    }

    pub fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Output<DeltaDiscoveryResponse> {
        let t = req.type_url;
        if t.is_empty() {
            return self.take();
        }
        let first = !self.types.contains_key(&t);
        self.eds_deps.invalidate();
        let st = self.types.entry(t.clone()).or_default();
        st.due.clear();
        // A nonce when nothing of this type was sent on this stream belongs to an earlier
        // stream: nothing to acknowledge.
        if let Some(latest) = st
            .latest_nonce
            .as_deref()
            .filter(|_| !req.response_nonce.is_empty())
        {
            if latest != req.response_nonce {
                // Unlike SotW, the subscription changes below are deltas that the client
                // will not repeat, so only the ACK/NACK part of a stale request is ignored.
                self.out.events.push(Event::Stale {
                    type_url: t.clone(),
                    nonce: req.response_nonce,
                });
            } else if let Some(sent) = st.in_flight.take() {
                let nonce = req.response_nonce;
                match req.error_detail {
                    Some(err) => {
                        st.nacked = true;
                        self.out.events.push(Event::Nack {
                            type_url: t.clone(),
                            version: sent.version,
                            nonce,
                            message: err.message,
                        });
                    }
                    None => {
                        st.nacked = false;
                        if t == CLUSTER {
                            sent.due
                                .resources
                                .iter()
                                .for_each(|r| self.eds_deps.accepted(r));
                            sent.due
                                .removed
                                .iter()
                                .for_each(|n| self.eds_deps.removed(n));
                        }
                        self.out.events.push(Event::Ack {
                            type_url: t.clone(),
                            version: sent.version,
                            nonce,
                        });
                    }
                }
            }
        }

        // Only a subscription change can leave held names uncovered.
        let subscription_changed = first
            || !req.resource_names_subscribe.is_empty()
            || !req.resource_names_unsubscribe.is_empty();
        if first {
            // A reconnecting client reports what it kept; unchanged resources are not resent.
            st.client_has = req.initial_resource_versions.into_iter().collect();
        }
        for name in req.resource_names_subscribe {
            st.ever_named = true;
            if name == "*" {
                st.star = true;
            } else {
                st.names.insert(name);
            }
        }
        for name in req.resource_names_unsubscribe {
            if name == "*" {
                st.star = false;
            } else {
                st.names.remove(&name);
                // Forgetting it means a wildcard that still covers it resends it, which
                // the protocol asks for.
                st.client_has.remove(&name);
            }
        }
        st.wildcard = st.star || (!st.ever_named && wildcard_by_default(&t));
        if subscription_changed {
            let (wildcard, names) = (st.wildcard, &st.names);
            st.client_has.retain(|n, _| wildcard || names.contains(n));
        }
        if first && st.wildcard && st.client_has.is_empty() {
            st.owe_response = true;
        }
        if t == CLUSTER {
            let st = &*st;
            self.eds_deps.retain(|n| st.covers(n));
        }
        self.flush();
        self.take()
    }

    /// A new snapshot for the group (see [`crate::sotw::SotwConnection::on_snapshot`]).
    pub fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Output<DeltaDiscoveryResponse> {
        if !self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.same_versions(&snapshot))
        {
            self.snapshot = Some(snapshot);
            self.types.values().for_each(|st| st.due.clear());
            self.eds_deps.invalidate();
            self.flush();
        }
        self.take()
    }

    fn flush(&mut self) {
        // No snapshot yet: stay silent rather than tell the client its config is empty.
        if let Some(snap) = self.snapshot.clone() {
            order::flush(self, &snap);
        }
    }

    fn take(&mut self) -> Output<DeltaDiscoveryResponse> {
        std::mem::take(&mut self.out)
    }

    fn due(&self, t: &str, st: &TypeState, snap: &Snapshot) -> Option<Arc<Due>> {
        // Removing a cluster, or the endpoints of one the client may still route to, waits
        // for the grace period; an endpoint removal would leave the cluster with no hosts.
        let removable = |name: &str| match t {
            CLUSTER => self.grace.removable(CLUSTER, name),
            ENDPOINT => self.grace.removable(ENDPOINT, name),
            _ => true,
        };
        st.due.get_or(self.grace.generation(), || {
            Self::compute_due(st, t, snap, removable)
        })
    }

    /// One merge walk over the snapshot's resources, the subscribed names and the held
    /// versions, all sorted by name: lookups per resource were most of a scoped push's CPU.
    fn compute_due(
        st: &TypeState,
        t: &str,
        snap: &Snapshot,
        removable: impl Fn(&str) -> bool,
    ) -> Option<Due> {
        let mut resources = Vec::new();
        let mut removed = Vec::new();
        let mut adds = false;
        let mut names = st.names.iter().peekable();
        let mut held = st.client_has.iter().peekable();
        for r in snap.resources(t) {
            let name = r.name.as_str();
            // Held names the snapshot no longer has.
            while let Some((n, _)) = held.next_if(|(n, _)| n.as_str() < name) {
                removed.push(n.clone());
            }
            let version = held.next_if(|(n, _)| n.as_str() == name).map(|(_, v)| v);
            let covered = st.wildcard || {
                while names.next_if(|n| n.as_str() < name).is_some() {}
                names.next_if(|n| n.as_str() == name).is_some()
            };
            if covered && version != Some(&r.version) {
                adds |= version.is_none();
                resources.push(r.clone());
            }
        }
        removed.extend(held.map(|(n, _)| n.clone()));
        removed.retain(|n| removable(n));
        if resources.is_empty() && removed.is_empty() && !st.owe_response {
            return None;
        }
        Some(Due {
            resources,
            removed,
            adds,
        })
    }
}

impl Ordered for DeltaConnection {
    fn subscribed_types(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }

    fn grace(&mut self) -> &mut RemovalGrace {
        &mut self.grace
    }

    fn absent_held(&self, snap: &Snapshot) -> Vec<(&'static str, String)> {
        [CLUSTER, ENDPOINT]
            .into_iter()
            .filter_map(|t| self.types.get(t).map(|st| (t, st)))
            .flat_map(|(t, st)| {
                snap.missing(t, st.client_has.keys())
                    .into_iter()
                    .map(move |n| (t, n.clone()))
            })
            .collect()
    }

    fn progress(&self, t: &str, snap: &Snapshot) -> Progress {
        let Some(st) = self.types.get(t) else {
            return Progress::default();
        };
        Progress {
            subscribed: true,
            in_flight: st.in_flight.is_some(),
            in_flight_adds: st.in_flight.as_ref().is_some_and(|s| s.due.adds),
            due: self.due(t, st, snap).map(|d| d.adds),
            nacked: st.nacked,
        }
    }

    fn eds_covered(&self, snap: &Snapshot) -> bool {
        let eds = self.types.get(ENDPOINT);
        self.eds_deps
            .covered(snap, |name| eds.is_some_and(|st| st.covers(name)))
    }

    fn send_due(&mut self, t: &str, snap: &Snapshot) -> bool {
        let Some(st) = self.types.get(t) else {
            return false;
        };
        if st.in_flight.is_some() {
            return false;
        }
        let Some(due) = self.due(t, st, snap) else {
            return false;
        };
        // A cluster that changes is warmed anew by Envoy, which waits for its endpoints
        // (`initial_fetch_timeout`, 15 s) even when they did not change: they are resent.
        let rewarmed: Vec<String> = if t == CLUSTER {
            due.resources
                .iter()
                .filter(|r| st.client_has.get(&r.name).is_some_and(|v| *v != r.version))
                .filter_map(|r| order::eds_service_name(r))
                .collect()
        } else {
            Vec::new()
        };
        if let Some(eds) = self
            .types
            .get_mut(ENDPOINT)
            .filter(|_| !rewarmed.is_empty())
        {
            // Held, but at no version the snapshot has: resent as an update, which holds
            // nothing after it back (unlike a name the client never had).
            for name in &rewarmed {
                if let Some(v) = eds.client_has.get_mut(name) {
                    v.clear();
                }
            }
            eds.due.clear();
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let version = snap.version(t);
        self.out.responses.push(DeltaDiscoveryResponse {
            system_version_info: version.clone(),
            resources: due
                .resources
                .iter()
                .map(|r| PbResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.body.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: t.to_string(),
            removed_resources: due.removed.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        });
        if let Some(st) = self.types.get_mut(t) {
            st.due.clear();
            for r in &due.resources {
                st.client_has.insert(r.name.clone(), r.version.clone());
            }
            for n in &due.removed {
                st.client_has.remove(n);
            }
            st.owe_response = false;
            st.latest_nonce = Some(nonce);
            st.in_flight = Some(Sent { version, due });
        }
        true
    }
}

#[cfg(test)]
mod tests;
