//! Every ext auth option family, proven through a real Envoy: `gatehouse standalone` serves a
//! watched directory, Envoy calls the demo auth server (gRPC or HTTP), and the tests look only
//! at what the client, the backend (echo) and the auth server observe — never at the config.
//!
//! The demo server reports what it received: `x-ext-authz-check-received`
//! (`METHOD HOST/PATH PROTO; headers=…; body=N`), `x-ext-authz-context`,
//! `x-ext-authz-body-bytes`, `x-ext-authz-provider`. On allow these travel upstream (the echo
//! backend returns them), on deny to the client.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::http::{self, Response};
use support::options::{
    AUTHORITY_HEADER, BODY_FIELDS_HEADER, GRPC_SERVICE, GRPC_SERVICE_PORT, InspectingAuthz, NS,
    Received, extension, gateway_policy, grpc_service, http_service, service,
};
use support::procs::free_port;
use support::standalone::{HOST, World};

const ALLOW: &[(&str, &str)] = &[("x-ext-authz", "allow")];
/// Provider and policy, written together so that a snapshot never holds one without the other.
const AUTH: &str = "auth.yaml";
const RESULT: &str = "x-ext-authz-check-result";
const RECEIVED: &str = "x-ext-authz-check-received";
const BODY_BYTES: &str = "x-ext-authz-body-bytes";
const PROVIDER: &str = "x-ext-authz-provider";

/// Writes provider `name` (`spec.extAuth = ext_auth`) and a Gateway-level policy using it.
fn configure(w: &World, name: &str, ext_auth: Value, policy: Value) {
    let text = format!(
        "{}\n---\n{}",
        extension(name, ext_auth),
        gateway_policy(name, policy)
    );
    w.write(AUTH, &text);
}

/// A gRPC provider on the base manifests' demo auth server, plus `extra` provider fields.
fn grpc(extra: Value) -> Value {
    let mut v = json!({"grpcService": grpc_service(GRPC_SERVICE, GRPC_SERVICE_PORT, json!({}))});
    support::options::merge(&mut v, extra);
    v
}

/// A gRPC provider on Service `service:4444`, plus `extra` provider fields.
fn grpc_at(service: &str, extra: Value) -> Value {
    let mut v = json!({"grpcService": grpc_service(service, 4444, json!({}))});
    support::options::merge(&mut v, extra);
    v
}

fn post(w: &World, headers: &[(&str, &str)], body: &str) -> std::io::Result<Response> {
    http::request(w.listener_port, "POST", HOST, "/headers", headers, body)
}

/// What the auth server received, as reported to the backend (allowed requests).
fn received_upstream(r: &Response) -> Received {
    let summary = r
        .echoed_header(RECEIVED)
        .unwrap_or_else(|| panic!("no {RECEIVED} upstream: {r:?}"));
    Received::parse(&summary)
}

/// What the auth server received, as reported to the client (denied requests).
fn received_by_client(r: &Response) -> Received {
    let summary = r
        .header(RECEIVED)
        .unwrap_or_else(|| panic!("no {RECEIVED} in the client response: {r:?}"));
    Received::parse(summary)
}

/// The name of an ext_authz filter stat of the Gateway listener (its HTTP connection manager
/// is named `http-PORT`): `http.http-PORT.ext_authz.STAT_PREFIX.NAME`.
fn filter_stat(w: &World, stat_prefix: &str, name: &str) -> String {
    format!(
        "http.http-{}.ext_authz.{stat_prefix}.{name}",
        w.listener_port
    )
}

/// An Envoy stat, 0 while Envoy has not created it.
fn stat(w: &World, name: &str) -> u64 {
    w.envoy_stat(name).unwrap_or(0)
}

// --- 1. contextExtensions ---------------------------------------------------------------

