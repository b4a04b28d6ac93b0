//! The `ext_authz` HTTP filter of each provider, and the per-route settings that switch it on
//! or off.
//!
//! Filters are installed disabled; a route turns its provider's filter on with an
//! `ExtAuthzPerRoute` carrying `check_settings`. A route that a policy disables carries
//! `ExtAuthzPerRoute{disabled: true}` for every provider on the listener, so that no filter can
//! run there even if defaults change.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::common::mutation_rules::v3::HeaderMutationRules;
use envoy_types::pb::envoy::config::core::v3::{
    BackoffStrategy, GrpcService, HeaderValue, HttpUri, RetryPolicy, grpc_service, http_uri,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, CheckSettings, ExtAuthz,
    ExtAuthzPerRoute, HttpService, ext_authz, ext_authz_per_route,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{ListStringMatcher, RegexMatcher};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use envoy_types::util::pack_any;

use super::common::{duration, exact_ignore_case, string_match};
use super::guard::ChainProviders;
use super::names;
use crate::api::{ExtAuthBufferSettings, ExtSvcRetryPolicy};
use crate::model::parse_duration;
use crate::model::{BackendHeaders, Provider, ProviderService, RouteAuth};

/// Timeout of an authorization call when `requestTimeout` is unset, for gRPC and HTTP alike.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Status returned when the authorization service fails and `statusOnError` is unset.
pub const DEFAULT_STATUS_ON_ERROR: u32 = 403;

/// Headers of an authorization answer that describe the answer itself, not the request it
/// allows: GEP-1494's "all headers from the authorization server except Authority or Host" does
/// not copy them. Copied, `content-length: 0` and `transfer-encoding` would misframe the
/// client's body on its way to the backend (a request smuggling primitive on HTTP/1.1), the
/// hop-by-hop headers belong to the connection to the auth server (RFC 9110 7.6.1), and
/// `content-type`/`content-encoding` of the answer's (empty) body would make the backend misread
/// the client's body. A route that wants one of them lists it in `allowedResponseHeaders`.
pub const ANSWER_ONLY_HEADERS: &[&str] = &[
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

/// `allowed_upstream_headers` copying every header of an HTTP service's `200` answer, and the
/// mutation rules that keep back those GEP-1494 leaves out. An empty or unset
/// `allowed_upstream_headers` copies none (Envoy's `toUpstreamMatchers`), and a
/// `ListStringMatcher` cannot say "all but", hence the rules: their defaults already refuse
/// `host`, `:authority`, `:method`, `:scheme` (the "routing headers") and `x-envoy-*`
/// (Envoy's own controls, e.g. upstream timeouts); `disallow_system` adds the other
/// pseudo-headers (`:status` of the answer is no request header), the expression the rest.
/// Refused headers are skipped, not errors: the request goes on with its own.
fn all_but_host() -> (ListStringMatcher, HeaderMutationRules) {
    let everything = ListStringMatcher {
        patterns: vec![string_match(".*", true)],
    };
    let rules = HeaderMutationRules {
        disallow_system: Some(BoolValue { value: true }),
        disallow_expression: Some(RegexMatcher {
            regex: ANSWER_ONLY_HEADERS.join("|"),
            ..Default::default()
        }),
        ..Default::default()
    };
    (everything, rules)
}

/// The filter configuration of one provider.
pub fn filter(provider: &Provider) -> ExtAuthz {
    let spec = &provider.spec;
    let cluster = names::cluster(&provider.cluster);
    let mut mutation_rules = None;
    let services = match &provider.service {
        ProviderService::Grpc(g) => ext_authz::Services::GrpcService(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster,
                    // Envoy defaults :authority to the cluster name, which is not a valid authority.
                    authority: g
                        .authority
                        .clone()
                        .unwrap_or_else(|| provider.authority.clone()),
                    ..Default::default()
                },
            )),
            timeout: Some(duration(timeout(g.request_timeout.as_deref()))),
            // Data-plane gRPC clients honour only `GrpcService.retry_policy`;
            // `EnvoyGrpc.retry_policy` applies to xDS streams.
            retry_policy: g.retry.as_ref().map(|r| retry_policy(r, GRPC_RETRY_ON)),
            ..Default::default()
        }),
        ProviderService::Http(h) => {
            let request = h.authorization_request.as_ref();
            let response = h.authorization_response.as_ref();
            let mut authorization_response = response.map(|r| AuthorizationResponse {
                allowed_upstream_headers: r.headers_to_backend.as_deref().map(list_matcher),
                allowed_client_headers: r.headers_to_client.as_deref().map(list_matcher),
                allowed_client_headers_on_success: r
                    .headers_to_client_on_success
                    .as_deref()
                    .map(list_matcher),
                ..Default::default()
            });
            if provider.backend_headers == BackendHeaders::AllButHost {
                let (everything, rules) = all_but_host();
                authorization_response
                    .get_or_insert_with(Default::default)
                    .allowed_upstream_headers = Some(everything);
                mutation_rules = Some(rules);
            }
            ext_authz::Services::HttpService(HttpService {
                server_uri: Some(HttpUri {
                    uri: format!("http://{}", provider.authority),
                    http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster)),
                    timeout: Some(duration(timeout(h.request_timeout.as_deref()))),
                }),
                path_prefix: h.path_prefix.clone().unwrap_or_default(),
                authorization_request: request.map(|r| AuthorizationRequest {
                    headers_to_add: r
                        .headers_to_add
                        .iter()
                        .flatten()
                        .map(|(k, v)| HeaderValue {
                            key: k.clone(),
                            value: v.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                authorization_response,
                retry_policy: h.retry.as_ref().map(|r| retry_policy(r, HTTP_RETRY_ON)),
                ..Default::default()
            })
        }
    };
    ExtAuthz {
        services: Some(services),
        transport_api_version: envoy_types::pb::envoy::config::core::v3::ApiVersion::V3 as i32,
        failure_mode_allow: spec.fail_open.unwrap_or(false),
        clear_route_cache: spec.clear_route_cache.unwrap_or(false),
        with_request_body: spec.with_request_body.as_ref().map(buffer),
        status_on_error: Some(HttpStatus {
            code: spec
                .status_on_error
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(DEFAULT_STATUS_ON_ERROR) as i32,
        }),
        stat_prefix: spec
            .stat_prefix
            .clone()
            .unwrap_or_else(|| names::ext_authz_stat_prefix(&provider.key)),
        allowed_headers: spec.headers_to_forward.as_deref().map(list_matcher),
        metadata_context_namespaces: spec.metadata_context_namespaces.clone().unwrap_or_default(),
        include_peer_certificate: spec.include_peer_certificate.unwrap_or(false),
        include_tls_session: spec.include_tls_session.unwrap_or(false),
        emit_filter_state_stats: spec.emit_filter_state_stats.unwrap_or(false),
        decoder_header_mutation_rules: mutation_rules,
        ..Default::default()
    }
}

