//! Raw HTTP ext_authz front end (Envoy `http_service`).
//!
//! Envoy forwards the original request headers as HTTP headers to
//! `path_prefix + original path` with any method. A `200` answer allows the
//! request; anything else is relayed to the client as the denial.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt as _;
use tokio::net::TcpListener;

use crate::decision::{self, CheckInput, Protocol};

#[derive(Debug)]
struct AppState {
    provider: String,
}

/// The HTTP check service: every method and path is a check.
pub fn router(provider: String) -> Router {
    Router::new()
        .fallback(check)
        .with_state(Arc::new(AppState { provider }))
}

/// Serve on `listener` (HTTP/1.1 and h2c) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    provider: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(provider))
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
}

async fn check(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body_bytes = match count_body(body).await {
        Ok(n) => n,
        Err(err) => {
            tracing::warn!(error = %err, "failed to read check request body");
            return plain(StatusCode::BAD_REQUEST, "failed to read request body");
        }
    };

    let host = parts
        .headers
        .get(HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let input = CheckInput {
        method: parts.method.to_string(),
        host,
        path,
        protocol: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_bytes,
        context: Default::default(),
        // The HTTP check API carries no client certificate (Envoy sends it as a header only
        // with `x-forwarded-client-cert`, which the gRPC API makes unnecessary).
        peer_certificate_bytes: 0,
    };

    let decision = decision::decide(&input, &state.provider, Protocol::Http);
    crate::log_decision(Protocol::Http, &decision);
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }

    let status =
        StatusCode::from_u16(decision.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if decision.body.is_empty() {
        Response::new(Body::empty())
    } else {
        plain(status, decision.body.clone())
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &decision.headers {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(HeaderName::from_static(name), value);
            }
            Err(_) => tracing::warn!(header = name, "dropping header with invalid value"),
        }
    }
    response
}

/// Drain the body, returning its length without buffering it.
async fn count_body(body: Body) -> Result<usize, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        total = total.saturating_add(chunk?.len());
    }
    Ok(total)
}

fn plain(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
