//! The echo handler: reports the request it received as JSON, like httpbin's
//! `/headers`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Serialize;

/// Response header naming the backend that answered.
pub const BACKEND_HEADER: HeaderName = HeaderName::from_static("x-echo-backend");

#[derive(Debug)]
struct AppState {
    name: String,
    name_header: HeaderValue,
}

/// The JSON document returned for every request.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Echo {
    pub backend: String,
    pub method: String,
    /// Path including the query string.
    pub path: String,
    pub host: String,
    /// Canonicalised header name -> values in arrival order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Over HTTPS (`--tls-cert`): the connection's TLS facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<EchoTls>,
}

/// What the conformance echo reports of a TLS connection (the SNI).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EchoTls {
    pub server_name: String,
}

/// Router answering every method and path. `name_header` is `name` as a
/// validated header value.
pub fn router(name: String, name_header: HeaderValue) -> Router {
    Router::new()
        .fallback(echo)
        .with_state(Arc::new(AppState { name, name_header }))
}

async fn echo(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body_bytes = drain(body).await;

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
    let doc = Echo {
        backend: state.name.clone(),
        method: parts.method.to_string(),
        path,
        host,
        headers: canonical_headers(&parts.headers),
        tls: parts
            .extensions
            .get::<crate::tls::ServerName>()
            .map(|s| EchoTls {
                server_name: s.0.clone(),
            }),
    };
    tracing::info!(
        method = %doc.method,
        path = %doc.path,
        host = %doc.host,
        version = ?parts.version,
        body_bytes,
        "echo"
    );
    if let Some(delay) = parts.uri.query().and_then(delay_of) {
        tokio::time::sleep(delay).await;
    }

    let mut response = ([(BACKEND_HEADER, state.name_header.clone())], Json(doc)).into_response();
    for (name, value) in parts
        .headers
        .get_all(SET_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(set_headers)
    {
        response.headers_mut().append(name, value);
    }
    response
}

/// Request header asking the echo to put headers on its response, as the Gateway API
/// conformance echo does: `X-Echo-Set-Header: Name:Value,Name2:Value2`.
pub const SET_HEADER: &str = "x-echo-set-header";

/// The `Name:Value` pairs of one `X-Echo-Set-Header` value; malformed pairs are skipped.
pub fn set_headers(value: &str) -> Vec<(HeaderName, HeaderValue)> {
    value
        .split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once(':')?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = HeaderValue::from_str(value.trim()).ok()?;
            Some((name, value))
        })
        .collect()
}

/// `delay=` in a query string (`500ms`, `1s`, `2m`): how long to wait before answering, as the
/// conformance echo does for timeout tests. Capped at one minute.
pub fn delay_of(query: &str) -> Option<std::time::Duration> {
    let value = query.split('&').find_map(|kv| kv.strip_prefix("delay="))?;
    let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        _ => return None,
    };
    Some(d.min(std::time::Duration::from_secs(60)))
}

/// Read and discard the request body, returning how many bytes arrived.
/// A broken body is logged and otherwise ignored: the echo still answers.
async fn drain(body: Body) -> usize {
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => total = total.saturating_add(chunk.len()),
            Err(err) => {
                tracing::debug!(error = %err, "request body ended with an error");
                break;
            }
        }
    }
    total
}

/// Group header values by canonical name (`x-foo-bar` -> `X-Foo-Bar`).
pub fn canonical_headers(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        out.entry(canonical_header_name(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

/// Canonicalise a header name like Go's `textproto.CanonicalMIMEHeaderKey`
/// (which httpbin-style echo servers show): the first letter and every letter
/// after a `-` upper-case, the rest lower-case. Names containing characters
/// that are not valid in a header token are returned unchanged.
pub fn canonical_header_name(name: &str) -> String {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_like_go() {
        assert_eq!(
            canonical_header_name("x-ext-authz-check-result"),
            "X-Ext-Authz-Check-Result"
        );
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("HOST"), "Host");
        assert_eq!(canonical_header_name("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(canonical_header_name("x--a"), "X--A");
        assert_eq!(canonical_header_name("-a"), "-A");
        assert_eq!(canonical_header_name("a_b"), "A_b");
        assert_eq!(canonical_header_name(":authority"), ":authority");
        assert_eq!(canonical_header_name("bad name"), "bad name");
        assert_eq!(canonical_header_name(""), "");
    }

    #[test]
    fn groups_repeated_headers_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        headers.append("accept", HeaderValue::from_static("*/*"));
        headers.append(
            "x-bytes",
            HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is a valid value"),
        );
        let out = canonical_headers(&headers);
        assert_eq!(out["X-Multi"], ["one", "two"]);
        assert_eq!(out["Accept"], ["*/*"]);
        assert_eq!(out["X-Bytes"], ["caf\u{fffd}"]);
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            ["Accept", "X-Bytes", "X-Multi"]
        );
    }

    #[test]
    fn delays_and_response_headers_on_request() {
        assert_eq!(
            delay_of("delay=1s"),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(
            delay_of("a=b&delay=250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(delay_of("delay=1h"), None);
        assert_eq!(delay_of("delay=x"), None);
        assert_eq!(
            delay_of("delay=99m"),
            Some(std::time::Duration::from_secs(60))
        );
        let set = set_headers("X-A:1, X-B: two ,bad,:x");
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].0.as_str(), "x-a");
        assert_eq!(set[1].1, "two");
    }

    #[test]
    fn json_shape() {
        let doc = Echo {
            backend: "b".into(),
            method: "GET".into(),
            path: "/p?q=1".into(),
            host: "h".into(),
            headers: [("Accept".to_owned(), vec!["*/*".to_owned()])].into(),
            tls: None,
        };
        assert_eq!(
            serde_json::to_string(&doc).expect("serialise"),
            r#"{"backend":"b","method":"GET","path":"/p?q=1","host":"h","headers":{"Accept":["*/*"]}}"#
        );
        let over_tls = Echo {
            tls: Some(EchoTls {
                server_name: "abc.example.com".into(),
            }),
            ..doc
        };
        assert!(
            serde_json::to_string(&over_tls)
                .expect("serialise")
                .ends_with(r#","tls":{"serverName":"abc.example.com"}}"#)
        );
    }
}
