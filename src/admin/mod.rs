//! The admin HTTP endpoint: health, readiness, metrics and debug views.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::engine::Shared;
use crate::metrics::Metrics;
use crate::store::ObjKey;

/// What the handlers read.
#[derive(Clone)]
pub struct AdminState {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
}

/// The admin routes: what probes and Prometheus read, safe to expose to the cluster.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The debug routes: every Gateway's configuration and status. Served on their own address,
/// loopback by default, because they show every tenant's configuration.
pub fn debug_router(state: AdminState) -> Router {
    Router::new()
        .route("/debug/xds", get(debug_xds))
        .route("/debug/status", get(debug_status))
        .route("/debug/explain", get(debug_explain))
        .with_state(state)
}

/// Serves `router` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(s): State<AdminState>) -> Response {
    readiness(&s.shared).into_response()
}

/// `/readyz`: ready once a configuration is built, and it stays ready when a later build
/// panics. Every replica sees the same input, so the same panic would take every replica out
/// of the Service at once and leave proxies without an xDS server to reconnect to; the last
/// good configuration stays served instead, and the body, the log, `gatehouse_degraded` and
/// `gatehouse_build_panics_total` say so (docs/operations.md, "A build that panics").
pub fn readiness(shared: &Shared) -> (StatusCode, String) {
    if !shared.ready() {
        return match shared.degraded() {
            Some(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: no configuration built yet ({why})\n"),
            ),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no configuration built yet\n".to_string(),
            ),
        };
    }
    // Still ready when a proxy rejected an update too: pulling Gatehouse from service would
    // not help it. The body names the Gateways whose proxies did; not Envoy's message, which
    // can quote configured values (it is on /debug/status and the Gateway's status).
    let mut body = "ready\n".to_string();
    if let Some(why) = shared.degraded() {
        body.push_str(&format!(
            "degraded: {why}; serving the previous configuration\n"
        ));
    }
    for (gateway, rejections) in shared.view().rejected.iter() {
        for r in rejections {
            body.push_str(&format!(
                "gateway {gateway}: proxy {} rejected {} version {}\n",
                r.node, r.type_url, r.version
            ));
        }
    }
    (StatusCode::OK, body)
}

async fn metrics(State(s): State<AdminState>) -> Response {
    match s.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct XdsQuery {
    gateway: Option<String>,
}

fn json(value: &serde_json::Value) -> Response {
    let body = serde_json::to_string_pretty(value).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response()
}

async fn debug_xds(State(s): State<AdminState>, Query(q): Query<XdsQuery>) -> Response {
    let view = s.shared.view();
    let selected: Vec<_> = match q.gateway.as_deref() {
        None => view.resources.values().collect(),
        Some(g) => {
            let Some((ns, name)) = g.split_once('/') else {
                return (StatusCode::BAD_REQUEST, "gateway must be NAMESPACE/NAME\n")
                    .into_response();
            };
            match view.resources.get(&ObjKey::new(ns, name)) {
                Some(r) => vec![r],
                None => {
                    return (
                        StatusCode::NOT_FOUND,
                        format!("Gateway {g} is not served\n"),
                    )
                        .into_response();
                }
            }
        }
    };
    // One descriptor pool for every Gateway's document.
    let printer = crate::protojson::Printer::new();
    let docs: Result<Vec<_>, _> = selected
        .into_iter()
        .map(|r| {
            crate::render::resources_json(r).map(|mut doc| {
                crate::render::redact(&mut doc);
                doc
            })
        })
        .collect();
    drop(printer);
    match docs {
        Ok(docs) if q.gateway.is_some() => json(&docs[0]),
        Ok(docs) => json(&serde_json::Value::Array(docs)),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn debug_status(State(s): State<AdminState>) -> Response {
    let view = s.shared.view();
    json(&serde_json::json!({
        "ready": view.ready,
        "builds": view.builds,
        "problems": view.problems,
        "status": view.status(),
        "rejected": view.rejected.iter().map(|(gw, rs)| (gw.to_string(), rs.iter().map(|r| serde_json::json!({
            "node": r.node, "type": r.type_url, "version": r.version, "message": r.message,
        })).collect::<Vec<_>>().into())).collect::<serde_json::Map<_, _>>(),
    }))
}

#[derive(Deserialize)]
struct ExplainQuery {
    /// `json` (default), `table` or `mermaid`.
    format: Option<String>,
    gateway: Option<String>,
}

async fn debug_explain(State(s): State<AdminState>, Query(q): Query<ExplainQuery>) -> Response {
    let rows: Vec<_> = s
        .shared
        .view()
        .explain()
        .into_iter()
        .filter(|r| q.gateway.as_ref().is_none_or(|g| *g == r.gateway))
        .collect();
    match q.format.as_deref() {
        None | Some("json") => json(&serde_json::to_value(&rows).unwrap_or_default()),
        Some("table") => crate::explain::table(&rows).into_response(),
        Some("mermaid") => crate::explain::mermaid(&rows).into_response(),
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?}: use json, table or mermaid\n"),
        )
            .into_response(),
    }
}
