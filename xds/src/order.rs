//! Make-before-break push order, shared by the SotW and delta state machines.
//!
//! Envoy applies a route update at once but warms a new cluster until its endpoints arrive,
//! so a route that names a cluster Envoy does not have yet (or no longer has) answers 503
//! `cluster_not_found`. The policy, per connection:
//!
//! * Types go out in the order clusters → endpoints → listeners → route scopes → routes;
//!   other types are unordered. A scope names the RouteConfiguration it selects, the way a
//!   listener does, so scopes sit between the two.
//! * Listeners, scopes and routes wait while an earlier type is introducing names the client
//!   has not accepted. Endpoints never wait for clusters: Envoy asks for them by name while
//!   the new cluster warms and ACKs the clusters only once they have warmed. Otherwise a type
//!   waits while an earlier one has an un-ACKed response that adds resources, or a due one
//!   that would. Plain updates of existing resources do not hold later types back (one ADS
//!   stream is ordered anyway), so endpoint churn cannot starve route updates.
//! * Listeners, scopes and routes also wait until the client subscribed to the endpoints of
//!   every EDS cluster it accepted (Envoy asks for them only after taking the cluster).
//! * Clusters that left the snapshot are kept in what the client is told ("retained") until
//!   listeners and routes have been ACKed at the current snapshot, since those may still
//!   name them; only then are they removed. A NACKed route keeps them until a later ACK.
//!   Delta holds endpoint removals back the same way (SotW never removes endpoints).
//! * Even then, removals wait for a grace period ([`RemovalGrace`]). Envoy ACKs a listener or
//!   route update as soon as its main thread accepted it, but requests that the old config
//!   sent to a cluster are still in flight on the workers, and removing the cluster resets
//!   them at once (`ClusterManagerImpl::removeCluster` erases the thread-local cluster, whose
//!   connection pools reset their streams). An ext_authz check reset that way fails closed:
//!   an allowed request answered 403 without reaching the auth server (issue 17).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use prost::Message;

use crate::resource::Resource;
use crate::snapshot::Snapshot;
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SCOPED_ROUTE};

/// The make-before-break order.
pub const PUSH_ORDER: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE];

pub(crate) fn is_ordered(type_url: &str) -> bool {
    PUSH_ORDER.contains(&type_url)
}

/// Types whose empty subscription means "everything" (the legacy wildcard of the protocol).
/// Envoy subscribes to route scopes without names, like listeners and clusters.
pub(crate) fn wildcard_by_default(type_url: &str) -> bool {
    type_url == LISTENER || type_url == CLUSTER || type_url == SCOPED_ROUTE
}

/// Where one type stands, as far as the types after it are concerned.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Progress {
    pub subscribed: bool,
    pub in_flight: bool,
    pub in_flight_adds: bool,
    /// `Some(adds)` when a response is due; `adds` if it introduces names.
    pub due: Option<bool>,
    /// The last response of this type was rejected.
    pub nacked: bool,
}

impl Progress {
    fn blocks_later(&self) -> bool {
        self.in_flight_adds || self.due == Some(true)
    }

    /// The client holds exactly the current snapshot's view of this type.
    pub(crate) fn at_rest(&self) -> bool {
        !self.subscribed || (!self.in_flight && self.due.is_none() && !self.nacked)
    }
}

