//! Route scopes (Envoy's scoped RDS): a large port's routes served as one RouteConfiguration
//! per hostname, selected by the request's host.
//!
//! Envoy applies a RouteConfiguration whole: a one-route change to a 5,000-host table cost
//! Envoy 43–46 ms to apply here, while the rebuild that produced it took under 1 ms
//! (BENCHMARKS.md). VHDS does not help (Envoy rebuilds the whole table from its hosts); with
//! scopes, a change re-sends and Envoy re-applies only the changed host's RouteConfiguration.
//!
//! Scopes match an exact key and have no fallback, so a port is scoped only when every
//! virtual host is one exact, lower-case hostname: a wildcard or catch-all host keeps the port
//! on a single RouteConfiguration. Keys compare bytes, while virtual-host domains match
//! ignoring case: a request whose Host differs from the hostname only in case gets 404 on a
//! scoped port (fail closed; documented).
//!
//! Envoy subscribes to scopes without naming a listener, so every scoped listener of a proxy,
//! including one still draining after an update, receives every scope. The chain guard refuses
//! a scope's routes that need a provider the listener lacks; still, only a Gateway with a single
//! port is scoped, so that a draining listener of one port never serves another port's routes.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::ScopedRouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::scoped_route_configuration::{Key, key};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    ScopedRds, ScopedRoutes, scoped_routes,
};
use envoy_types::pb::google::protobuf::Any;
use gatehouse_xds::{Resource, type_url};
use prost::Message;

use super::common::ads;
use crate::model::{GatewayModel, PortModel};

/// Ports with at least this many virtual hosts are scoped unless configured otherwise: below
/// it Envoy applies the whole table in a few milliseconds.
pub const DEFAULT_ROUTE_SCOPES_FROM: usize = 1000;

/// Ports with at least this many routes over two or more hosts are scoped too: a one-route
/// change to one table of 10,000 routes over 50 hostnames cost Envoy ~40 ms to apply here,
/// one host's table of 200 a few.
pub const SCOPE_ROUTES_FROM: usize = 2000;

/// The port of `gw` to serve scoped, if any: its only port, when its virtual hosts are all
/// exact and there are at least `from` of them, or at least two holding
/// [`SCOPE_ROUTES_FROM`] routes together. `from == 0` never scopes.
pub fn scoped_port(gw: &GatewayModel, from: usize) -> Option<u16> {
    let [p] = gw.ports.as_slice() else {
        return None;
    };
    let hosts = p.virtual_hosts.len();
    let large = || {
        p.virtual_hosts
            .iter()
            .map(|vh| vh.routes.len())
            .sum::<usize>()
            >= SCOPE_ROUTES_FROM
    };
    let scoped = from > 0 && (hosts >= from || (hosts >= 2 && large())) && scopable(p);
    scoped.then_some(p.port)
}

/// Every host is an exact name a scope key can match. Hostnames are lower case by the
/// Gateway API's schema; one that is not could never match its scope key.
fn scopable(port: &PortModel) -> bool {
    port.virtual_hosts.iter().all(|vh| {
        !vh.hostname.is_empty()
            && !vh.hostname.starts_with('*')
            && !vh.hostname.bytes().any(|b| b.is_ascii_uppercase())
    })
}

/// The HCM route specifier of a scoped port: the key is the request's host without its port.
pub fn scoped_routes(route_config: &str) -> ScopedRoutes {
    use scoped_routes::scope_key_builder::{FragmentBuilder, fragment_builder};
    let host = fragment_builder::HeaderValueExtractor {
        // Envoy keeps HTTP/1's Host as `:authority` too.
        name: ":authority".into(),
        element_separator: ":".into(),
        extract_type: Some(fragment_builder::header_value_extractor::ExtractType::Index(0)),
    };
    ScopedRoutes {
        name: route_config.to_string(),
        scope_key_builder: Some(scoped_routes::ScopeKeyBuilder {
            fragments: vec![FragmentBuilder {
                r#type: Some(fragment_builder::Type::HeaderValueExtractor(host)),
            }],
        }),
        rds_config_source: Some(ads()),
        config_specifier: Some(scoped_routes::ConfigSpecifier::ScopedRds(ScopedRds {
            scoped_rds_config_source: Some(ads()),
            ..Default::default()
        })),
    }
}

/// The scope of one hostname; it selects the RouteConfiguration of the same name.
pub fn scope(name: &str, hostname: &str) -> ScopedRouteConfiguration {
    ScopedRouteConfiguration {
        name: name.to_string(),
        route_configuration_name: name.to_string(),
        key: Some(Key {
            fragments: vec![key::Fragment {
                r#type: Some(key::fragment::Type::StringKey(hostname.to_string())),
            }],
        }),
        ..Default::default()
    }
}

/// The two xDS resources of one scoped host, built once per host translation: a change
/// re-hashes only the hosts it touched.
#[derive(Debug)]
pub struct ScopedHost {
    pub scope: Arc<Resource>,
    pub route: Arc<Resource>,
}

impl ScopedHost {
    pub fn new(name: &str, hostname: &str, route_configuration: Vec<u8>) -> Self {
        let scope = Any {
            type_url: type_url::SCOPED_ROUTE.into(),
            value: scope(name, hostname).encode_to_vec(),
        };
        let route = Any {
            type_url: type_url::ROUTE.into(),
            value: route_configuration,
        };
        ScopedHost {
            scope: Arc::new(Resource::new(name, scope)),
            route: Arc::new(Resource::new(name, route)),
        }
    }
}
