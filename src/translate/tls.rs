//! HTTPS: TLS filter chains selected by SNI, and the certificates they load over SDS.
//!
//! A chain names its certificates; their content travels as separate SDS Secrets on the ADS
//! stream, so rotating a Secret changes one SDS resource and leaves the listener alone (no
//! drain, no connection closed). The listener is only replaced when the set of certificate
//! names, hostnames or providers changes.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    TlsCertificate, common_tls_context, secret,
};
use envoy_types::util::pack_any;

use super::common::ads;
use super::names;
use crate::model::TlsChain;
use crate::model::tls::Certificate;

/// Reads the SNI, so filter chains can match on it.
pub fn inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// The filter chain of one HTTPS listener: `hcm` behind TLS with the listener's certificates.
pub fn chain(tls: &TlsChain, hcm: &HttpConnectionManager) -> FilterChain {
    // Client certificates: required and checked against the frontend CAs, or (insecure
    // fallback) asked for, checked, and passed on whatever the outcome.
    let validation = tls.clients.as_deref().map(|c| {
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::certificate_validation_context::TrustChainVerification;
        common_tls_context::ValidationContextType::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(c.ca_pem.clone())),
                    ..Default::default()
                }),
                trust_chain_verification: if c.insecure_fallback {
                    TrustChainVerification::AcceptUntrusted as i32
                } else {
                    TrustChainVerification::VerifyTrustChain as i32
                },
                ..Default::default()
            },
        )
    });
    let context = DownstreamTlsContext {
        require_client_certificate: tls.clients.as_ref().map(|c| {
            envoy_types::pb::google::protobuf::BoolValue {
                value: !c.insecure_fallback,
            }
        }),
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: validation,
            tls_certificate_sds_secret_configs: tls
                .certificates
                .iter()
                .map(|c| SdsSecretConfig {
                    name: names::secret(&c.secret),
                    sds_config: Some(ads()),
                })
                .collect(),
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    FilterChain {
        name: names::tls_chain(&tls.listener),
        filter_chain_match: Some(FilterChainMatch {
            server_names: tls.hostname.iter().cloned().collect(),
            ..Default::default()
        }),
        filters: vec![Filter {
            name: "envoy.filters.network.http_connection_manager".into(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm.clone()))),
        }],
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
        }),
        ..Default::default()
    }
}

/// The SDS Secret of a certificate.
pub fn secret(c: &Certificate) -> Secret {
    let inline = |s: &str| DataSource {
        specifier: Some(data_source::Specifier::InlineString(s.to_string())),
        ..Default::default()
    };
    Secret {
        name: names::secret(&c.secret),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&c.chain_pem)),
            private_key: Some(inline(c.key.pem())),
            ..Default::default()
        })),
    }
}
