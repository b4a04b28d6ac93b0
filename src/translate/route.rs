//! RouteConfigurations: virtual hosts by hostname, routes in Gateway API precedence order.

use std::sync::{Arc, OnceLock};

use prost::Message;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, Route, RouteAction,
    RouteConfiguration, RouteMatch, ScopedRouteConfiguration, VirtualHost, WeightedCluster,
    header_matcher, query_parameter_matcher, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::common::string_match;
use super::guard::{self, ChainProviders};
use super::scopes::{self, ScopedHost};
use super::{canonical, ext_authz, filters, names};
use crate::model::{self, MatchModel, PathMatch, PortModel, RouteModel, VirtualHostModel};

/// One virtual host, translated and encoded, with the route models it came from: the next
/// translation reuses it while the host's routes are the same `Arc`s. Only the bytes are kept:
/// the proto of 10,000 routes is several times their encoding, and only rendering needs it.
#[derive(Debug)]
pub struct HostTranslation {
    from: Vec<Arc<RouteModel>>,
    hostname: String,
    /// Canonical protobuf bytes of the VirtualHost.
    pub encoded: Vec<u8>,
    /// Its scope and RouteConfiguration, once the port is served scoped.
    scoped: OnceLock<ScopedHost>,
}

impl HostTranslation {
    /// The hostname (also the VirtualHost's name).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The VirtualHost proto, decoded from its bytes.
    pub fn proto(&self) -> VirtualHost {
        // The bytes are our own encoding of a VirtualHost: decoding them cannot fail.
        VirtualHost::decode(self.encoded.as_slice()).unwrap_or_default()
    }
}

/// The RouteConfiguration of one port, kept as shared virtual hosts: a one-route change at
/// 1,000 hosts translated and encoded all of them again (21% and 8% of a change's CPU at
/// 10,000 routes, BENCHMARKS.md); now it translates and encodes one.
#[derive(Clone, Debug)]
pub struct RouteTable {
    pub name: String,
    port: u16,
    /// Served as one scope and RouteConfiguration per host (see `scopes`).
    pub scoped: bool,
    /// The chain the table was translated for: routes name its providers and their
    /// identities, so hosts translated for another chain cannot be reused.
    chain: ChainProviders,
    pub virtual_hosts: Vec<Arc<HostTranslation>>,
}

/// Canonical bytes are equal exactly when the protos are.
impl PartialEq for RouteTable {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.scoped == other.scoped
            && self.virtual_hosts.len() == other.virtual_hosts.len()
            && self
                .virtual_hosts
                .iter()
                .zip(&other.virtual_hosts)
                .all(|(a, b)| a.encoded == b.encoded)
    }
}

impl RouteTable {
    /// The RouteConfiguration proto (decoded: for rendering, not for the build path).
    pub fn to_proto(&self) -> RouteConfiguration {
        RouteConfiguration {
            name: self.name.clone(),
            virtual_hosts: self.virtual_hosts.iter().map(|h| h.proto()).collect(),
            ignore_port_in_host_matching: true,
            ..Default::default()
        }
    }