#[test]
fn policy_context_extensions_reach_the_grpc_auth_server() {
    let w = World::start(false);
    configure(
        &w,
        "ctx",
        grpc(json!({})),
        json!({"contextExtensions": {"team": "payments", "env": "e2e"}}),
    );
    let allowed = w.wait_for(
        "context extensions upstream",
        |r| r.status == 200 && r.echoed_header("x-ext-authz-context").is_some(),
        ALLOW,
    );
    assert_eq!(
        allowed.echoed_header("x-ext-authz-context").as_deref(),
        Some("env=e2e;team=payments"),
        "{allowed:?}"
    );
    // Denied requests carried them too (the verdict headers go to the client).
    let denied = w.get(&[]).expect("request");
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(
        denied.header("x-ext-authz-context"),
        Some("env=e2e;team=payments")
    );

    // A changed policy changes what the auth server sees.
    configure(
        &w,
        "ctx",
        grpc(json!({})),
        json!({"contextExtensions": {"team": "search"}}),
    );
    w.wait_for(
        "the new context extensions upstream",
        |r| r.echoed_header("x-ext-authz-context").as_deref() == Some("team=search"),
        ALLOW,
    );
}

// --- 2. withRequestBody -----------------------------------------------------------------

#[test]
fn request_body_is_sent_truncated_with_partial_messages_and_rejected_without() {
    let w = World::start(false);
    let big = "x".repeat(100);

    configure(
        &w,
        "body",
        grpc(json!({"withRequestBody": {"maxRequestBytes": 16, "allowPartialMessage": true}})),
        json!({}),
    );
    // allowPartialMessage: a larger body is cut to maxRequestBytes and still checked.
    let truncated = w.wait_for_response(
        "a truncated body at the auth server",
        || post(&w, ALLOW, &big),
        |r| r.status == 200 && r.echoed_header(BODY_BYTES).is_some(),
    );
    assert_eq!(
        truncated.echoed_header(BODY_BYTES).as_deref(),
        Some("16"),
        "{truncated:?}"
    );
    assert_eq!(received_upstream(&truncated).body, 16);
    // A smaller body is sent whole.
    let small = post(&w, ALLOW, "hello").expect("request");
    assert_eq!(small.status, 200, "{small:?}");
    assert_eq!(small.echoed_header(BODY_BYTES).as_deref(), Some("5"));
    // The body takes part in the decision only as data: a denied request stays denied.
    let denied = post(&w, &[], "hello").expect("request");
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.header(BODY_BYTES), Some("5"));

    // Without allowPartialMessage a body larger than maxRequestBytes is refused with 413
    // before the auth server is asked.
    configure(
        &w,
        "body",
        grpc(json!({"withRequestBody": {"maxRequestBytes": 16}})),
        json!({}),
    );
    let too_large = w.wait_for_response(
        "413 for a body over maxRequestBytes",
        || post(&w, ALLOW, &big),
        |r| r.status == 413,
    );
    assert_eq!(too_large.header(RESULT), None, "{too_large:?}");
    let exact = post(&w, ALLOW, &"y".repeat(16)).expect("request");
    assert_eq!(exact.status, 200, "{exact:?}");
    assert_eq!(exact.echoed_header(BODY_BYTES).as_deref(), Some("16"));
}

/// Starts an [`InspectingAuthz`] behind the gRPC Service `inspecting-authz:4444`.
fn start_inspecting_authz(w: &World) -> InspectingAuthz {
    let server = InspectingAuthz::start();
    w.write_and_wait(
        "inspecting-authz-svc.yaml",
        &service(
            "inspecting-authz",
            4444,
            server.port,
            Some("kubernetes.io/h2c"),
        ),
    );
    server
}

