//! State-of-the-world ADS, as a state machine without I/O.
//!
//! Every SotW request carries the client's whole subscription for its type, so a request
//! simply replaces it; LDS/CDS responses carry the full set (absence means deletion) and
//! RDS/EDS responses the subscribed names that exist. One response per type is in flight at
//! a time: the next waits for the ACK/NACK, which keeps ACK attribution exact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use crate::event::{Event, Output};
use crate::order::{self, DueMemo, EdsDeps, Ordered, Progress, RemovalGrace, wildcard_by_default};
use crate::resource::Resource;
use crate::snapshot::{Snapshot, content_version};
use crate::type_url::{CLUSTER, ENDPOINT};

type Content = BTreeMap<String, Arc<Resource>>;

/// One SotW ADS stream. Feed it requests and snapshots; send what it returns, in order.
#[derive(Default)]
pub struct SotwConnection {
    snapshot: Option<Arc<Snapshot>>,
    /// Present once the client asked for the type.
    types: BTreeMap<String, TypeState>,
    eds_deps: EdsDeps,
    grace: RemovalGrace,
    nonce: u64,
    out: Output<DiscoveryResponse>,
}

#[derive(Default)]
struct TypeState {
    /// Once the client named a resource, an empty list means "nothing", not "everything".
    ever_named: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    latest_nonce: Option<String>,
    in_flight: Option<Sent>,
    /// Content of the latest response, accepted or not: it is never sent twice in a row.
    last_sent: Option<Content>,
    /// Content the client accepted last.
    acked: Content,
    nacked: bool,
    /// A due response's content, and whether it adds names the client lacks.
    due: DueMemo<(Content, bool)>,
}

struct Sent {
    version: String,
    content: Content,
    adds: bool,
}

impl SotwConnection {
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
    pub fn on_tick(&mut self) -> Output<DiscoveryResponse> {
        self.flush();
        self.take()
    }

    pub fn on_request(&mut self, req: DiscoveryRequest) -> Output<DiscoveryResponse> {
        let t = req.type_url;
        if t.is_empty() {
            // ADS multiplexes by type URL; a request without one cannot be answered.
            return self.take();
        }
        self.eds_deps.invalidate();
        let st = self.types.entry(t.clone()).or_default();
        st.due.clear();
        // A nonce when nothing of this type was sent on this stream belongs to an earlier
        // stream: the request is a fresh subscription, not stale.
        if let Some(latest) = st
            .latest_nonce
            .as_deref()
            .filter(|_| !req.response_nonce.is_empty())
        {
            if latest != req.response_nonce {
                // The client will send its current subscription again with the latest nonce.
                self.out.events.push(Event::Stale {
                    type_url: t,
                    nonce: req.response_nonce,
                });
                return self.take();
            }
            if let Some(sent) = st.in_flight.take() {
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
                        st.acked = sent.content;
                        if t == CLUSTER {
                            self.eds_deps.retain(|n| st.acked.contains_key(n));
                            st.acked.values().for_each(|r| self.eds_deps.accepted(r));
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

        let star = req.resource_names.iter().any(|n| n == "*");
        st.ever_named |= !req.resource_names.is_empty();
        st.wildcard = star || (!st.ever_named && wildcard_by_default(&t));
        st.names = req
            .resource_names
            .into_iter()
            .filter(|n| n != "*")
            .collect();
        if !st.wildcard {
            // The client drops what it unsubscribed from; forget we sent it, so that a
            // later re-subscription is answered.
            let names = &st.names;
            if let Some(last) = st.last_sent.as_mut() {
                last.retain(|n, _| names.contains(n));
            }
            st.acked.retain(|n, _| names.contains(n));
            if t == CLUSTER {
                self.eds_deps.retain(|n| names.contains(n));
            }
        }
        self.flush();
        self.take()
    }

    /// A new snapshot for the group; `None` is not accepted because a removed group keeps
    /// serving what it had (see [`crate::SnapshotCache::remove`]).
    pub fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Output<DiscoveryResponse> {
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
        // Until the group has a snapshot nothing is answered: an empty answer would make
        // Envoy drop its config, while silence lets `initial_fetch_timeout` decide.
        if let Some(snap) = self.snapshot.clone() {
            order::flush(self, &snap);
        }
    }

    fn take(&mut self) -> Output<DiscoveryResponse> {
        std::mem::take(&mut self.out)
    }

    /// The response this type needs now, with whether it adds names the client lacks.
    fn due(&self, t: &str, st: &TypeState, snap: &Snapshot) -> Option<Arc<(Content, bool)>> {
        // Only clusters are retained: SotW has no removal for named types, and listeners
        // and scopes naming what left are exactly what must go.
        let keep = |name: &str| t == CLUSTER && !self.grace.removable(CLUSTER, name);
        st.due.get_or(self.grace.generation(), || {
            Self::compute_due(t, st, snap, keep)
        })
    }

    fn compute_due(
        t: &str,
        st: &TypeState,
        snap: &Snapshot,
        keep: impl Fn(&str) -> bool,
    ) -> Option<(Content, bool)> {
        let wanted = |name: &str| st.wildcard || st.names.contains(name);
        let mut content: Content = snap
            .resources(t)
            .filter(|r| wanted(&r.name))
            .map(|r| (r.name.clone(), Arc::clone(r)))
            .collect();
        let in_flight = st.in_flight.iter().flat_map(|s| s.content.iter());
        for (name, r) in in_flight.chain(st.acked.iter()) {
            if wanted(name) && !content.contains_key(name) && keep(name) {
                content.insert(name.clone(), Arc::clone(r));
            }
        }
        let needed = match &st.last_sent {
            None => st.wildcard || !content.is_empty(),
            // Full-set types: any difference matters, removals included.
            Some(last) if st.wildcard => !same_versions(last, &content),
            // Named types: only something the client lacks; a name that disappeared from
            // the snapshot is left in place (SotW has no removal for these types).
            Some(last) => content
                .iter()
                .any(|(n, r)| last.get(n).is_none_or(|l| l.version != r.version)),
        };
        if !needed {
            return None;
        }
        let adds = content.keys().any(|n| !st.acked.contains_key(n));
        Some((content, adds))
    }
}

fn same_versions(a: &Content, b: &Content) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((an, ar), (bn, br))| an == bn && ar.version == br.version)
}

impl Ordered for SotwConnection {
    fn subscribed_types(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }

