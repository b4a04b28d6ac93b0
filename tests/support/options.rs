//! Helpers of the ext auth option tests: manifests for extra auth services, providers and
//! policies; requests with binary bodies; reading the demo auth server's
//! `x-ext-authz-check-received` summary; and a gRPC auth server that reports what the demo
//! server does not: the `:authority` it was called with and which body field carried the body.
#![allow(dead_code)]

use serde_json::{Value, json};

/// Namespace of the Gateway, and of every object these helpers write.
pub const NS: &str = "kgateway-system";
/// The base manifests' gRPC auth Service (the demo server `World::start` runs).
pub const GRPC_SERVICE: &str = "ext-authz";
pub const GRPC_SERVICE_PORT: u16 = 4444;

/// JSON documents as one multi-document YAML file (JSON is YAML).
pub fn docs(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_json::to_string_pretty(o).expect("json"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// A Service `name` (port `port`) in [`NS`] whose one endpoint is 127.0.0.1:`target`.
pub fn service(name: &str, port: u16, target: u16, app_protocol: Option<&str>) -> String {
    let mut port_spec = json!({"name": "p", "port": port, "targetPort": target, "protocol": "TCP"});
    if let Some(a) = app_protocol {
        port_spec["appProtocol"] = json!(a);
    }
    docs(&[
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [port_spec]}
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-local"), "namespace": NS,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "p", "port": target, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"]}]
        }),
    ])
}

/// A GatewayExtension `name` in [`NS`] with `spec.extAuth = ext_auth`.
pub fn extension(name: &str, ext_auth: Value) -> String {
    docs(&[json!({
        "apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "GatewayExtension",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"type": "ExtAuth", "extAuth": ext_auth}
    })])
}

/// `grpcService` on `service:port`, merged with `extra` (e.g. `requestTimeout`, `retry`).
pub fn grpc_service(service: &str, port: u16, extra: Value) -> Value {
    let mut v = json!({"backendRef": {"name": service, "port": port}});
    merge(&mut v, extra);
    v
}

/// `httpService` on `service:port`, merged with `extra`.
pub fn http_service(service: &str, port: u16, extra: Value) -> Value {
    grpc_service(service, port, extra)
}

/// A Gateway-level TrafficPolicy `gateway-auth` that uses `extension`, with `extra` merged
/// into its `extAuth` (`contextExtensions`, `withRequestBody`).
pub fn gateway_policy(extension: &str, extra: Value) -> String {
    let mut ext_auth = json!({"extensionRef": {"name": extension}});
    merge(&mut ext_auth, extra);
    docs(&[json!({
        "apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "TrafficPolicy",
        "metadata": {"name": "gateway-auth", "namespace": NS},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "http"}],
            "extAuth": ext_auth
        }
    })])
}

/// Shallow-merges the fields of object `extra` into object `into`.
pub fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

/// The demo server's summary `METHOD HOST/PATH PROTO; headers=a,b; body=N`, split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `HOST/PATH` as the auth server saw it.
    pub target: String,
    /// Sorted, lower-cased header names.
    pub headers: Vec<String>,
    pub body: usize,
}

impl Received {
    pub fn parse(summary: &str) -> Received {
        let mut parts = summary.split("; ");
        let first = parts.next().unwrap_or_default();
        let target = first.split(' ').nth(1).unwrap_or_default().to_string();
        let mut headers = Vec::new();
        let mut body = usize::MAX;
        for p in parts {
            if let Some(h) = p.strip_prefix("headers=") {
                headers = h
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            } else if let Some(b) = p.strip_prefix("body=") {
                body = b.parse().unwrap_or(usize::MAX);
            }
        }
        Received {
            target,
            headers,
            body,
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h == name)
    }
}

/// A gRPC ext_authz server on 127.0.0.1:`port` that allows every request and tells the
/// backend, in upstream headers, which `:authority` Envoy called it with
/// ([`AUTHORITY_HEADER`]) and the sizes of the check request's `body` and `raw_body`
/// ([`BODY_FIELDS_HEADER`], `body=N;raw_body=M`). Stops when dropped.
pub struct InspectingAuthz {
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
}

/// Upstream header set by [`InspectingAuthz`].
pub const AUTHORITY_HEADER: &str = "x-seen-authority";
/// Upstream header set by [`InspectingAuthz`].
pub const BODY_FIELDS_HEADER: &str = "x-seen-body-fields";

impl InspectingAuthz {
    pub fn start() -> InspectingAuthz {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        runtime.spawn(async move {
            let svc = authority::Recorder(
                envoy_types::ext_authz::v3::pb::AuthorizationServer::new(authority::Allow),
            );
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("authority echo server");
        });
        InspectingAuthz {
            port,
            _runtime: runtime,
        }
    }
}

mod authority {
    use envoy_types::ext_authz::v3::pb::{
        Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HeaderValue,
        HeaderValueOption, HttpResponse, OkHttpResponse,
    };
    use tonic::codegen::{Context, Poll, Service, http};

    /// The `:authority` of the gRPC call, carried from the HTTP/2 layer to the handler.
    #[derive(Clone)]
    struct Seen(String);

    /// Wraps the generated server to record the request URI's authority.
    #[derive(Clone)]
    pub struct Recorder<S>(pub S);

    impl<S: tonic::server::NamedService> tonic::server::NamedService for Recorder<S> {
        const NAME: &'static str = S::NAME;
    }

    impl<S, B> Service<http::Request<B>> for Recorder<S>
    where
        S: Service<http::Request<B>>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "<none>".into());
            req.extensions_mut().insert(Seen(authority));
            self.0.call(req)
        }
    }

    pub struct Allow;

    fn header(key: &str, value: String) -> HeaderValueOption {
        #[allow(deprecated)] // `append` is deprecated; left unset.
        HeaderValueOption {
            header: Some(HeaderValue {
                key: key.into(),
                value,
                raw_value: Vec::new(),
            }),
            append: None,
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
            keep_empty_value: false,
        }
    }

    #[tonic::async_trait]
    impl Authorization for Allow {
        async fn check(
            &self,
            request: tonic::Request<CheckRequest>,
        ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
            let seen = request
                .extensions()
                .get::<Seen>()
                .map(|s| s.0.clone())
                .unwrap_or_else(|| "<unrecorded>".into());
            let http = request
                .get_ref()
                .attributes
                .as_ref()
                .and_then(|a| a.request.as_ref())
                .and_then(|r| r.http.as_ref());
            let bodies = format!(
                "body={};raw_body={}",
                http.map_or(0, |h| h.body.len()),
                http.map_or(0, |h| h.raw_body.len())
            );
            Ok(tonic::Response::new(CheckResponse {
                status: Some(envoy_types::pb::google::rpc::Status::default()),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![
                        header(super::AUTHORITY_HEADER, seen),
                        header(super::BODY_FIELDS_HEADER, bodies),
                    ],
                    ..OkHttpResponse::default()
                })),
                ..CheckResponse::default()
            }))
        }
    }
}
