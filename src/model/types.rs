//! What the model hands the translator: resolved Gateways, ordered routes, effective auth.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::api::{ExtAuthBufferSettings, ExtAuthProvider, ExtGrpcService, ExtHttpService};
use crate::store::{Kind, ObjKey, ObjectRef};

/// How Envoy talks to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 without TLS (gRPC services, `appProtocol: kubernetes.io/h2c`).
    H2c,
}

pub use crate::store::Endpoint;

/// Who an upstream cluster serves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClusterKey {
    /// A Service port used as a route backend.
    Backend { service: ObjKey, port: u16 },
    /// A Service port used as a GRPCRoute backend: always HTTP/2, whatever its
    /// `appProtocol`, so a cluster of its own.
    GrpcBackend { service: ObjKey, port: u16 },
    /// The Service of an auth provider (GatewayExtension).
    Auth { extension: ObjKey },
    /// A backendRef that does not resolve: never defined, so its share of traffic gets the
    /// route's "cluster not found" answer, 500 (as the spec requires).
    Invalid,
}

/// An upstream cluster and its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterModel {
    pub key: ClusterKey,
    pub service: ObjKey,
    pub port: u16,
    pub protocol: UpstreamProtocol,
    /// Shared by every route to the Service port.
    pub endpoints: std::sync::Arc<Vec<Endpoint>>,
    /// TLS a BackendTLSPolicy asks for.
    pub tls: Option<std::sync::Arc<UpstreamTls>>,
}

/// TLS from Envoy to a backend, as a BackendTLSPolicy validates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    pub policy: ObjKey,
    /// Sent as SNI; also the name the certificate must carry unless `subject_alt_names`.
    pub sni: String,
    /// PEM CA certificates (from ConfigMaps) the backend's certificate must chain to.
    pub ca_pem: String,
    pub subject_alt_names: Vec<SanMatch>,
}

/// A name the backend's certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SanMatch {
    Dns(String),
    Uri(String),
}

/// The protocol a provider speaks, with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderService {
    Grpc(ExtGrpcService),
    Http(ExtHttpService),
}

/// Which headers of an HTTP authorization service's `200` answer are set on the request the
/// backend receives. (A gRPC service names the headers to set in its answer; all of them are.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendHeaders {
    /// Those `authorizationResponse.headersToBackend` lists, none when it is unset: kgateway's
    /// and Envoy's meaning, so GatewayExtensions behave as they do under kgateway.
    #[default]
    Listed,
    /// Every header but Host/`:authority` and those describing the answer itself rather than
    /// the request (framing, hop-by-hop, its body's type and encoding): GEP-1494's empty
    /// `allowedResponseHeaders`. See `translate::ext_authz::ANSWER_ONLY_HEADERS`.
    AllButHost,
}

/// A resolved ext auth provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    pub key: ObjKey,
    /// Provider-wide options (`failOpen`, `statusOnError`, …).
    pub spec: ExtAuthProvider,
    pub service: ProviderService,
    /// Only read for an HTTP service.
    pub backend_headers: BackendHeaders,
    pub cluster: ClusterKey,
    /// `host` the HTTP service is called with (`name.namespace.svc:port`).
    pub authority: String,
}

/// Path match of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// A header or query parameter match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueMatch {
    pub name: String,
    pub value: String,
    pub regex: bool,
}

/// Everything one Gateway API match asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchModel {
    pub path: PathMatch,
    pub method: Option<String>,
    pub headers: Vec<ValueMatch>,
    pub query: Vec<ValueMatch>,
}

/// A backend and its share of traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedBackend {
    pub cluster: ClusterKey,
    pub weight: u32,
    /// The backendRef's own header filters.
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
}

/// What a route does with a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    Forward(Vec<WeightedBackend>),
    /// Answer directly (unresolvable backends, fail-closed auth).
    Respond {
        status: u32,
        body: String,
    },
    /// A RequestRedirect filter.
    Redirect(Redirect),
}

