//! Translated resources → an xDS snapshot.

use envoy_types::util::pack_any;
use gatehouse_xds::{Snapshot, type_url};

use crate::translate::GatewayResources;

/// The snapshot Envoy proxies of one Gateway receive.
pub fn snapshot(res: &GatewayResources) -> Snapshot {
    let mut s = Snapshot::new();
    for c in &res.clusters {
        s.insert(type_url::CLUSTER, c.name.clone(), pack_any(c.clone()));
    }
    for e in &res.endpoints {
        s.insert(
            type_url::ENDPOINT,
            e.cluster_name.clone(),
            pack_any(e.clone()),
        );
    }
    for l in &res.listeners {
        s.insert(type_url::LISTENER, l.name.clone(), pack_any(l.clone()));
    }
    for r in &res.routes {
        s.insert(type_url::ROUTE, r.name.clone(), pack_any(r.clone()));
    }
    s
}
