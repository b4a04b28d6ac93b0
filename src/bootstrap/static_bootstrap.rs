//! A self-contained Envoy bootstrap of one Gateway's resources: routes inlined into their
//! listeners (scopes as an inline list), endpoints into their clusters. It lets
//! `envoy --mode validate` (and users) check exactly what Gatehouse would serve, without a
//! control plane.

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::cluster;
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, ScopedRouteConfigurationsList, http_connection_manager, scoped_routes,
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
            ..Default::default()
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