fn timeout(value: Option<&str>) -> Duration {
    value.and_then(parse_duration).unwrap_or(DEFAULT_TIMEOUT)
}

fn list_matcher(names: &[String]) -> ListStringMatcher {
    ListStringMatcher {
        patterns: names.iter().map(|n| exact_ignore_case(n)).collect(),
    }
}

fn buffer(b: &ExtAuthBufferSettings) -> BufferSettings {
    BufferSettings {
        max_request_bytes: u32::try_from(b.max_request_bytes).unwrap_or(1),
        allow_partial_message: b.allow_partial_message.unwrap_or(false),
        pack_as_bytes: b.pack_as_bytes.unwrap_or(false),
    }
}

/// What a gRPC authorization call is retried on (an empty `retry_on` retries nothing).
const GRPC_RETRY_ON: &str = "connect-failure,refused-stream,reset,unavailable";
/// What an HTTP authorization call is retried on.
const HTTP_RETRY_ON: &str = "connect-failure,refused-stream,reset,5xx";

fn retry_policy(r: &ExtSvcRetryPolicy, retry_on: &str) -> RetryPolicy {
    let base = r
        .backoff
        .as_ref()
        .and_then(|b| parse_duration(&b.base_interval));
    let max = r
        .backoff
        .as_ref()
        .and_then(|b| b.max_interval.as_deref().and_then(parse_duration));
    RetryPolicy {
        retry_on: retry_on.to_string(),
        num_retries: Some(UInt32Value {
            value: u32::try_from(r.attempts.unwrap_or(1)).unwrap_or(0),
        }),
        retry_back_off: base.map(|b| BackoffStrategy {
            base_interval: Some(duration(b)),
            max_interval: Some(duration(max.unwrap_or(b * 10))),
        }),
        ..Default::default()
    }
}

/// `ExtAuthzPerRoute { check_settings }` with `context_extensions` encoded in key order.
/// prost encodes map fields in `HashMap` iteration order, which differs between maps: the same
/// route would get different bytes (and xDS versions) on every build. Found by the
/// `model_translate` fuzz target.
fn check_settings_any(
    settings: &CheckSettings,
    context_extensions: &std::collections::BTreeMap<String, String>,
) -> Any {
    use prost::encoding::{WireType, btree_map, encode_key, encode_varint, string};
    use prost::{Message, Name};
    let mut inner = settings.encode_to_vec();
    // CheckSettings.context_extensions is field 1.
    btree_map::encode(
        string::encode,
        string::encoded_len,
        string::encode,
        string::encoded_len,
        1,
        context_extensions,
        &mut inner,
    );
    // ExtAuthzPerRoute.check_settings is field 2.
    let mut value = Vec::with_capacity(inner.len() + 8);
    encode_key(2, WireType::LengthDelimited, &mut value);
    encode_varint(inner.len() as u64, &mut value);
    value.extend_from_slice(&inner);
    Any {
        type_url: ExtAuthzPerRoute::type_url(),
        value,
    }
}

