//! The pieces a provisioned proxy adds to its bootstrap: mTLS to the xDS server and a
//! readiness listener the kubelet can probe.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost, route, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::util::pack_any;

/// Files of the proxy's xDS client certificate (a mounted Secret) and the name the xDS
/// server's certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsTls {
    pub cert_path: String,
    pub key_path: String,
    pub ca_path: String,
    /// SNI and the DNS SAN required of the server certificate.
    pub server_name: String,
}

fn file(path: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::Filename(path.into())),
        ..Default::default()
    })
}

/// The transport socket of the xDS cluster: present our certificate, verify the server's.
pub fn xds_transport_socket(tls: &XdsTls) -> TransportSocket {
    let context = UpstreamTlsContext {
        sni: tls.server_name.clone(),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: vec!["h2".into()],
            tls_certificates: vec![TlsCertificate {
                certificate_chain: file(&tls.cert_path),
                private_key: file(&tls.key_path),
                ..Default::default()
            }],
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: file(&tls.ca_path),
                        match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                            san_type: subject_alt_name_matcher::SanType::Dns as i32,
                            matcher: Some(StringMatcher {
                                match_pattern: Some(string_matcher::MatchPattern::Exact(
                                    tls.server_name.clone(),
                                )),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

/// Name of the readiness listener.
pub const READINESS_LISTENER: &str = "gatehouse-readiness";
/// Path the readiness listener answers 200 on.
pub const READINESS_PATH: &str = "/ready";

/// A static listener answering `GET /ready` with 200. Envoy opens listeners only once its
/// first xDS fetch is done, so a 200 here means "has config" — what a readiness probe wants.
pub fn readiness_listener(port: u16) -> Listener {
    let routes = RouteConfiguration {
        name: READINESS_LISTENER.into(),
        virtual_hosts: vec![VirtualHost {
            name: READINESS_LISTENER.into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Path(READINESS_PATH.into())),
                    ..Default::default()
                }),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: 200,
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: READINESS_LISTENER.into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    crate::translate::hcm_listener(
        READINESS_LISTENER.into(),
        crate::translate::socket("0.0.0.0", port),
        hcm,
    )
}