/// Ext auth as it applies to one route, and what decided it.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteAuth {
    /// No policy applies.
    None,
    /// Requests are checked by `provider`.
    Enabled {
        provider: ObjKey,
        policy: ObjKey,
        context_extensions: BTreeMap<String, String>,
        with_request_body: Option<ExtAuthBufferSettings>,
    },
    /// A policy switched auth off.
    Disabled { policy: ObjKey },
    /// The deciding policy is broken: the route answers without reaching the backend.
    FailClosed { policy: ObjKey, reason: String },
}

/// One Envoy route: one match of one rule of one HTTPRoute.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteModel {
    /// The HTTPRoute or GRPCRoute.
    pub route: ObjectRef,
    pub rule_index: usize,
    pub rule_name: Option<String>,
    pub match_index: usize,
    pub matches: MatchModel,
    /// The match the route is ordered by when it differs from `matches`: a fail-closed stand-in
    /// keeps the place of the invalid match it replaces, so no rule that came after the
    /// original moves ahead of it.
    pub ranked_as: Option<Box<MatchModel>>,
    pub action: RouteAction,
    pub filters: RouteFilters,
    pub auth: RouteAuth,
    /// A GRPCRoute match's rank: GRPCRoute precedence ranks by it before headers, where an
    /// HTTPRoute's ranks by its path.
    pub grpc_rank: Option<GrpcRank>,
}

/// A GRPCRoute method match's precedence, greatest first: (service kind, service characters,
/// method kind, method characters), a kind being 2 for an exact name, 1 for a regex, 0 for
/// none. Gateway API ranks by service then method characters; how a regex compares is left to
/// implementations, and here an exact name outranks any regex, as paths do.
pub type GrpcRank = (u8, usize, u8, usize);

impl RouteModel {
    /// The match that decides the route's precedence.
    pub fn rank_match(&self) -> &MatchModel {
        self.ranked_as.as_deref().unwrap_or(&self.matches)
    }

    /// Stable, unique name within a virtual host.
    pub fn name(&self) -> String {
        let kind = match self.route.kind {
            Kind::GrpcRoute => "grpcroute",
            _ => "httproute",
        };
        format!(
            "{kind}/{}/{}/rule/{}/match/{}",
            self.route.key.namespace, self.route.key.name, self.rule_index, self.match_index
        )
    }
}

/// The routes served for one hostname on one port.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualHostModel {
    /// A hostname, a wildcard (`*.example.com`) or `*`.
    pub hostname: String,
    /// The Gateway listener that owns the hostname.
    pub listener: String,
    /// In Gateway API precedence order; shared with the routes' own contributions.
    pub routes: Vec<std::sync::Arc<RouteModel>>,
}

/// One Envoy listener: all Gateway listeners on a port.
#[derive(Clone, Debug, PartialEq)]
pub struct PortModel {
    pub port: u16,
    /// Sorted by hostname; a host no route change touched is shared with the previous build.
    pub virtual_hosts: Vec<std::sync::Arc<VirtualHostModel>>,
    /// Providers some route on this port uses (one ext_authz filter each).
    pub providers: BTreeSet<ObjKey>,
    /// HTTPS: one TLS filter chain per listener, in the Gateway's listener order. Empty for
    /// HTTP (a port serves one protocol; a second one on it is a `ProtocolConflict`).
    pub tls: Vec<TlsChain>,
}

/// The TLS filter chain of one HTTPS listener. Every chain of a port serves the port's one
/// route table: the SNI picks the certificate, and the `Host` header the routes, so a request
/// is checked by the policy of the host it asks for whatever name its connection was opened
/// with (docs/security-model.md).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsChain {
    pub listener: String,
    /// Matched against the SNI; `None` takes connections no other chain's hostname matches.
    pub hostname: Option<String>,
    pub certificates: Vec<std::sync::Arc<Certificate>>,
    /// Client certificate validation (the Gateway's `spec.tls.frontend`).
    pub clients: Option<std::sync::Arc<ClientValidation>>,
}