#[test]
fn pack_as_bytes_sends_the_body_as_raw_bytes() {
    let w = World::start(false);
    // The demo server counts either field; this one says which field carried the body.
    let _server = start_inspecting_authz(&w);
    let provider = |buffer: Value| {
        json!({
            "grpcService": grpc_service("inspecting-authz", 4444, json!({})),
            "withRequestBody": buffer
        })
    };
    let fields = |r: &Response| r.echoed_header(BODY_FIELDS_HEADER);

    configure(
        &w,
        "bytes",
        provider(json!({"maxRequestBytes": 1024})),
        json!({}),
    );
    let text = w.wait_for_response(
        "the body as a string",
        || post(&w, &[], "hello"),
        |r| r.status == 200 && fields(r).is_some(),
    );
    assert_eq!(
        fields(&text).as_deref(),
        Some("body=5;raw_body=0"),
        "{text:?}"
    );

    configure(
        &w,
        "bytes",
        provider(json!({"maxRequestBytes": 1024, "packAsBytes": true})),
        json!({}),
    );
    let packed = w.wait_for_response(
        "the body as raw bytes",
        || post(&w, &[], "hello"),
        |r| r.status == 200 && fields(r).as_deref() != Some("body=5;raw_body=0"),
    );
    assert_eq!(
        fields(&packed).as_deref(),
        Some("body=0;raw_body=5"),
        "{packed:?}"
    );
    // A body that is not UTF-8 arrives intact.
    let binary: Vec<u8> = (0..64u8).map(|i| 0x80 | i).collect();
    let r = support::http::request_bytes(w.listener_port, "POST", HOST, "/headers", &[], &binary)
        .expect("request");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(fields(&r).as_deref(), Some("body=0;raw_body=64"), "{r:?}");
}

#[test]
fn policy_with_request_body_overrides_the_providers() {
    let w = World::start(false);
    let big = "z".repeat(100);

    // The provider buffers at most 8 bytes, without partial messages: 413.
    let provider = grpc(json!({"withRequestBody": {"maxRequestBytes": 8}}));
    configure(&w, "override", provider.clone(), json!({}));
    w.wait_for_response(
        "413 from the provider's limit",
        || post(&w, ALLOW, &big),
        |r| r.status == 413,
    );

    // The policy's larger limit replaces the provider's.
    configure(
        &w,
        "override",
        provider.clone(),
        json!({"withRequestBody": {"maxRequestBytes": 1000}}),
    );
    let whole = w.wait_for_response(
        "the whole body under the policy's limit",
        || post(&w, ALLOW, &big),
        |r| r.status == 200,
    );
    assert_eq!(
        whole.echoed_header(BODY_BYTES).as_deref(),
        Some("100"),
        "{whole:?}"
    );

    // And its allowPartialMessage too.
    configure(
        &w,
        "override",
        provider,
        json!({"withRequestBody": {"maxRequestBytes": 32, "allowPartialMessage": true}}),
    );
    let cut = w.wait_for_response(
        "the body cut at the policy's limit",
        || post(&w, ALLOW, &big),
        |r| r.status == 200 && r.echoed_header(BODY_BYTES).as_deref() != Some("100"),
    );
    assert_eq!(
        cut.echoed_header(BODY_BYTES).as_deref(),
        Some("32"),
        "{cut:?}"
    );

    // A provider that does not buffer at all: the policy alone turns body sending on.
    configure(
        &w,
        "override",
        grpc(json!({})),
        json!({"withRequestBody": {"maxRequestBytes": 1000}}),
    );
    let policy_only = w.wait_for_response(
        "the body sent on the policy's settings alone",
        || post(&w, ALLOW, &big),
        |r| r.status == 200 && r.echoed_header(BODY_BYTES).as_deref() == Some("100"),
    );
    assert_eq!(received_upstream(&policy_only).body, 100);
    configure(&w, "override", grpc(json!({})), json!({}));
    w.wait_for_response(
        "no body once neither buffers",
        || post(&w, ALLOW, &big),
        |r| r.status == 200 && r.echoed_header(BODY_BYTES).as_deref() == Some("0"),
    );
}

// --- 3. headersToForward ----------------------------------------------------------------