/// What a connection state machine exposes to the ordering policy.
pub(crate) trait Ordered {
    fn subscribed_types(&self) -> Vec<String>;
    fn progress(&self, type_url: &str, snap: &Snapshot) -> Progress;
    /// Whether the client subscribed to the endpoints of all the EDS clusters it accepted.
    fn eds_covered(&self, snap: &Snapshot) -> bool;
    /// Queues the type's due response unless one is in flight; true if it queued one.
    fn send_due(&mut self, type_url: &str, snap: &Snapshot) -> bool;
    /// (type, name) of the clusters (and, for delta, endpoints) the client holds or was sent
    /// that the snapshot no longer has: what removals are about.
    fn absent_held(&self, snap: &Snapshot) -> Vec<(&'static str, String)>;
    fn grace(&mut self) -> &mut RemovalGrace;
}

/// Holds each removal back until the ACKs that made it safe are `delay` old, so that requests
/// the old listeners and routes started can finish on the clusters they use.
///
/// Per name: a resource that left the snapshot is stamped the first time the client's
/// listeners and routes are at rest without it, and removed `delay` later. Snapshots keep
/// coming meanwhile without restarting the wait (churn must not starve removals); a name
/// that comes back is forgotten, and stamped again when it leaves again.
#[derive(Debug, Default)]
pub(crate) struct RemovalGrace {
    delay: Duration,
    since: BTreeMap<(&'static str, String), Instant>,
    removable: BTreeSet<(&'static str, String)>,
    /// Changes whenever `removable` does; due responses are memoised by it.
    generation: u64,
}

impl RemovalGrace {
    pub(crate) fn new(delay: Duration) -> Self {
        RemovalGrace {
            delay,
            ..Default::default()
        }
    }

    /// `absent`: what the client holds that the snapshot lacks; `ready`: whether listeners and
    /// routes are at rest at the current snapshot (so nothing they use is among `absent`).
    fn update(&mut self, absent: Vec<(&'static str, String)>, ready: bool, now: Instant) {
        let mut since = BTreeMap::new();
        for key in absent {
            if let Some(t) = self.since.get(&key).copied().or(ready.then_some(now)) {
                since.insert(key, t);
            }
        }
        let removable: BTreeSet<_> = since
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= self.delay)
            .map(|(k, _)| k.clone())
            .collect();
        if removable != self.removable {
            self.generation += 1;
            self.removable = removable;
        }
        self.since = since;
    }

    pub(crate) fn removable(&self, type_url: &'static str, name: &str) -> bool {
        self.removable.contains(&(type_url, name.to_string()))
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// When the connection should flush again so that held removals go out.
    pub(crate) fn wakeup(&self) -> Option<Instant> {
        self.since
            .iter()
            .filter(|(k, _)| !self.removable.contains(*k))
            .map(|(_, t)| *t + self.delay)
            .min()
    }
}

/// Sends every response the ordering allows now. At most one response per type is in
/// flight, so this terminates after a handful of passes.
pub(crate) fn flush(m: &mut impl Ordered, snap: &Snapshot) {
    let mut others: Vec<String> = m
        .subscribed_types()
        .into_iter()
        .filter(|t| !is_ordered(t))
        .collect();
    others.sort();
    let now = Instant::now();
    loop {
        let ready = release_ok(m, snap);
        let absent = m.absent_held(snap);
        m.grace().update(absent, ready, now);
        let mut sent = false;
        let mut blocked = false;
        for t in PUSH_ORDER {
            if blocked {
                break;
            }
            sent |= m.send_due(t, snap);
            // Endpoints never wait for clusters: the client asks for them by name only for
            // clusters it holds, and Envoy withholds the CDS ACK until a new cluster has
            // warmed, which needs its endpoints. Waiting here would deadlock.
            if t != CLUSTER {
                blocked |= m.progress(t, snap).blocks_later();
            }
            if t == ENDPOINT {
                blocked |= m.progress(CLUSTER, snap).blocks_later() || !m.eds_covered(snap);
            }
        }
        for t in &others {
            sent |= m.send_due(t, snap);
        }
        if !sent {
            break;
        }
    }
}

fn release_ok(m: &impl Ordered, snap: &Snapshot) -> bool {
    if m.progress(CLUSTER, snap).in_flight || !m.eds_covered(snap) {
        return false;
    }
    [ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE]
        .into_iter()
        .all(|t| {
            let p = m.progress(t, snap);
            !p.blocks_later() && (t == ENDPOINT || p.at_rest())
        })
}

/// A type's due response, remembered until the snapshot or the type's state changes (call
/// [`DueMemo::clear`] then): the ordering asks a dozen times per event, and each answer walks
/// every resource of the type (each ACK cost ~20 ms with 10,000 scoped routes, BENCHMARKS.md).
/// Keyed by the [`RemovalGrace`] generation, the one input that varies within an event.
pub(crate) struct DueMemo<T>(RefCell<Option<(u64, Option<Arc<T>>)>>);

impl<T> Default for DueMemo<T> {
    fn default() -> Self {
        DueMemo(RefCell::new(None))
    }
}

impl<T> DueMemo<T> {
    pub(crate) fn clear(&self) {
        self.0.take();
    }

    /// The remembered answer for `generation`, or `compute`'s, remembered.
    pub(crate) fn get_or(
        &self,
        generation: u64,
        compute: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        if let Some((g, due)) = &*self.0.borrow()
            && *g == generation
        {
            return due.clone();
        }
        let due = compute().map(Arc::new);
        *self.0.borrow_mut() = Some((generation, due.clone()));
        due
    }
}

/// EDS service names of the clusters the client accepted, cached by cluster version so a
/// cluster is decoded once per change.
#[derive(Debug, Default)]
pub(crate) struct EdsDeps {
    clusters: BTreeMap<String, (String, Option<String>)>,
    /// `covered`'s answer until the clusters, the snapshot or the subscription change: one
    /// flush asks a dozen times, and each answer looks up every accepted cluster.
    covered: Cell<Option<bool>>,
}

impl EdsDeps {
    /// Forgets the remembered `covered` answer: call when the snapshot or the endpoint
    /// subscription changes.
    pub(crate) fn invalidate(&self) {
        self.covered.set(None);
    }

    pub(crate) fn accepted(&mut self, cluster: &Resource) {
        self.invalidate();
        if self
            .clusters
            .get(&cluster.name)
            .is_some_and(|(v, _)| *v == cluster.version)
        {
            return;
        }
        self.clusters.insert(
            cluster.name.clone(),
            (cluster.version.clone(), eds_service_name(cluster)),
        );
    }

    pub(crate) fn removed(&mut self, name: &str) {
        self.invalidate();
        self.clusters.remove(name);
    }

    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.invalidate();
        self.clusters.retain(|name, _| keep(name));
    }

    /// True if every accepted EDS cluster whose endpoints the snapshot has is subscribed.
    /// Endpoints the snapshot lacks cannot be sent anyway, so they do not hold anything up.
    pub(crate) fn covered(&self, snap: &Snapshot, subscribed: impl Fn(&str) -> bool) -> bool {
        if let Some(known) = self.covered.get() {
            return known;
        }
        let covered = self
            .clusters
            .values()
            .filter_map(|(_, eds)| eds.as_deref())
            .filter(|eds| snap.get(ENDPOINT, eds).is_some())
            .all(subscribed);
        self.covered.set(Some(covered));
        covered
    }
}

/// The ClusterLoadAssignment name an EDS cluster asks for; `None` for other clusters or
/// bodies that do not decode (those have no endpoint dependency we could wait for).
pub(crate) fn eds_service_name(cluster: &Resource) -> Option<String> {
    let c = Cluster::decode(cluster.body.value.as_slice()).ok()?;
    let eds = cluster::DiscoveryType::Eds as i32;
    if c.cluster_discovery_type != Some(cluster::ClusterDiscoveryType::Type(eds)) {
        return None;
    }
    match c.eds_cluster_config {
        Some(cfg) if !cfg.service_name.is_empty() => Some(cfg.service_name),
        _ => Some(c.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{eds_cluster, static_cluster};

    #[test]
    fn removal_grace_waits_per_name_for_acks_to_age() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let x = || vec![(CLUSTER, "x".to_string())];
        let mut g = RemovalGrace::new(s(5));
        // Not stamped while listeners or routes may still name it.
        g.update(x(), false, t0);
        assert_eq!(g.wakeup(), None);
        g.update(x(), true, t0 + s(1));
        assert_eq!(g.wakeup(), Some(t0 + s(6)));
        // Newer updates in flight do not restart its wait, nor does a second leaver's.
        let both = || vec![(CLUSTER, "x".to_string()), (CLUSTER, "y".to_string())];
        g.update(both(), false, t0 + s(3));
        g.update(both(), true, t0 + s(4));
        assert!(!g.removable(CLUSTER, "x"));
        let generation = g.generation();
        g.update(both(), false, t0 + s(6));
        assert!(g.removable(CLUSTER, "x") && !g.removable(CLUSTER, "y"));
        assert_ne!(g.generation(), generation);
        assert_eq!(g.wakeup(), Some(t0 + s(9)));
        // Back in the snapshot: forgotten.
        g.update(vec![(CLUSTER, "y".to_string())], true, t0 + s(7));
        assert!(!g.removable(CLUSTER, "x"));
        // Without a delay a name goes as soon as the ACKs allow.
        let mut g = RemovalGrace::default();
        g.update(x(), true, t0);
        assert!(g.removable(CLUSTER, "x"));
        assert_eq!(g.wakeup(), None);
    }

    #[test]
    fn eds_service_name_reads_cluster() {
        let r = Resource::new("a", eds_cluster("a", "", "1"));
        assert_eq!(eds_service_name(&r).as_deref(), Some("a"));
        let r = Resource::new("a", eds_cluster("a", "svc", "1"));
        assert_eq!(eds_service_name(&r).as_deref(), Some("svc"));
        let r = Resource::new("s", static_cluster("s"));
        assert_eq!(eds_service_name(&r), None);
    }
}
