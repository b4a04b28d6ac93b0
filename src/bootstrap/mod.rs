//! The Envoy bootstrap that connects a proxy to Gatehouse over ADS and tells it which Gateway
//! it serves.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::bootstrap::v3::{
    Admin, Bootstrap, LayeredRuntime, RuntimeLayer, bootstrap, runtime_layer,
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, GrpcService, Node,
    api_config_source, config_source, grpc_service,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::{Duration, Struct, Value, value};

use crate::store::ObjKey;

mod static_bootstrap;
mod tls;

pub use static_bootstrap::static_bootstrap;

pub use tls::{
    READINESS_LISTENER, READINESS_PATH, XdsTls, readiness_listener, xds_transport_socket,
};

/// Node metadata key that names the Gateway a proxy serves (`NAMESPACE/NAME`).
pub const GATEWAY_METADATA_KEY: &str = "gatehouse.dev/gateway";
/// Name of the bootstrap cluster that reaches the xDS server.
pub const XDS_CLUSTER: &str = "gatehouse-xds";

/// What a bootstrap needs.
#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    pub gateway: ObjKey,
    /// `HOST:PORT` of the xDS server.
    pub xds_host: String,
    pub xds_port: u16,
    /// Envoy admin port (on 127.0.0.1); `None` leaves the admin interface off.
    pub admin_port: Option<u16>,
    /// State-of-the-world ADS instead of delta.
    pub sotw: bool,
    /// mTLS to the xDS server (provisioned proxies); `None` is plain gRPC (loopback).
    pub tls: Option<XdsTls>,
    /// Port of a static listener answering `GET /ready` once Envoy has its config.
    pub readiness_port: Option<u16>,
}

/// Why a bootstrap cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("xDS address must be HOST:PORT, got {0:?}")]
    Address(String),
}

/// Splits `HOST:PORT` (IPv6 as `[::1]:18000`).
pub fn parse_host_port(s: &str) -> Result<(String, u16), BootstrapError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| BootstrapError::Address(s.into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| BootstrapError::Address(s.into()))?;
    if host.is_empty() {
        return Err(BootstrapError::Address(s.into()));
    }
    Ok((host.to_string(), port))
}

/// The node identity of a proxy serving `gateway`.
pub fn node(gateway: &ObjKey) -> Node {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        GATEWAY_METADATA_KEY.to_string(),
        Value {
            kind: Some(value::Kind::StringValue(gateway.to_string())),
        },
    );
    Node {
        id: format!("gatehouse.{}.{}", gateway.namespace, gateway.name),
        cluster: format!("gatehouse.{}.{}", gateway.namespace, gateway.name),
        metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Default::default()
    }
}

/// The Gateway a node says it serves.
pub fn gateway_of(node: &Node) -> Option<ObjKey> {
    let field = node.metadata.as_ref()?.fields.get(GATEWAY_METADATA_KEY)?;
    let Some(value::Kind::StringValue(s)) = &field.kind else {
        return None;
    };
    let (ns, name) = s.split_once('/')?;
    (!ns.is_empty() && !name.is_empty()).then(|| ObjKey::new(ns, name))
}

fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

fn xds_cluster(host: &str, port: u16, tls: Option<&XdsTls>) -> Cluster {
    let discovery = if host.parse::<IpAddr>().is_ok() {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    Cluster {
        name: XDS_CLUSTER.into(),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        typed_extension_protocol_options: crate::translate::http2_options(),
        transport_socket: tls.map(xds_transport_socket),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: XDS_CLUSTER.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(crate::translate::socket(host, port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Envoy's runtime in every bootstrap Gatehouse writes: the RE2 program size Envoy refuses is
/// pinned at twice what Gatehouse's validation accepts. Gatehouse measures regexes with
/// Debian's RE2, which may count a program slightly differently from the RE2 built into Envoy;
/// the margin keeps a regex Gatehouse accepted from ever being refused, whatever Envoy's
/// default becomes. The admin layer after it keeps `/runtime_modify` working.
pub fn runtime() -> LayeredRuntime {
    let limit = Value {
        kind: Some(value::Kind::NumberValue(
            crate::model::ENVOY_REGEX_PROGRAM_SIZE_LIMIT as f64,
        )),
    };
    LayeredRuntime {
        layers: vec![
            RuntimeLayer {
                name: "gatehouse".into(),
                layer_specifier: Some(runtime_layer::LayerSpecifier::StaticLayer(Struct {
                    fields: [("re2.max_program_size.error_level".to_string(), limit)].into(),
                })),
            },
            RuntimeLayer {
                name: "admin".into(),
                layer_specifier: Some(runtime_layer::LayerSpecifier::AdminLayer(
                    runtime_layer::AdminLayer {},
                )),
            },
        ],
    }
}

/// The bootstrap of a proxy serving `options.gateway`.
pub fn bootstrap(options: &BootstrapOptions) -> Bootstrap {
    let api_type = if options.sotw {
        api_config_source::ApiType::Grpc
    } else {
        api_config_source::ApiType::DeltaGrpc
    };
    Bootstrap {
        node: Some(node(&options.gateway)),
        dynamic_resources: Some(bootstrap::DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: api_type as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: XDS_CLUSTER.into(),
                            authority: options.xds_host.clone(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                set_node_on_first_message_only: true,
                ..Default::default()
            }),
            cds_config: Some(ads_source()),
            lds_config: Some(ads_source()),
            ..Default::default()
        }),
        static_resources: Some(bootstrap::StaticResources {
            clusters: vec![xds_cluster(
                &options.xds_host,
                options.xds_port,
                options.tls.as_ref(),
            )],
            listeners: options
                .readiness_port
                .map(readiness_listener)
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        admin: options.admin_port.map(|port| Admin {
            address: Some(crate::translate::socket("127.0.0.1", port)),
            ..Default::default()
        }),
        layered_runtime: Some(runtime()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_round_trips_the_gateway() {
        let gw = ObjKey::new("kgateway-system", "http");
        assert_eq!(gateway_of(&node(&gw)), Some(gw));
        assert_eq!(gateway_of(&Node::default()), None);
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("127.0.0.1:18000").ok(),
            Some(("127.0.0.1".into(), 18000))
        );
        assert_eq!(
            parse_host_port("[::1]:18000").ok(),
            Some(("::1".into(), 18000))
        );
        assert_eq!(
            parse_host_port("gatehouse.svc:18000").ok(),
            Some(("gatehouse.svc".into(), 18000))
        );
        for bad in ["18000", ":18000", "host:0", "host:x"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delta_by_default_sotw_on_request_and_dns_for_names() {
        let mut o = BootstrapOptions {
            gateway: ObjKey::new("a", "b"),
            xds_host: "127.0.0.1".into(),
            xds_port: 1,
            admin_port: None,
            sotw: false,
            tls: None,
            readiness_port: None,
        };
        let ads = |b: &Bootstrap| {
            b.dynamic_resources
                .as_ref()
                .and_then(|d| d.ads_config.as_ref())
                .map(|a| a.api_type)
        };
        assert_eq!(
            ads(&bootstrap(&o)),
            Some(api_config_source::ApiType::DeltaGrpc as i32)
        );
        o.sotw = true;
        assert_eq!(
            ads(&bootstrap(&o)),
            Some(api_config_source::ApiType::Grpc as i32)
        );
        o.xds_host = "gatehouse.example".into();
        let b = bootstrap(&o);
        let c = &b.static_resources.as_ref().expect("static").clusters[0];
        assert_eq!(
            c.cluster_discovery_type,
            Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::StrictDns as i32
            ))
        );
        assert!(b.admin.is_none());
    }
}
