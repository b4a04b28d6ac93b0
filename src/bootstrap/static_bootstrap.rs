//! A self-contained Envoy bootstrap of one Gateway's resources: routes inlined into their
//! listeners (scopes as an inline list), endpoints into their clusters. It lets
//! `envoy --mode validate` (and users) check exactly what Gatehouse would serve, without a
//! control plane.

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::cluster;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, ScopedRouteConfigurationsList, http_connection_manager, scoped_routes,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, Secret, TlsCertificate, UpstreamTlsContext, secret,
};
use envoy_types::util::pack_any;
use prost::Message;

use crate::translate::GatewayResources;

/// The static bootstrap equivalent of `res`.
pub fn static_bootstrap(res: &GatewayResources) -> Bootstrap {
    let listeners = res
        .listeners
        .iter()
        .cloned()
        .map(|mut l| {
            for chain in &mut l.filter_chains {
                for f in &mut chain.filters {
                    inline_routes(f, res);
                }
                static_sds::<DownstreamTlsContext>(chain.transport_socket.as_mut());
            }
            l
        })
        .collect();
    let clusters = res
        .clusters
        .iter()
        .cloned()
        .map(|mut c| {
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            ));
            c.eds_cluster_config = None;
            static_sds::<UpstreamTlsContext>(c.transport_socket.as_mut());
            c.load_assignment = res
                .endpoints
                .iter()
                .find(|e| e.cluster_name == c.name)
                .cloned();
            c
        })
        .collect();
    Bootstrap {
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            secrets: placeholder_secrets(res),
        }),
        layered_runtime: Some(super::runtime()),
        ..Default::default()
    }
}

fn inline_routes(
    f: &mut envoy_types::pb::envoy::config::listener::v3::Filter,
    res: &GatewayResources,
) {
    let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
        return;
    };
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return;
    };
    match &mut hcm.route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
            let route = res
                .routes
                .iter()
                .find(|r| r.name == rds.route_config_name)
                .map(|r| r.to_proto())
                .unwrap_or_default();
            hcm.route_specifier = Some(http_connection_manager::RouteSpecifier::RouteConfig(route));
        }
        Some(http_connection_manager::RouteSpecifier::ScopedRoutes(scoped)) => {
            let scopes = res
                .routes
                .iter()
                .find(|r| r.name == scoped.name)
                .map(|r| r.scopes(true))
                .unwrap_or_default();
            // `rds_config_source` stays (the field is required); with every scope's table
            // inline Envoy never subscribes through it.
            scoped.config_specifier = Some(
                scoped_routes::ConfigSpecifier::ScopedRouteConfigurationsList(
                    ScopedRouteConfigurationsList {
                        scoped_route_configurations: scopes,
                    },
                ),
            );
        }
        _ => return,
    }
    *any = pack_any(hcm);
}

/// Static stand-ins for the Gateway's certificates, one per SDS Secret, of the same key type:
/// a bootstrap is printed (`translate -o bootstrap`) and Gatehouse never prints a private key.
/// The stand-ins are public test material, so `envoy --mode validate` checks everything but
/// the real certificates, which the model already checked the way Envoy does.
fn placeholder_secrets(res: &GatewayResources) -> Vec<Secret> {
    res.secrets
        .iter()
        .map(|s| {
            let (crt, key) = if is_rsa(s) {
                (
                    include_str!("placeholder/rsa.crt"),
                    include_str!("placeholder/rsa.key"),
                )
            } else {
                (
                    include_str!("placeholder/ecdsa.crt"),
                    include_str!("placeholder/ecdsa.key"),
                )
            };
            let inline = |s: &str| DataSource {
                specifier: Some(data_source::Specifier::InlineString(s.into())),
                ..Default::default()
            };
            Secret {
                name: s.name.clone(),
                r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                    certificate_chain: Some(inline(crt)),
                    private_key: Some(inline(key)),
                    ..Default::default()
                })),
            }
        })
        .collect()
}

/// Whether the Secret's leaf certificate has an RSA key.
fn is_rsa(s: &Secret) -> bool {
    let Some(secret::Type::TlsCertificate(c)) = &s.r#type else {
        return false;
    };
    let Some(data_source::Specifier::InlineString(chain)) = c
        .certificate_chain
        .as_ref()
        .and_then(|d| d.specifier.as_ref())
    else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(chain.as_bytes()) else {
        return false;
    };
    pem.parse_x509().is_ok_and(|cert| {
        matches!(
            cert.public_key().parsed(),
            Ok(x509_parser::public_key::PublicKey::RSA(_))
        )
    })
}

/// A TLS context whose certificates come over SDS.
trait SdsTls: Message + prost::Name + Default {
    fn common(&mut self) -> Option<&mut CommonTlsContext>;
}

impl SdsTls for DownstreamTlsContext {
    fn common(&mut self) -> Option<&mut CommonTlsContext> {
        self.common_tls_context.as_mut()
    }
}

impl SdsTls for UpstreamTlsContext {
    fn common(&mut self) -> Option<&mut CommonTlsContext> {
        self.common_tls_context.as_mut()
    }
}

/// Points the SDS configs of the TLS context `T` in `socket` at the static Secrets.
fn static_sds<T: SdsTls>(socket: Option<&mut TransportSocket>) {
    let Some(transport_socket::ConfigType::TypedConfig(any)) =
        socket.and_then(|t| t.config_type.as_mut())
    else {
        return;
    };
    let Ok(mut tls) = T::decode(any.value.as_slice()) else {
        return;
    };
    for sds in tls
        .common()
        .into_iter()
        .flat_map(|c| &mut c.tls_certificate_sds_secret_configs)
    {
        sds.sds_config = None;
    }
    *any = pack_any(tls);
}
