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
use crate::model::tls::Certificate;
use crate::model::{ClusterModel, SanMatch, UpstreamProtocol, UpstreamTls};
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig;

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
pub fn cluster(model: &ClusterModel, client: Option<&Certificate>) -> Cluster {
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
        transport_socket: model
            .tls
            .as_deref()
            .map(|t| upstream_tls(t, model.protocol, client)),
        ..Default::default()
    }
}

/// TLS to the backend as its BackendTLSPolicy says: SNI `hostname`, the certificate checked
/// against the policy's CAs and names. A failed check fails the connection: an auth service
/// that cannot be verified answers its `statusOnError`, never a plaintext check.
fn upstream_tls(
    tls: &UpstreamTls,
    protocol: UpstreamProtocol,
    client: Option<&Certificate>,
) -> TransportSocket {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source, transport_socket};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, UpstreamTlsContext,
        common_tls_context, subject_alt_name_matcher::SanType,
    };
    let san = |san_type: SanType, value: &str| SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(super::common::string_match(value, false)),
        ..Default::default()
    };
    let names = if tls.subject_alt_names.is_empty() {
        vec![san(SanType::Dns, &tls.sni)]
    } else {
        tls.subject_alt_names
            .iter()
            .map(|s| match s {
                SanMatch::Dns(h) => san(SanType::Dns, h),
                SanMatch::Uri(u) => san(SanType::Uri, u),
            })
            .collect()
    };
    let validation = CertificateValidationContext {
        match_typed_subject_alt_names: names,
        trusted_ca: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(tls.ca_pem.clone())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let alpn = match protocol {
        UpstreamProtocol::H2c => "h2",
        UpstreamProtocol::Http1 => "http/1.1",
    };
    let context = UpstreamTlsContext {
        sni: tls.sni.clone(),
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContext(validation),
            ),
            alpn_protocols: vec![alpn.into()],
            // The Gateway's client certificate, over SDS like listener certificates.
            tls_certificate_sds_secret_configs: client
                .map(|c| SdsSecretConfig {
                    name: names::secret(&c.secret),
                    sds_config: Some(ads()),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
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