    fn grace(&mut self) -> &mut RemovalGrace {
        &mut self.grace
    }

    fn absent_held(&self, snap: &Snapshot) -> Vec<(&'static str, String)> {
        let Some(st) = self.types.get(CLUSTER) else {
            return Vec::new();
        };
        let in_flight = st.in_flight.iter().flat_map(|s| s.content.keys());
        let names: BTreeSet<&String> = in_flight.chain(st.acked.keys()).collect();
        snap.missing(CLUSTER, names)
            .into_iter()
            .map(|n| (CLUSTER, n.clone()))
            .collect()
    }

    fn progress(&self, t: &str, snap: &Snapshot) -> Progress {
        let Some(st) = self.types.get(t) else {
            return Progress::default();
        };
        Progress {
            subscribed: true,
            in_flight: st.in_flight.is_some(),
            in_flight_adds: st.in_flight.as_ref().is_some_and(|s| s.adds),
            due: self.due(t, st, snap).map(|d| d.1),
            nacked: st.nacked,
        }
    }

    fn eds_covered(&self, snap: &Snapshot) -> bool {
        let eds = self.types.get(ENDPOINT);
        self.eds_deps.covered(snap, |name| {
            eds.is_some_and(|st| st.wildcard || st.names.contains(name))
        })
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
        let (content, adds) = (due.0.clone(), due.1);
        // A cluster that changes is warmed anew by Envoy, which waits for its endpoints
        // (`initial_fetch_timeout`, 15 s) even when they did not change: they are resent.
        let rewarmed: Vec<String> = match (t == CLUSTER, &st.last_sent) {
            (true, Some(last)) => content
                .values()
                .filter(|r| last.get(&r.name).is_some_and(|l| l.version != r.version))
                .filter_map(|r| order::eds_service_name(r))
                .collect(),
            _ => Vec::new(),
        };
        if let Some(eds) = self
            .types
            .get_mut(ENDPOINT)
            .filter(|_| !rewarmed.is_empty())
        {
            if let Some(last) = eds.last_sent.as_mut() {
                for name in &rewarmed {
                    last.remove(name);
                }
            }
            eds.due.clear();
        }
        // The snapshot's type version names the response unless it carries retained
        // clusters, which no snapshot version describes.
        let from_snapshot = content
            .values()
            .all(|r| snap.get(t, &r.name).is_some_and(|s| s.version == r.version));
        let version = if from_snapshot {
            snap.version(t)
        } else {
            content_version(content.values())
        };
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        self.out.responses.push(DiscoveryResponse {
            version_info: version.clone(),
            resources: content.values().map(|r| r.body.clone()).collect(),
            type_url: t.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        });
        if let Some(st) = self.types.get_mut(t) {
            st.due.clear();
            st.latest_nonce = Some(nonce);
            st.last_sent = Some(content.clone());
            st.in_flight = Some(Sent {
                version,
                content,
                adds,
            });
        }
        true
    }
}

#[cfg(test)]
mod tests;