    /// The RouteConfiguration's canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        canonical::route_configuration(&self.name, self.virtual_hosts.iter().map(|h| &h.encoded))
    }

    /// The xDS resources of every host of a scoped table, built once per host.
    pub fn scoped_hosts(&self) -> impl Iterator<Item = &ScopedHost> {
        self.virtual_hosts.iter().map(|h| {
            h.scoped.get_or_init(|| {
                let name = names::route_scope(self.port, &h.hostname);
                let route = canonical::route_configuration(&name, [&h.encoded]);
                ScopedHost::new(&name, &h.hostname, route)
            })
        })
    }

    /// The RouteConfigurations Envoy is served: the table, or one per host when scoped.
    pub fn served_protos(&self) -> Vec<RouteConfiguration> {
        if !self.scoped {
            return vec![self.to_proto()];
        }
        self.virtual_hosts
            .iter()
            .map(|h| RouteConfiguration {
                name: names::route_scope(self.port, &h.hostname),
                virtual_hosts: vec![h.proto()],
                ignore_port_in_host_matching: true,
                ..Default::default()
            })
            .collect()
    }

    /// The scopes of a scoped table (none otherwise), with their RouteConfigurations inline
    /// when `inline`.
    pub fn scopes(&self, inline: bool) -> Vec<ScopedRouteConfiguration> {
        if !self.scoped {
            return Vec::new();
        }
        self.served_protos()
            .into_iter()
            .zip(&self.virtual_hosts)
            .map(|(rc, h)| {
                let mut scope = scopes::scope(&rc.name, &h.hostname);
                if inline {
                    scope.route_configuration_name.clear();
                    scope.route_configuration = Some(rc);
                }
                scope
            })
            .collect()
    }
}

/// The route table of one port for the filter chain holding `chain`, reusing `previous`'s
/// hosts whose routes are unchanged.
pub fn route_table(
    port: &PortModel,
    chain: &ChainProviders,
    scoped: bool,
    previous: Option<&RouteTable>,
) -> RouteTable {
    let mut old = previous
        .filter(|p| p.chain == *chain)
        .map(|p| p.virtual_hosts.iter().peekable());
    let mut virtual_hosts = Vec::with_capacity(port.virtual_hosts.len());
    for vh in &port.virtual_hosts {
        // Hosts come sorted by hostname: a merge walk finds the previous one. Equal routes
        // mean an equal hostname (each route is placed under the hosts it names).
        let reused = old.as_mut().and_then(|old| {
            while old
                .next_if(|h| h.hostname() < vh.hostname.as_str())
                .is_some()
            {}
            old.next_if(|h| h.hostname() == vh.hostname && same_routes(&h.from, &vh.routes))
        });
        virtual_hosts.push(match reused {
            Some(h) => h.clone(),
            None => Arc::new(HostTranslation {
                from: vh.routes.clone(),
                hostname: vh.hostname.clone(),
                encoded: canonical::virtual_host(&virtual_host(vh, chain, port.port)),
                scoped: OnceLock::new(),
            }),
        });
    }
    RouteTable {
        name: names::route_config(port.port),
        port: port.port,
        scoped,
        chain: chain.clone(),
        virtual_hosts,
    }
}

