//! Stable Envoy resource names. Everything Envoy sees is named here, so names never drift
//! between the translator, the bootstrap and the tests.

use crate::model::ClusterKey;
use crate::store::ObjKey;

/// Name of the Envoy listener (and its RouteConfiguration) for a Gateway port.
pub fn listener(port: u16) -> String {
    format!("http-{port}")
}

/// Name of the RouteConfiguration served to the listener on `port`.
pub fn route_config(port: u16) -> String {
    listener(port)
}

/// Name of the route scope (and of the RouteConfiguration it selects) of one hostname on a
/// scoped port.
pub fn route_scope(port: u16, hostname: &str) -> String {
    format!("{}/{hostname}", route_config(port))
}

/// SDS name of the certificate a Secret holds.
pub fn secret(secret: &ObjKey) -> String {
    format!("secret/{}/{}", secret.namespace, secret.name)
}

/// Name of the TLS filter chain of an HTTPS listener.
pub fn tls_chain(listener: &str) -> String {
    format!("https/{listener}")
}

/// A cluster that is never defined: routes send the share of unresolved backendRefs to it
/// and answer "cluster not found" with 500.
pub const INVALID_BACKEND_CLUSTER: &str = "gatehouse/invalid-backend";

/// Name of an upstream cluster.
pub fn cluster(key: &ClusterKey) -> String {
    match key {
        ClusterKey::Backend { service, port } => {
            format!("service/{}/{}/{port}", service.namespace, service.name)
        }
        ClusterKey::GrpcBackend { service, port } => {
            format!("grpc/{}/{}/{port}", service.namespace, service.name)
        }
        ClusterKey::Auth { extension } => {
            format!("extauth/{}/{}", extension.namespace, extension.name)
        }
        ClusterKey::Invalid => INVALID_BACKEND_CLUSTER.into(),
    }
}

/// Name of the ext_authz HTTP filter of a provider; per-route config is keyed by it.
pub fn ext_authz_filter(provider: &ObjKey) -> String {
    format!(
        "envoy.filters.http.ext_authz/{}/{}",
        provider.namespace, provider.name
    )
}

/// Default stat prefix of a provider's filter.
pub fn ext_authz_stat_prefix(provider: &ObjKey) -> String {
    format!("extauth_{}_{}", provider.namespace, provider.name)
}
