//! Envoy gRPC ext_authz front end: `envoy.service.auth.v3.Authorization/Check`.

use std::future::Future;

use anyhow::Context as _;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::decision::{self, CheckInput, Decision, Protocol, Verdict};

/// The `Authorization` service implementation.
#[derive(Debug, Clone)]
pub struct AuthzService {
    provider: String,
}

impl AuthzService {
    pub fn new(provider: String) -> Self {
        Self { provider }
    }
}

#[tonic::async_trait]
impl Authorization for AuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let input = check_input(&request.into_inner());
        let decision = decision::decide(&input, &self.provider, Protocol::Grpc);
        crate::log_decision(Protocol::Grpc, &decision);
        if let Some(delay) = decision.delay {
            tokio::time::sleep(delay).await;
        }
        Ok(Response::new(check_response(&decision)))
    }
}

/// A certificate chain and key (PEM) to serve gRPC over TLS with.
pub struct Tls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// Require client certificates signed by this PEM CA.
    pub client_ca: Option<Vec<u8>>,
}

/// Serve the gRPC service on `listener` (HTTP/2 cleartext, or TLS only with `tls`) until
/// `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    provider: String,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = tonic::transport::Identity::from_pem(tls.cert, tls.key);
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = tls.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config).context("TLS configuration")?;
    }
    builder
        .add_service(AuthorizationServer::new(AuthzService::new(provider)))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .context("gRPC server failed")
}

/// Flatten a `CheckRequest` into the protocol-independent [`CheckInput`].
///
/// Headers come from `headers` (the default) and from `header_map` (used when
/// Envoy's `encode_raw_headers` is on, values in `raw_value`); the body from
/// `body` or `raw_body` (`pack_as_bytes`).
pub fn check_input(request: &CheckRequest) -> CheckInput {
    let Some(attributes) = request.attributes.as_ref() else {
        return CheckInput::default();
    };
    let context = attributes
        .context_extensions
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Some(http) = attributes.request.as_ref().and_then(|r| r.http.as_ref()) else {
        return CheckInput {
            context,
            ..CheckInput::default()
        };
    };

    let mut headers: Vec<(String, String)> = http
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    // `headers` is a map: sort for a deterministic order.
    headers.sort();
    if let Some(map) = http.header_map.as_ref() {
        headers.extend(map.headers.iter().map(|h| {
            let value = if h.raw_value.is_empty() {
                h.value.clone()
            } else {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            };
            (h.key.to_ascii_lowercase(), value)
        }));
    }

    CheckInput {
        method: http.method.clone(),
        host: http.host.clone(),
        path: http.path.clone(),
        protocol: http.protocol.clone(),
        headers,
        body_bytes: http.body.len().max(http.raw_body.len()),
        context,
        peer_certificate_bytes: attributes
            .source
            .as_ref()
            .map_or(0, |s| s.certificate.len()),
    }
}

/// Build the `CheckResponse` for `decision`.
pub fn check_response(decision: &Decision) -> CheckResponse {
    let headers: Vec<HeaderValueOption> = decision
        .headers
        .iter()
        .map(|(key, value)| header_option(key, value))
        .collect();

    let (code, http_response) = match &decision.verdict {
        Verdict::Allow => (
            tonic::Code::Ok,
            HttpResponse::OkResponse(OkHttpResponse {
                headers,
                ..OkHttpResponse::default()
            }),
        ),
        Verdict::Deny | Verdict::Redirect(_) => (
            tonic::Code::PermissionDenied,
            HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(decision.http_status()),
                }),
                headers,
                body: decision.body.clone(),
            }),
        ),
    };

    CheckResponse {
        status: Some(rpc::Status {
            code: code.into(),
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(http_response),
        ..CheckResponse::default()
    }
}

/// A header that replaces any existing value, so that e.g. the override header
/// really overrides what the client sent. `append` is left unset so Envoy
/// honours `append_action`.
fn header_option(key: &str, value: &str) -> HeaderValueOption {
    #[allow(deprecated)] // `append` is deprecated; we deliberately leave it unset.
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        keep_empty_value: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderMap;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Request as AttrRequest,
    };

    fn request(http: HttpRequest) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(AttrRequest {
                    http: Some(http),
                    ..AttrRequest::default()
                }),
                context_extensions: [("b".to_owned(), "2".to_owned())].into(),
                ..AttributeContext::default()
            }),
        }
    }

    #[test]
    fn empty_request_is_denied_not_an_error() {
        let input = check_input(&CheckRequest::default());
        let d = decision::decide(&input, "p", Protocol::Grpc);
        let resp = check_response(&d);
        assert_eq!(
            resp.status.map(|s| s.code),
            Some(tonic::Code::PermissionDenied as i32)
        );
        assert!(matches!(
            resp.http_response,
            Some(HttpResponse::DeniedResponse(_))
        ));
    }

    #[test]
    fn reads_headers_body_and_context() {
        let req = request(HttpRequest {
            method: "POST".into(),
            host: "h".into(),
            path: "/p".into(),
            headers: [("x-ext-authz".to_owned(), "allow".to_owned())].into(),
            body: "hello".into(),
            ..HttpRequest::default()
        });
        let input = check_input(&req);
        assert_eq!(input.body_bytes, 5);
        assert_eq!(input.context_summary().as_deref(), Some("b=2"));
        let d = decision::decide(&input, "p", Protocol::Grpc);
        let resp = check_response(&d);
        assert_eq!(resp.status.map(|s| s.code), Some(0));
        let Some(HttpResponse::OkResponse(ok)) = resp.http_response else {
            panic!("expected OkResponse");
        };
        let keys: Vec<_> = ok
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref().map(|h| h.key.as_str()))
            .collect();
        assert!(keys.contains(&"x-ext-authz-context"));
        assert!(
            ok.headers
                .iter()
                .all(|h| h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32)
        );
    }

    #[test]
    fn reads_raw_headers_and_raw_body() {
        let req = request(HttpRequest {
            header_map: Some(HeaderMap {
                headers: vec![HeaderValue {
                    key: "X-Ext-Authz".into(),
                    value: String::new(),
                    raw_value: b"allow".to_vec(),
                }],
            }),
            raw_body: vec![0xff; 3],
            ..HttpRequest::default()
        });
        let input = check_input(&req);
        assert_eq!(input.body_bytes, 3);
        assert!(decision::decide(&input, "p", Protocol::Grpc).allowed());
    }

    #[test]
    fn redirect_response() {
        let req = request(HttpRequest {
            headers: [("x-ext-authz-redirect".to_owned(), "/login".to_owned())].into(),
            ..HttpRequest::default()
        });
        let d = decision::decide(&check_input(&req), "p", Protocol::Grpc);
        let Some(HttpResponse::DeniedResponse(denied)) = check_response(&d).http_response else {
            panic!("expected DeniedResponse");
        };
        assert_eq!(denied.status.map(|s| s.code), Some(302));
        assert!(denied.headers.iter().any(|h| {
            h.header
                .as_ref()
                .is_some_and(|h| h.key == "location" && h.value == "/login")
        }));
    }
}