/// The same route models in the same order. A route's model is a new `Arc` whenever the route
/// or anything it resolved against changed; the old ones are alive here, so no address is reused.
fn same_routes(a: &[Arc<RouteModel>], b: &[Arc<RouteModel>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// Clients may send the port in Host (`www.example.com:8080`): route tables match hosts
/// ignoring it (`canonical::route_configuration`).
fn domains(hostname: &str) -> Vec<String> {
    vec![hostname.to_string()]
}

fn virtual_host(vh: &VirtualHostModel, chain: &ChainProviders, listener_port: u16) -> VirtualHost {
    VirtualHost {
        name: vh.hostname.clone(),
        domains: domains(&vh.hostname),
        routes: vh
            .routes
            .iter()
            .map(|r| route(r, chain, listener_port))
            .collect(),
        ..Default::default()
    }
}

/// `grpc`: a GRPCRoute's, whose unresolved share answers 503 (`UNAVAILABLE`, as the spec
/// requires) where an HTTPRoute's answers 500.
fn forward(backends: &[model::WeightedBackend], grpc: bool) -> RouteAction {
    let simple = backends.len() == 1
        && backends[0].request_headers.is_empty()
        && backends[0].response_headers.is_empty();
    let cluster_specifier = if simple {
        route_action::ClusterSpecifier::Cluster(names::cluster(&backends[0].cluster))
    } else {
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: backends
                .iter()
                .map(|b| weighted_cluster::ClusterWeight {
                    name: names::cluster(&b.cluster),
                    weight: Some(UInt32Value { value: b.weight }),
                    request_headers_to_add: filters::header_options(&b.request_headers),
                    request_headers_to_remove: b.request_headers.remove.clone(),
                    response_headers_to_add: filters::header_options(&b.response_headers),
                    response_headers_to_remove: b.response_headers.remove.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    };
    let has_invalid = backends
        .iter()
        .any(|b| b.cluster == model::ClusterKey::Invalid);
    RouteAction {
        cluster_specifier: Some(cluster_specifier),
        // The share of unresolved backendRefs goes to a cluster that does not exist.
        cluster_not_found_response_code: match (has_invalid, grpc) {
            (true, false) => route_action::ClusterNotFoundResponseCode::InternalServerError as i32,
            (true, true) => route_action::ClusterNotFoundResponseCode::ServiceUnavailable as i32,
            (false, _) => 0,
        },
        ..Default::default()
    }
}

/// The body of a route whose provider has no filter on the chain.
pub const PROVIDER_NOT_ON_CHAIN: &str = "ext auth provider not installed on this listener";

fn route(r: &RouteModel, chain: &ChainProviders, listener_port: u16) -> Route {
    // A protected route whose provider has no filter here (it did not resolve) answers 500: the
    // guard would refuse it anyway, and the route should say why.
    let identity = match &r.auth {
        model::RouteAuth::Enabled { provider, .. } => match chain.get(provider) {
            Some(id) => Some(id),
            None => return refused(r, PROVIDER_NOT_ON_CHAIN),
        },
        _ => None,
    };
    let action = match &r.action {
        model::RouteAction::Forward(backends) => {
            let mut action = forward(backends, r.route.kind == crate::store::Kind::GrpcRoute);
            filters::apply_to_action(&mut action, &r.filters, &r.matches);
            route::Action::Route(action)
        }
        model::RouteAction::Redirect(redirect) => {
            route::Action::Redirect(filters::redirect(redirect, &r.matches, listener_port))
        }
        model::RouteAction::Respond { status, body } => {
            route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                body: (!body.is_empty()).then(|| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(body.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
    };
    let mut route = Route {
        name: r.name(),
        r#match: Some(route_match(&r.matches)),
        action: Some(action),
        typed_per_filter_config: ext_authz::per_route(&r.auth, chain),
        metadata: identity.map(|id| guard::route_metadata(id)),
        ..Default::default()
    };
    filters::apply_headers(&mut route, &r.filters);
    route
}

/// A route answering 500 with `why` instead of reaching its backend.
fn refused(r: &RouteModel, why: &str) -> Route {
    Route {
        name: r.name(),
        r#match: Some(route_match(&r.matches)),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status: 500,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(why.to_string())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn route_match(m: &MatchModel) -> RouteMatch {
    let path = match &m.path {
        PathMatch::Exact(v) => route_match::PathSpecifier::Path(v.clone()),
        PathMatch::Regex(v) => route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: v.clone(),
            ..Default::default()
        }),
        PathMatch::Prefix(v) => {
            let trimmed = v.trim_end_matches('/');
            if trimmed.is_empty() {
                route_match::PathSpecifier::Prefix("/".into())
            } else {
                // Segment-aware: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
                route_match::PathSpecifier::PathSeparatedPrefix(trimmed.to_string())
            }
        }
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|h| HeaderMatcher {
            name: h.name.clone(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                string_match(&h.value, h.regex),
            )),
            ..Default::default()
        })
        .collect();
    if let Some(method) = &m.method {
        headers.push(HeaderMatcher {
            name: ":method".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                string_match(method, false),
            )),
            ..Default::default()
        });
    }
    RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters: m
            .query
            .iter()
            .map(|q| QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(
                    query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                        string_match(&q.value, q.regex),
                    ),
                ),
            })
            .collect(),
        ..Default::default()
    }
}
