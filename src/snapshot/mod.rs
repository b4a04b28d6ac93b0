//! Translated resources → an xDS snapshot.

use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use gatehouse_xds::{Snapshot, type_url};
use prost::{Message, Name};

use crate::translate::GatewayResources;

/// The snapshot Envoy proxies of one Gateway receive.
pub fn snapshot(res: &GatewayResources) -> Snapshot {
    snapshot_after(res, None)
}

/// [`snapshot`], given the previous translation and its snapshot: clusters and load
/// assignments the translation shares with it keep their encoded, hashed resources.
pub fn snapshot_after(
    res: &GatewayResources,
    previous: Option<(&GatewayResources, &Snapshot)>,
) -> Snapshot {
    let mut s = Snapshot::new();
    let kept = |same: fn(&GatewayResources, &GatewayResources) -> bool| {
        previous
            .filter(|(before, _)| same(res, before))
            .map(|(_, snap)| snap)
    };
    match kept(|a, b| Arc::ptr_eq(&a.clusters, &b.clusters)) {
        Some(snap) => share(&mut s, snap, type_url::CLUSTER),
        None => {
            for c in res.clusters.iter() {
                s.insert(type_url::CLUSTER, c.name.clone(), any(c));
            }
        }
    }
    match kept(|a, b| Arc::ptr_eq(&a.endpoints, &b.endpoints)) {
        Some(snap) => share(&mut s, snap, type_url::ENDPOINT),
        None => {
            for e in res.endpoints.iter() {
                s.insert(type_url::ENDPOINT, e.cluster_name.clone(), any(e));
            }
        }
    }
    for secret in &res.secrets {
        s.insert(type_url::SECRET, secret.name.clone(), any(secret));
    }
    for l in &res.listeners {
        s.insert(type_url::LISTENER, l.name.clone(), any(l));
    }
    for r in &res.routes {
        if r.scoped {
            for h in r.scoped_hosts() {
                s.insert_shared(type_url::SCOPED_ROUTE, h.scope.clone());
                s.insert_shared(type_url::ROUTE, h.route.clone());
            }
            continue;
        }
        let body = Any {
            type_url: type_url::ROUTE.into(),
            value: r.encode(),
        };
        s.insert(type_url::ROUTE, r.name.clone(), body);
    }
    s
}

/// Every resource of `type_url` in `from`, as they are.
fn share(to: &mut Snapshot, from: &Snapshot, type_url: &str) {
    for r in from.resources(type_url) {
        to.insert_shared(type_url, r.clone());
    }
}

/// `pack_any` by reference: it takes the message by value, and cloning every resource to
/// encode it was 7% of a rebuild's CPU at 5,000 routes (`perf`, BENCHMARKS.md).
fn any<T: Message + Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}