/// What a listener does with `%2F`/`%5C` in a path (GatewayParameters
/// `spec.path.escapedSlashesAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    #[default]
    UnescapeAndRedirect,
    RejectRequest,
    UnescapeAndForward,
    KeepUnchanged,
}

/// Path normalization of a Gateway's listeners. Dot segments are always resolved: no setting
/// turns that off, since a backend resolving `/public/../admin` itself would otherwise serve a
/// path no route matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathPolicy {
    pub escaped_slashes: EscapedSlashes,
    pub merge_slashes: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy {
            escaped_slashes: EscapedSlashes::UnescapeAndRedirect,
            merge_slashes: true,
        }
    }
}

impl PathPolicy {
    /// What the policy lets past route matching that the default does not, one sentence per
    /// weakened setting; empty for the default and for stricter or equivalent choices.
    pub fn weakened(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.escaped_slashes == EscapedSlashes::KeepUnchanged {
            out.push(
                "escapedSlashesAction KeepUnchanged: /admin%2Fx matches routes as one segment (e.g. a public / rule) and a backend that decodes %2F serves it as /admin/x",
            );
        }
        if !self.merge_slashes {
            out.push(
                "disableMergeSlashes: //admin matches routes as a path outside /admin and a backend that merges slashes serves it as /admin",
            );
        }
        out
    }
}

/// A Gateway Gatehouse serves.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayModel {
    pub key: ObjKey,
    /// Path normalization of all its listeners.
    pub path: PathPolicy,
    /// Sorted by port.
    pub ports: Vec<PortModel>,
    pub clusters: BTreeMap<ClusterKey, ClusterModel>,
    pub providers: BTreeMap<ObjKey, Provider>,
    /// The client certificate presented to TLS backends (`spec.tls.backend`).
    pub backend_client: Option<std::sync::Arc<Certificate>>,
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// How a path is replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRewrite {
    Full(String),
    /// Replaces the part the route's PathPrefix match matched.
    Prefix(String),
}

/// A RequestRedirect filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathRewrite>,
    pub status: u32,
}

/// A URLRewrite filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub hostname: Option<String>,
    pub path: Option<PathRewrite>,
}

/// A RequestMirror filter: a copy of `numerator/denominator` of the requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: ClusterKey,
    pub numerator: u32,
    pub denominator: u32,
}

/// A rule's `retry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub codes: Vec<u32>,
    pub attempts: u32,
    pub backoff: Option<Duration>,
}

/// Everything a rule asks of its routes besides matching and backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteFilters {
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub rewrite: Option<Rewrite>,
    pub mirrors: Vec<Mirror>,
    pub request_timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
    pub retry: Option<Retry>,
}

/// A PEM private key. Never printed: its `Debug` is `[redacted]`, and the renderers replace
/// it (`render::resources_json`).
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(String);

impl PrivateKey {
    pub(crate) fn new(pem: String) -> Self {
        PrivateKey(pem)
    }

    /// The PEM text, for the Envoy Secret only.
    pub fn pem(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

/// The key algorithm of a certificate. A chain may serve several of either: Envoy picks the
/// one whose names match the SNI, of a type the client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyType {
    Rsa,
    Ecdsa,
}

/// A certificate chain and its key, as Envoy will load them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// The Secret it came from; also its SDS name (`translate::names::secret`).
    pub secret: ObjKey,
    /// PEM, leaf first.
    pub chain_pem: String,
    pub key: PrivateKey,
    pub key_type: KeyType,
}

/// How clients' certificates are checked on an HTTPS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientValidation {
    /// PEM CA certificates a client certificate must chain to.
    pub ca_pem: String,
    /// `AllowInsecureFallback`: clients without a valid certificate are let in too.
    pub insecure_fallback: bool,
}