#[test]
fn headers_to_forward_limits_the_headers_the_auth_server_sees() {
    let w = World::start(false);
    let headers = &[
        ("x-ext-authz", "allow"),
        ("x-forward-me", "1"),
        ("x-keep-out", "1"),
    ];

    // Unset: every client header reaches the (gRPC) auth server.
    configure(&w, "fwd", grpc(json!({})), json!({}));
    let all = w.wait_for(
        "the check summary upstream",
        |r| r.status == 200 && r.echoed_header(RECEIVED).is_some(),
        headers,
    );
    let seen = received_upstream(&all);
    assert!(
        seen.has_header("x-forward-me") && seen.has_header("x-keep-out"),
        "{seen:?}"
    );

    configure(
        &w,
        "fwd",
        grpc(json!({"headersToForward": ["x-ext-authz", "X-Forward-Me"]})),
        json!({}),
    );
    let limited = w.wait_for(
        "x-keep-out withheld from the auth server",
        |r| {
            r.status == 200
                && r.echoed_header(RECEIVED)
                    .is_some_and(|s| !Received::parse(&s).has_header("x-keep-out"))
        },
        headers,
    );
    let seen = received_upstream(&limited);
    assert!(seen.has_header("x-forward-me"), "{seen:?}");
    assert!(seen.has_header("x-ext-authz"), "{seen:?}");
    for withheld in ["x-keep-out", "user-agent", "content-length"] {
        assert!(!seen.has_header(withheld), "{withheld} forwarded: {seen:?}");
    }
}

// --- 4. httpService ---------------------------------------------------------------------

/// Starts the demo auth server in HTTP mode (provider name `http-authz`) behind the Service
/// `http-authz:8000`.
fn start_http_authz(w: &mut World) {
    let port = free_port();
    w.start_authz("http-authz", None, Some(port));
    w.write_and_wait(
        "http-authz-svc.yaml",
        &service("http-authz", 8000, port, None),
    );
}

fn http(extra: Value) -> Value {
    json!({"httpService": http_service("http-authz", 8000, extra)})
}

#[test]
fn http_service_path_prefix_and_added_request_headers_reach_the_auth_server() {
    let mut w = World::start(false);
    start_http_authz(&mut w);
    let mut provider = http(json!({
        "pathPrefix": "/authz",
        "authorizationRequest": {"headersToAdd": {"x-added-by-gateway": "gatehouse"}},
        "authorizationResponse": {"headersToClient": [RECEIVED, PROVIDER]}
    }));
    provider["headersToForward"] = json!(["x-ext-authz"]);
    configure(&w, "http-prefix", provider.clone(), json!({}));

    let denied = w.wait_for(
        "a denial by the HTTP auth server",
        |r| r.status == 403 && r.header(PROVIDER) == Some("http-authz"),
        &[],
    );
    let seen = received_by_client(&denied);
    assert_eq!(seen.target, format!("{HOST}/authz/headers"), "{seen:?}");
    assert!(seen.has_header("x-added-by-gateway"), "{seen:?}");

    // headersToAdd values are what the auth server decides on: adding `x-ext-authz: allow`
    // allows requests that do not carry it.
    provider["httpService"]["authorizationRequest"]["headersToAdd"] =
        json!({"x-ext-authz": "allow"});
    configure(&w, "http-prefix", provider, json!({}));
    let allowed = w.wait_for("allowed by the added header", |r| r.status == 200, &[]);
    assert_eq!(
        allowed.header("x-echo-backend"),
        Some("echo"),
        "{allowed:?}"
    );
}

