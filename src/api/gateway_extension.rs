use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{BackendRef, ConditionsStatus, ExtAuthBufferSettings};

/// Duration rules shared by every duration field, as kgateway writes them.
const DURATION_RULE: &str = "matches(self, '^([0-9]{1,5}(h|m|s|ms)){1,4}$')";

/// A provider that Gateways can call out to; Gatehouse implements the `ExtAuth` type.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gateway.kgateway.dev",
    version = "v1alpha1",
    kind = "GatewayExtension",
    plural = "gatewayextensions",
    namespaced,
    status = "ConditionsStatus",
    category = "kgateway",
    category = "gatehouse",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.extAuth)").message("extAuth must be set: Gatehouse serves ExtAuth extensions"))]
pub struct GatewayExtensionSpec {
    /// Extension type; only `ExtAuth` is served. Optional, as in kgateway.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<GatewayExtensionType>,
    /// External authorization provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_auth: Option<ExtAuthProvider>,
}

/// Kind of extension.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum GatewayExtensionType {
    /// External authorization (Envoy ext_authz).
    ExtAuth,
}

/// An external authorization service and how Envoy calls it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.grpcService) ? 1 : 0) + (has(self.httpService) ? 1 : 0) == 1").message("exactly one of grpcService or httpService must be set"))]
pub struct ExtAuthProvider {
    /// Envoy's gRPC authorization protocol (`envoy.service.auth.v3.Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_service: Option<ExtGrpcService>,
    /// Plain HTTP authorization service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_service: Option<ExtHttpService>,
    /// Client request headers sent to the authorization service (all for gRPC when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_to_forward: Option<Vec<String>>,
    /// Let requests through when the authorization service fails or cannot be reached.
    /// Configuration errors never fail open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
    /// Recompute the route after the authorization service changed headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_route_cache: Option<bool>,
    /// Buffer the request body and send it to the authorization service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_request_body: Option<ExtAuthBufferSettings>,
    /// Status returned to the client when the authorization service fails (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 100 && self <= 511").message("statusOnError must be between 100 and 511"))]
    pub status_on_error: Option<i32>,
    /// Prefix for the filter's statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("statPrefix must not be empty"))]
    pub stat_prefix: Option<String>,
    /// Dynamic metadata namespaces sent to the authorization service (Gatehouse extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 16").message("metadataContextNamespaces holds at most 16 entries"))]
    pub metadata_context_namespaces: Option<Vec<String>>,
    /// Send the client's TLS certificate to the authorization service (Gatehouse extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_peer_certificate: Option<bool>,
    /// Send TLS session details (SNI) to the authorization service (Gatehouse extension).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "includeTLSSession"
    )]
    pub include_tls_session: Option<bool>,
    /// Expose per-request filter-state stats (latency, bytes) for logs (Gatehouse extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit_filter_state_stats: Option<bool>,
}

/// A gRPC authorization service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtGrpcService {
    /// The Service that serves the authorization API.
    pub backend_ref: BackendRef,
    /// `:authority` sent to the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Timeout of one authorization call (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("invalid timeout value"))]
    pub request_timeout: Option<String>,
    /// Retries of failed authorization calls (connect failures, resets, refused streams,
    /// `UNAVAILABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<ExtSvcRetryPolicy>,
}

/// An HTTP authorization service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtHttpService {
    /// The Service that serves authorization requests.
    pub backend_ref: BackendRef,
    /// Prefix added to the path of the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Timeout of one authorization call (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("invalid timeout value"))]
    pub request_timeout: Option<String>,
    /// What is added to the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_request: Option<AuthorizationRequest>,
    /// Which response headers travel on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response: Option<AuthorizationResponse>,
    /// Retries of failed authorization calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<ExtSvcRetryPolicy>,
}

/// Headers added to HTTP authorization requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRequest {
    /// Header name → value (Envoy format specifiers allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_to_add: Option<BTreeMap<String, String>>,
}

/// Headers of the HTTP authorization response that travel on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationResponse {
    /// Sent to the backend when the request is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_to_backend: Option<Vec<String>>,
    /// Sent to the client when the request is denied (e.g. `location` for redirects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_to_client: Option<Vec<String>>,
    /// Sent to the client when the request is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_to_client_on_success: Option<Vec<String>>,
}

/// Retry policy for calls to the authorization service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtSvcRetryPolicy {
    /// Number of retries (default 1; 0 disables retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("attempts must not be negative"))]
    pub attempts: Option<i32>,
    /// Back-off between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<RetryBackoff>,
}

/// Fully jittered exponential back-off.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.maxInterval) ? duration(self.maxInterval) >= duration(self.baseInterval) : true").message("maxInterval must be greater than or equal to baseInterval"))]
pub struct RetryBackoff {
    /// Base interval.
    #[x_kube(validation = Rule::new(DURATION_RULE).message("invalid duration value"))]
    pub base_interval: String,
    /// Maximum interval (default 10 × base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("invalid duration value"))]
    pub max_interval: Option<String>,
}
