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

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    fn at_rest(&self) -> bool {
        !self.subscribed || (!self.in_flight && self.due.is_none() && !self.nacked)
    }
}

/// What a connection state machine exposes to the ordering policy.
pub(crate) trait Ordered {
    fn subscribed_types(&self) -> Vec<String>;
    /// `release` says whether retained clusters may be dropped now.
    fn progress(&self, type_url: &str, snap: &Snapshot, release: bool) -> Progress;
    /// Whether the client subscribed to the endpoints of all the EDS clusters it accepted.
    fn eds_covered(&self, snap: &Snapshot) -> bool;
    /// Queues the type's due response unless one is in flight; true if it queued one.
    fn send_due(&mut self, type_url: &str, snap: &Snapshot, release: bool) -> bool;
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
    loop {
        let release = release_ok(m, snap);
        let mut sent = false;
        let mut blocked = false;
        for t in PUSH_ORDER {
            if blocked {
                break;
            }
            sent |= m.send_due(t, snap, release);
            // Endpoints never wait for clusters: the client asks for them by name only for
            // clusters it holds, and Envoy withholds the CDS ACK until a new cluster has
            // warmed, which needs its endpoints. Waiting here would deadlock.
            if t != CLUSTER {
                blocked |= m.progress(t, snap, release).blocks_later();
            }
            if t == ENDPOINT {
                blocked |=
                    m.progress(CLUSTER, snap, release).blocks_later() || !m.eds_covered(snap);
            }
        }
        for t in &others {
            sent |= m.send_due(t, snap, release);
        }
        if !sent {
            break;
        }
    }
}

fn release_ok(m: &impl Ordered, snap: &Snapshot) -> bool {
    if m.progress(CLUSTER, snap, false).in_flight || !m.eds_covered(snap) {
        return false;
    }
    [ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE]
        .into_iter()
        .all(|t| {
            let p = m.progress(t, snap, false);
            !p.blocks_later() && (t == ENDPOINT || p.at_rest())
        })
}

/// A type's due response, remembered until the snapshot or the type's state changes (call
/// [`DueMemo::clear`] then): the ordering asks a dozen times per event, and each answer walks
/// every resource of the type (each ACK cost ~20 ms with 10,000 scoped routes, BENCHMARKS.md).
/// Keyed by whether removals are held, the one input that varies within an event.
pub(crate) struct DueMemo<T>(RefCell<Option<(bool, Option<Arc<T>>)>>);

impl<T> Default for DueMemo<T> {
    fn default() -> Self {
        DueMemo(RefCell::new(None))
    }
}

impl<T> DueMemo<T> {
    pub(crate) fn clear(&self) {
        self.0.take();
    }

    /// The remembered answer for `hold`, or `compute`'s, remembered.
    pub(crate) fn get_or(&self, hold: bool, compute: impl FnOnce() -> Option<T>) -> Option<Arc<T>> {
        if let Some((h, due)) = &*self.0.borrow()
            && *h == hold
        {
            return due.clone();
        }
        let due = compute().map(Arc::new);
        *self.0.borrow_mut() = Some((hold, due.clone()));
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
fn eds_service_name(cluster: &Resource) -> Option<String> {
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
    fn eds_service_name_reads_cluster() {
        let r = Resource::new("a", eds_cluster("a", "", "1"));
        assert_eq!(eds_service_name(&r).as_deref(), Some("a"));
        let r = Resource::new("a", eds_cluster("a", "svc", "1"));
        assert_eq!(eds_service_name(&r).as_deref(), Some("svc"));
        let r = Resource::new("s", static_cluster("s"));
        assert_eq!(eds_service_name(&r), None);
    }
}