#[test]
fn http_service_response_headers_go_where_the_lists_say() {
    let mut w = World::start(false);
    start_http_authz(&mut w);
    let mut provider = http(json!({
        "authorizationResponse": {
            "headersToBackend": [RESULT, RECEIVED],
            "headersToClient": [RESULT],
            "headersToClientOnSuccess": [PROVIDER]
        }
    }));
    provider["headersToForward"] = json!(["x-ext-authz", "x-ext-authz-redirect"]);
    configure(&w, "http-lists", provider, json!({}));

    // Allowed: headersToBackend upstream, nothing else; headersToClientOnSuccess to the client.
    let allowed = w.wait_for(
        "an allow by the HTTP auth server",
        |r| r.status == 200 && r.echoed_header(RESULT).is_some(),
        ALLOW,
    );
    assert_eq!(allowed.echoed_header(RESULT).as_deref(), Some("allowed"));
    assert!(received_upstream(&allowed).has_header("x-ext-authz"));
    for withheld in [
        PROVIDER,
        BODY_BYTES,
        "x-ext-authz-additional-header-override",
    ] {
        assert_eq!(
            allowed.echoed_header(withheld),
            None,
            "{withheld} reached the backend: {allowed:?}"
        );
    }
    assert_eq!(allowed.header(PROVIDER), Some("http-authz"), "{allowed:?}");
    assert_eq!(allowed.header(RESULT), None, "{allowed:?}");

    // Denied: headersToClient only.
    let denied = w.get(&[]).expect("request");
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.header(RESULT), Some("denied"), "{denied:?}");
    assert_eq!(denied.header(PROVIDER), None, "{denied:?}");
    assert_eq!(denied.header(RECEIVED), None, "{denied:?}");
    assert!(denied.body.contains("denied by ext_authz"), "{denied:?}");

    // A redirect keeps its status and `location`.
    let login = "https://login.example.com/start?from=gatehouse";
    let redirect = w.get(&[("x-ext-authz-redirect", login)]).expect("request");
    assert_eq!(redirect.status, 302, "{redirect:?}");
    assert_eq!(redirect.header("location"), Some(login), "{redirect:?}");
    assert_eq!(redirect.header(RESULT), Some("denied"));
}

// --- 5. failure handling ----------------------------------------------------------------

/// A gRPC Service `name:4444` whose endpoint port has no listener.
fn dead_service(w: &World, name: &str) {
    w.write_and_wait(
        &format!("{name}-svc.yaml"),
        &service(name, 4444, free_port(), Some("kubernetes.io/h2c")),
    );
}

#[test]
fn unreachable_auth_server_answers_403_by_default_and_status_on_error_when_set() {
    let w = World::start(false);
    dead_service(&w, "dead-authz");
    let dead = |extra: Value| grpc_at("dead-authz", extra);

    configure(&w, "down", dead(json!({})), json!({}));
    let r = w.wait_for(
        "403 from an unreachable auth server",
        |r| r.status == 403,
        ALLOW,
    );
    assert_eq!(r.header(RESULT), None, "not a denial by a server: {r:?}");

    configure(&w, "down", dead(json!({"statusOnError": 503})), json!({}));
    let r = w.wait_for("statusOnError 503", |r| r.status == 503, ALLOW);
    assert_eq!(r.header(RESULT), None, "{r:?}");
    assert_eq!(r.header("x-echo-backend"), None, "{r:?}");
}

/// A TCP server answering every connection with bytes that are neither HTTP/2 nor gRPC.
fn garbage_server() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", free_port())).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            use std::io::Write;
            let _ =
                conn.write_all(b"\x00\xff\x13not a gRPC answer\r\nHTTP/1.1 200 OK\r\n\r\nallow");
        }
    });
    port
}

