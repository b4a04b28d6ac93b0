//! Upstream clusters (EDS) and their endpoint assignments.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use super::common::{ads, duration, socket};
use super::names;
use crate::model::{ClusterModel, UpstreamProtocol};

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// `typed_extension_protocol_options` that make a cluster speak HTTP/2 (cleartext).
pub fn http2_options() -> HashMap<String, Any> {
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(http2))])
}

/// The EDS cluster of a Service port.
pub fn cluster(model: &ClusterModel) -> Cluster {
    let name = names::cluster(&model.key);
    let options = if model.protocol == UpstreamProtocol::H2c {
        http2_options()
    } else {
        HashMap::new()
    };
    Cluster {
        name: name.clone(),
        connect_timeout: Some(duration(std::time::Duration::from_secs(5))),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: name,
        }),
        typed_extension_protocol_options: options,
        ..Default::default()
    }
}

/// The endpoints of a cluster.
pub fn load_assignment(model: &ClusterModel) -> ClusterLoadAssignment {
    let lb_endpoints = model
        .endpoints
        .iter()
        .map(|e| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(&e.address, e.port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: names::cluster(&model.key),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}
