//! The `ext_authz` HTTP filter of each provider, and the per-route settings that switch it on
//! or off.
//!
//! Filters are installed disabled; a route turns its provider's filter on with an
//! `ExtAuthzPerRoute` carrying `check_settings`. A route that a policy disables carries
//! `ExtAuthzPerRoute{disabled: true}` for every provider on the listener, so that no filter can
//! run there even if defaults change.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    BackoffStrategy, GrpcService, HeaderValue, HttpUri, RetryPolicy, grpc_service, http_uri,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, CheckSettings, ExtAuthz,
    ExtAuthzPerRoute, HttpService, ext_authz, ext_authz_per_route,
};
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use envoy_types::util::pack_any;

use super::common::{duration, exact_ignore_case, parse_duration};
use super::guard::ChainProviders;
use super::names;
use crate::api::{ExtAuthBufferSettings, ExtSvcRetryPolicy};
use crate::model::{Provider, ProviderService, RouteAuth};

/// Timeout of an authorization call when `requestTimeout` is unset, for gRPC and HTTP alike.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Status returned when the authorization service fails and `statusOnError` is unset.
pub const DEFAULT_STATUS_ON_ERROR: u32 = 403;

/// The filter configuration of one provider.
pub fn filter(provider: &Provider) -> ExtAuthz {
    let spec = &provider.spec;
    let cluster = names::cluster(&provider.cluster);
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
                authorization_response: response.map(|r| AuthorizationResponse {
                    allowed_upstream_headers: r.headers_to_backend.as_deref().map(list_matcher),
                    allowed_client_headers: r.headers_to_client.as_deref().map(list_matcher),
                    allowed_client_headers_on_success: r
                        .headers_to_client_on_success
                        .as_deref()
                        .map(list_matcher),
                    ..Default::default()
                }),
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
