//! Builders shared by the unit tests.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::snapshot::Snapshot;
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

pub(crate) fn eds_cluster(name: &str, service_name: &str, tag: &str) -> Any {
    pack_any(Cluster {
        name: name.to_string(),
        alt_stat_name: tag.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            service_name: service_name.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub(crate) fn static_cluster(name: &str) -> Any {
    pack_any(Cluster {
        name: name.to_string(),
        ..Default::default()
    })
}

/// An opaque body: the state machines never look inside non-cluster resources.
pub(crate) fn body(type_url: &str, name: &str, tag: &str) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: format!("{name}/{tag}").into_bytes(),
    }
}

/// A snapshot from `(type, name, tag)` triples; clusters are EDS clusters whose endpoints
/// are named after them.
pub(crate) fn snap(items: &[(&str, &str, &str)]) -> Arc<Snapshot> {
    let mut s = Snapshot::new();
    for (t, name, tag) in items {
        let b = if *t == CLUSTER {
            eds_cluster(name, "", tag)
        } else {
            body(t, name, tag)
        };
        s.insert(t, *name, b);
    }
    Arc::new(s)
}

/// One cluster with endpoints, a listener and a route, all tagged `tag`.
pub(crate) fn basic(tag: &str) -> Arc<Snapshot> {
    snap(&[
        (CLUSTER, "c1", tag),
        (ENDPOINT, "c1", tag),
        (LISTENER, "l1", tag),
        (ROUTE, "r1", tag),
    ])
}

pub(crate) fn node() -> Node {
    Node {
        id: "envoy-1".to_string(),
        cluster: "ns/gw".to_string(),
        ..Default::default()
    }
}

/// The name and tag a test body was built from.
pub(crate) fn name_tag(any: &Any) -> (String, String) {
    if any.type_url == CLUSTER {
        use prost::Message;
        let c = Cluster::decode(any.value.as_slice()).unwrap_or_default();
        return (c.name, c.alt_stat_name);
    }
    let s = String::from_utf8_lossy(&any.value);
    let (name, tag) = s.split_once('/').unwrap_or((&s, ""));
    (name.to_string(), tag.to_string())
}