#[test]
fn auth_server_answering_garbage_fails_closed_unless_fail_open() {
    let w = World::start(false);
    let port = garbage_server();
    w.write_and_wait(
        "garbage-svc.yaml",
        &service("garbage-authz", 4444, port, Some("kubernetes.io/h2c")),
    );
    let garbage = |extra: Value| grpc_at("garbage-authz", extra);

    // Asking to be allowed changes nothing: no answer was understood, so the request is denied.
    configure(&w, "garbage", garbage(json!({})), json!({}));
    let r = w.wait_for(
        "403 from an auth server answering garbage",
        |r| r.status == 403,
        ALLOW,
    );
    assert_eq!(r.header(RESULT), None, "not a denial by a server: {r:?}");
    assert_eq!(r.header("x-echo-backend"), None, "{r:?}");

    configure(&w, "garbage", garbage(json!({"failOpen": true})), json!({}));
    let r = w.wait_for("200 through failOpen", |r| r.status == 200, &[]);
    assert_eq!(r.header("x-echo-backend"), Some("echo"), "{r:?}");
}

#[test]
fn fail_open_lets_requests_through_when_the_auth_server_is_down() {
    let w = World::start(false);
    dead_service(&w, "dead-authz");
    configure(
        &w,
        "open",
        grpc_at(
            "dead-authz",
            json!({"failOpen": true, "statusOnError": 503}),
        ),
        json!({}),
    );
    // The request lacks `x-ext-authz: allow`: only fail-open lets it through.
    let allowed = filter_stat(&w, "extauth_kgateway-system_open", "failure_mode_allowed");
    w.wait_until(
        "a request let through by failOpen",
        Duration::from_secs(30),
        |w| {
            let _ = w.get(&[]);
            stat(w, &allowed) > 0
        },
    );
    let r = w.get(&[]).expect("request");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-echo-backend"), Some("echo"), "{r:?}");
    assert_eq!(r.echoed_header(RESULT), None, "{r:?}");
}

#[test]
fn request_timeout_bounds_a_slow_auth_server() {
    let w = World::start(false);
    let slow = |delay: u64| {
        let delay = delay.to_string();
        http::get(
            w.listener_port,
            HOST,
            "/headers",
            &[("x-ext-authz", "allow"), ("x-ext-authz-delay-ms", &delay)],
        )
    };

    // 3 s is beyond the 2 s default but within a 6 s requestTimeout: allowed.
    let mut timeout = grpc(json!({"statusOnError": 504}));
    timeout["grpcService"]["requestTimeout"] = json!("6s");
    configure(&w, "slow", timeout, json!({}));
    let within = w.wait_for_response(
        "a 3 s check allowed under a 6 s timeout",
        || slow(3000),
        |r| r.status == 200 && r.echoed_header(RESULT).is_some(),
    );
    assert_eq!(within.echoed_header(RESULT).as_deref(), Some("allowed"));

    // Beyond a 1 s requestTimeout: statusOnError.
    let mut timeout = grpc(json!({"statusOnError": 504}));
    timeout["grpcService"]["requestTimeout"] = json!("1s");
    configure(&w, "slow", timeout, json!({}));
    let late = w.wait_for_response(
        "statusOnError for a check slower than requestTimeout",
        || slow(3000),
        |r| r.status == 504,
    );
    assert_eq!(late.header(RESULT), None, "{late:?}");
    // A fast check still passes.
    let fast = slow(0).expect("request");
    assert_eq!(fast.status, 200, "{fast:?}");
}