/// Per-route filter configs for a route's auth, keyed by filter name. `chain` holds the
/// providers installed on the route's listener.
pub fn per_route(auth: &RouteAuth, chain: &ChainProviders) -> HashMap<String, Any> {
    let mut out = HashMap::new();
    match auth {
        RouteAuth::Enabled {
            provider,
            context_extensions,
            with_request_body,
            ..
        } => {
            let settings = CheckSettings {
                with_request_body: with_request_body.as_ref().map(buffer),
                ..Default::default()
            };
            out.insert(
                names::ext_authz_filter(provider),
                check_settings_any(&settings, context_extensions),
            );
        }
        RouteAuth::Disabled { .. } => {
            for p in chain.keys() {
                let cfg = ExtAuthzPerRoute {
                    r#override: Some(ext_authz_per_route::Override::Disabled(true)),
                };
                out.insert(names::ext_authz_filter(p), pack_any(cfg));
            }
        }
        RouteAuth::None | RouteAuth::FailClosed { .. } => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ANSWER_ONLY_HEADERS, filter};
    use crate::api::{AuthorizationResponse, ExtGrpcService, ExtHttpService};
    use crate::model::{BackendHeaders, ClusterKey, Provider, ProviderService};
    use crate::store::ObjKey;
    use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz::Services;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

    fn provider(service: ProviderService, backend_headers: BackendHeaders) -> Provider {
        let key = ObjKey::new("app", "r:rule0:externalauth");
        Provider {
            cluster: ClusterKey::Auth {
                extension: key.clone(),
            },
            key,
            spec: Default::default(),
            service,
            backend_headers,
            authority: "authz.app.svc:9000".into(),
        }
    }

    fn http(headers_to_backend: Option<Vec<String>>) -> ProviderService {
        ProviderService::Http(ExtHttpService {
            authorization_response: headers_to_backend.map(|h| AuthorizationResponse {
                headers_to_backend: Some(h),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The `allowed_upstream_headers` patterns of an HTTP filter, as (pattern, is regex).
    fn upstream_patterns(p: &Provider) -> Option<Vec<(String, bool)>> {
        let Some(Services::HttpService(h)) = filter(p).services else {
            panic!("not an HTTP service")
        };
        let list = h.authorization_response?.allowed_upstream_headers?;
        Some(
            list.patterns
                .into_iter()
                .map(|m| match m.match_pattern {
                    Some(MatchPattern::Exact(e)) => (e, false),
                    Some(MatchPattern::SafeRegex(r)) => (r.regex, true),
                    other => panic!("{other:?}"),
                })
                .collect(),
        )
    }

    #[test]
    fn all_but_host_copies_every_header_and_keeps_back_host_and_the_answers_own() {
        let p = provider(http(None), BackendHeaders::AllButHost);
        assert_eq!(upstream_patterns(&p), Some(vec![(".*".into(), true)]));
        let rules = filter(&p)
            .decoder_header_mutation_rules
            .expect("rules narrow the match-all list");
        // Envoy's defaults refuse host and :authority; a rule that allowed routing headers
        // would let the auth server's Host through.
        assert_eq!(rules.allow_all_routing, None);
        assert_eq!(rules.allow_expression, None);
        assert_eq!(rules.disallow_system.map(|b| b.value), Some(true));
        assert_ne!(rules.disallow_is_error.map(|b| b.value), Some(true));
        let disallowed = rules.disallow_expression.expect("expression").regex;
        let names: Vec<&str> = disallowed.split('|').collect();
        assert_eq!(names, ANSWER_ONLY_HEADERS);
        for framing in ["content-length", "transfer-encoding"] {
            assert!(names.contains(&framing), "{framing}");
        }
        let size = crate::model::re2::program_size(&disallowed).expect("RE2 compiles it");
        assert!(
            size <= crate::model::MAX_REGEX_PROGRAM_SIZE,
            "{disallowed}: {size}"
        );
    }

    #[test]
    fn listed_headers_and_grpc_get_no_mutation_rules() {
        let listed = provider(http(Some(vec!["X-User".into()])), BackendHeaders::Listed);
        assert_eq!(
            upstream_patterns(&listed),
            Some(vec![("x-user".into(), false)])
        );
        assert_eq!(filter(&listed).decoder_header_mutation_rules, None);
        // kgateway's GatewayExtension without headersToBackend copies none, as Envoy does.
        let unset = provider(http(None), BackendHeaders::Listed);
        assert_eq!(upstream_patterns(&unset), None);
        assert_eq!(filter(&unset).decoder_header_mutation_rules, None);
        let grpc = provider(
            ProviderService::Grpc(ExtGrpcService::default()),
            BackendHeaders::AllButHost,
        );
        assert_eq!(filter(&grpc).decoder_header_mutation_rules, None);
    }
}
