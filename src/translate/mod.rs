//! Model → Envoy resources. Pure and deterministic: stable names, stable order.

pub mod canonical;
mod cluster;
mod common;
mod ext_authz;
mod filters;
pub mod guard;
mod listener;
pub mod names;
#[cfg(test)]
mod reuse_tests;
mod route;
pub mod scopes;
#[cfg(test)]
mod scopes_tests;
mod tls;

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

pub use cluster::http2_options;
pub use common::{hcm_listener, socket};
pub use ext_authz::{DEFAULT_STATUS_ON_ERROR, DEFAULT_TIMEOUT};
pub use route::{HostTranslation, RouteTable};

use crate::model::GatewayModel;
use crate::store::ObjKey;

/// Choices that are not in the Kubernetes objects.
#[derive(Clone, Debug)]
pub struct TranslateOptions {
    /// Address Envoy listeners bind to.
    pub bind_address: String,
    /// Serve a port's routes as scopes from this many virtual hosts on (0: never). See
    /// [`scopes`].
    pub route_scopes_from: usize,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        Self {
            bind_address: "0.0.0.0".into(),
            route_scopes_from: scopes::DEFAULT_ROUTE_SCOPES_FROM,
        }
    }
}

/// The Envoy resources of one Gateway, each list sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayResources {
    pub gateway: ObjKey,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteTable>,
    /// Shared with the previous translation while the Gateway's clusters are unchanged
    /// ([`translate_gateway_after`]), so the snapshot reuses their encodings too.
    pub clusters: Arc<Vec<Cluster>>,
    pub endpoints: Arc<Vec<ClusterLoadAssignment>>,
    /// The certificates of HTTPS listeners (SDS), one per Secret. They hold private keys:
    /// renderers redact them (`render::resources_json`).
    pub secrets: Vec<Secret>,
}

/// Translates one Gateway.
pub fn translate_gateway(gw: &GatewayModel, options: &TranslateOptions) -> GatewayResources {
    translate_gateway_reusing(gw, options, None)
}

/// Translates one Gateway, reusing the virtual hosts of `previous` (its last translation)
/// whose routes did not change. Equal to [`translate_gateway`].
pub fn translate_gateway_reusing(
    gw: &GatewayModel,
    options: &TranslateOptions,
    previous: Option<&GatewayResources>,
) -> GatewayResources {
    translate_with(gw, options, previous, None)
}

/// [`translate_gateway_reusing`] given the model `previous` was translated from too: when the
/// Gateway's clusters are the same, their Envoy resources are shared rather than built again
/// (1,000 clusters were 10% of a one-route change's CPU, `perf`, BENCHMARKS.md).
pub fn translate_gateway_after(
    gw: &GatewayModel,
    options: &TranslateOptions,
    previous: Option<(&GatewayModel, &GatewayResources)>,
) -> GatewayResources {
    let clusters = previous
        .filter(|(model, _)| {
            model.clusters == gw.clusters && model.backend_client == gw.backend_client
        })
        .map(|(_, res)| (res.clusters.clone(), res.endpoints.clone()));
    translate_with(gw, options, previous.map(|(_, res)| res), clusters)
}

/// Clusters and their load assignments, as translated.
type ClusterResources = (Arc<Vec<Cluster>>, Arc<Vec<ClusterLoadAssignment>>);

fn translate_with(
    gw: &GatewayModel,
    options: &TranslateOptions,
    previous: Option<&GatewayResources>,
    clusters: Option<ClusterResources>,
) -> GatewayResources {
    let mut listeners = Vec::with_capacity(gw.ports.len());
    let mut routes = Vec::with_capacity(gw.ports.len());
    let scoped = scopes::scoped_port(gw, options.route_scopes_from);
    for port in &gw.ports {
        let providers: Vec<_> = port
            .providers
            .iter()
            .filter_map(|k| gw.providers.get(k))
            .collect();
        let chain = guard::chain(providers.iter().copied());
        let scoped = scoped == Some(port.port);
        listeners.push(listener::listener(
            port, &providers, &chain, scoped, &gw.path, options,
        ));
        let name = names::route_config(port.port);
        let old = previous.and_then(|p| p.routes.iter().find(|r| r.name == name));
        routes.push(route::route_table(port, &chain, scoped, old));
    }
    let (clusters, endpoints) = clusters.unwrap_or_else(|| {
        let client = gw.backend_client.as_deref();
        let mut clusters: Vec<Cluster> = gw
            .clusters
            .values()
            .map(|c| cluster::cluster(c, client))
            .collect();
        let mut endpoints: Vec<ClusterLoadAssignment> =
            gw.clusters.values().map(cluster::load_assignment).collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        endpoints.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
        (Arc::new(clusters), Arc::new(endpoints))
    });
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    // The backend client certificate only when a TLS cluster presents it.
    let tls_clusters = gw.clusters.values().any(|c| c.tls.is_some());
    let certificates: std::collections::BTreeMap<_, _> = gw
        .ports
        .iter()
        .flat_map(|p| &p.tls)
        .flat_map(|t| &t.certificates)
        .chain(gw.backend_client.iter().filter(|_| tls_clusters))
        .map(|c| (&c.secret, c))
        .collect();
    let secrets = certificates.values().map(|c| tls::secret(c)).collect();
    GatewayResources {
        gateway: gw.key.clone(),
        listeners,
        routes,
        clusters,
        endpoints,
        secrets,
    }
}