/// `retry.attempts` retries a failed call to an unreachable auth server (`grpc`: gRPC
/// provider, else HTTP), visible in the auth cluster's `upstream_rq_retry`; `attempts: 0`
/// does not retry.
fn retries_show_in_the_auth_clusters_stats(grpc: bool) {
    let w = World::start(false);
    dead_service(&w, "dead-authz");
    let provider = |attempts: u32| {
        let service = grpc_service(
            "dead-authz",
            4444,
            json!({"retry": {"attempts": attempts, "backoff": {"baseInterval": "10ms"}}}),
        );
        let kind = if grpc { "grpcService" } else { "httpService" };
        json!({kind: service, "statusOnError": 503})
    };
    let retries = |name: &str| format!("cluster.extauth/{NS}/{name}.upstream_rq_retry");

    configure(&w, "retrying", provider(3), json!({}));
    w.wait_for(
        "statusOnError from the dead server",
        |r| r.status == 503,
        ALLOW,
    );
    let before = stat(&w, &retries("retrying"));
    let r = w.get(ALLOW).expect("request");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        stat(&w, &retries("retrying")) - before,
        3,
        "one request must make three retries; the auth cluster's stats:\n{}",
        w.envoy_admin("/stats?filter=extauth/")
            .map(|r| r.body)
            .unwrap_or_default()
    );

    // attempts: 0 switches retries off.
    configure(&w, "no-retry", provider(0), json!({}));
    w.wait_until(
        "the no-retry provider's cluster",
        Duration::from_secs(30),
        |w| {
            w.envoy_stat(&format!("cluster.extauth/{NS}/no-retry.upstream_rq_total"))
                .is_some()
        },
    );
    w.wait_for(
        "statusOnError from the dead server",
        |r| r.status == 503,
        ALLOW,
    );
    let before = stat(&w, &retries("no-retry"));
    assert_eq!(w.get(ALLOW).expect("request").status, 503);
    assert_eq!(
        stat(&w, &retries("no-retry")),
        before,
        "attempts: 0 must not retry"
    );
}

#[test]
fn grpc_retries_of_failed_auth_calls_show_in_the_auth_clusters_stats() {
    retries_show_in_the_auth_clusters_stats(true);
}

#[test]
fn http_retries_of_failed_auth_calls_show_in_the_auth_clusters_stats() {
    retries_show_in_the_auth_clusters_stats(false);
}

#[test]
fn stat_prefix_names_the_filters_stats() {
    let w = World::start(false);
    configure(
        &w,
        "stats",
        grpc(json!({"statPrefix": "payments_authz"})),
        json!({}),
    );
    w.wait_for("a denial", |r| r.status == 403, &[]);
    let denied = filter_stat(&w, "payments_authz", "denied");
    let ok = filter_stat(&w, "payments_authz", "ok");
    let (denied_before, ok_before) = (stat(&w, &denied), stat(&w, &ok));
    assert!(
        denied_before >= 1,
        "{}",
        w.envoy_admin("/stats?filter=ext_authz")
            .map(|r| r.body)
            .unwrap_or_default()
    );
    assert_eq!(w.get(&[]).expect("request").status, 403);
    assert_eq!(w.get(ALLOW).expect("request").status, 200);
    assert_eq!(stat(&w, &denied), denied_before + 1);
    assert_eq!(stat(&w, &ok), ok_before + 1);
    // The default prefix is not used once statPrefix is set.
    let stats = w
        .envoy_admin("/stats?filter=ext_authz")
        .map(|r| r.body)
        .unwrap_or_default();
    assert!(!stats.contains("extauth_kgateway-system_stats"), "{stats}");
}

// --- 6. authority -----------------------------------------------------------------------

#[test]
fn grpc_authority_is_the_services_by_default_and_the_configured_one_when_set() {
    let w = World::start(false);
    // The demo server does not report the `:authority` of its gRPC calls; this one does.
    let _server = start_inspecting_authz(&w);
    let provider =
        |extra: Value| json!({"grpcService": grpc_service("inspecting-authz", 4444, extra)});

    configure(&w, "authority", provider(json!({})), json!({}));
    let r = w.wait_for(
        "the default authority",
        |r| r.status == 200 && r.echoed_header(AUTHORITY_HEADER).is_some(),
        &[],
    );
    assert_eq!(
        r.echoed_header(AUTHORITY_HEADER).as_deref(),
        Some(format!("inspecting-authz.{NS}.svc:4444").as_str())
    );

    configure(
        &w,
        "authority",
        provider(json!({"authority": "authz.internal.example"})),
        json!({}),
    );
    w.wait_for(
        "the configured authority",
        |r| r.echoed_header(AUTHORITY_HEADER).as_deref() == Some("authz.internal.example"),
        &[],
    );
}
