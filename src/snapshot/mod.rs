//! Translated resources → an xDS snapshot.

use envoy_types::pb::google::protobuf::Any;
use gatehouse_xds::{Snapshot, type_url};
use prost::{Message, Name};

use crate::translate::GatewayResources;

/// The snapshot Envoy proxies of one Gateway receive.
pub fn snapshot(res: &GatewayResources) -> Snapshot {
    let mut s = Snapshot::new();
    for c in &res.clusters {
        s.insert(type_url::CLUSTER, c.name.clone(), any(c));
    }
    for e in &res.endpoints {
        s.insert(type_url::ENDPOINT, e.cluster_name.clone(), any(e));
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

/// `pack_any` by reference: it takes the message by value, and cloning every resource to
/// encode it was 7% of a rebuild's CPU at 5,000 routes (`perf`, BENCHMARKS.md).
fn any<T: Message + Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}
