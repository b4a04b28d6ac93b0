//! Gateway API's ExternalAuth HTTPRoute filter (GEP-1494) through a real Envoy, gRPC and HTTP.

use crate::support;

use support::http;
use support::procs::free_port;
use support::standalone::World;

const HOST: &str = "filtered.example.com";

fn route(protocol_block: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: filtered, namespace: httpbin}}
spec:
  parentRefs: [{{name: http, namespace: kgateway-system}}]
  hostnames: [{HOST}]
  rules:
  - name: protected
    matches: [{{path: {{type: PathPrefix, value: /protected}}}}]
    filters:
    - type: ExternalAuth
      externalAuth:
{protocol_block}
    backendRefs: [{{name: httpbin, port: 8000}}]
  - name: open
    matches: [{{path: {{type: PathPrefix, value: /}}}}]
    backendRefs: [{{name: httpbin, port: 8000}}]
"
    )
}

/// The walkthrough's world plus an HTTP auth server (`httpbin/http-authz:8080`, provider name
/// `http-authz`) and a grant letting httpbin's routes use the gRPC one
/// (`kgateway-system/ext-authz:4444`, provider name `ext-authz`).
fn world() -> World {
    let mut w = World::start(false);
    let http_port = free_port();
    w.start_authz("http-authz", None, Some(http_port));
    w.write_and_wait(
        "authz-http.yaml",
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: http-authz, namespace: httpbin}}
spec: {{ports: [{{port: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: http-authz, namespace: httpbin, labels: {{kubernetes.io/service-name: http-authz}}}}
addressType: IPv4
ports: [{{port: {http_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: routes-use-authz, namespace: kgateway-system}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: httpbin}}]
  to: [{{group: \"\", kind: Service, name: ext-authz}}]
"
        ),
    );
    w
}

#[test]
fn external_auth_filter_protects_its_rule_over_grpc_and_http() {
    let w = world();

    // gRPC: the walkthrough's auth server, across namespaces thanks to the grant.
    w.write(
        "filtered.yaml",
        &route("        protocol: GRPC\n        backendRef: {name: ext-authz, namespace: kgateway-system, port: 4444}"),
    );
    let get = |path: &str, headers: &[(&str, &str)]| {
        http::get(w.listener_port, HOST, path, headers).expect("request")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get("/protected", &[]).status != 403 {
        assert!(
            std::time::Instant::now() < deadline,
            "gRPC ExternalAuth never denied\n{}",
            w.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let denied = get("/protected", &[]);
    assert_eq!(denied.header("x-ext-authz-check-result"), Some("denied"));
    let allowed = get("/protected", &[("x-ext-authz", "allow")]);
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.echoed_header("x-ext-authz-provider").as_deref(),
        Some("ext-authz")
    );
    assert_eq!(
        get("/elsewhere", &[]).status,
        200,
        "rules without the filter stay open"
    );

    // HTTP: path and allowed headers as the filter says.
    w.write(
        "filtered.yaml",
        &route("        protocol: HTTP\n        backendRef: {name: http-authz, port: 8080}\n        http: {path: /verify, allowedHeaders: [x-ext-authz], allowedResponseHeaders: [x-ext-authz-check-received, x-ext-authz-provider]}"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = get("/protected", &[("x-ext-authz", "allow")]);
        if r.status == 200
            && r.echoed_header("x-ext-authz-provider").as_deref() == Some("http-authz")
        {
            let received = r
                .echoed_header("x-ext-authz-check-received")
                .unwrap_or_default();
            assert!(
                received.contains("/verify/protected"),
                "the auth server saw: {received}"
            );
            assert!(
                r.echoed_header("x-ext-authz-check-result").is_none(),
                "only allowed response headers reach the backend"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "HTTP ExternalAuth never allowed: {} {:?}\n{}",
            r.status,
            r.headers,
            w.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(get("/protected", &[]).status, 403);

    // A backendRef that does not resolve fails the rule closed, not the route.
    w.write(
        "filtered.yaml",
        &route("        protocol: GRPC\n        backendRef: {name: nowhere, port: 4444}"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get("/protected", &[("x-ext-authz", "allow")]).status != 500 {
        assert!(
            std::time::Instant::now() < deadline,
            "unresolved ExternalAuth did not fail closed\n{}",
            w.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(get("/elsewhere", &[]).status, 200);
}

const BODY: &str = "{\"order\": 42, \"items\": [\"a\", \"b\"]}";

fn post(w: &World, headers: &[(&str, &str)]) -> std::io::Result<http::Response> {
    let mut all = vec![
        ("x-ext-authz", "allow"),
        ("content-type", "application/json"),
    ];
    all.extend_from_slice(headers);
    http::request(w.listener_port, "POST", HOST, "/protected", &all, BODY)
}

fn served_by(provider: &'static str) -> impl Fn(&http::Response) -> bool {
    move |r| r.status == 200 && r.echoed_header("x-ext-authz-provider").as_deref() == Some(provider)
}

/// GEP-1494: "If 0, the body will not be sent to the authorization server" (1 byte was).
#[test]
fn forward_body_max_size_zero_sends_the_auth_server_no_body() {
    let w = world();
    // What the auth server received comes back through a listed header; maxSize 5 shows the
    // report is live.
    let grpc = "        protocol: GRPC\n        backendRef: {name: ext-authz, namespace: kgateway-system, port: 4444}";
    let http_listed = "        protocol: HTTP\n        backendRef: {name: http-authz, port: 8080}\n        http: {allowedHeaders: [x-ext-authz], allowedResponseHeaders: [x-ext-authz-provider, x-ext-authz-body-bytes]}";
    for (block, provider, max_size, received) in [
        (http_listed, "http-authz", 5, "5"),
        (http_listed, "http-authz", 0, "0"),
        (grpc, "ext-authz", 5, "5"),
        (grpc, "ext-authz", 0, "0"),
    ] {
        w.write(
            "filtered.yaml",
            &route(&format!(
                "{block}\n        forwardBody: {{maxSize: {max_size}}}"
            )),
        );
        let served = served_by(provider);
        let r = w.wait_for_response(
            &format!("{provider} with maxSize {max_size}"),
            || post(&w, &[]),
            |r| served(r) && r.echoed_header("x-ext-authz-body-bytes").as_deref() == Some(received),
        );
        assert_eq!(
            r.echoed_header("content-length"),
            Some(BODY.len().to_string()),
            "the backend still gets the whole body"
        );
    }
}

/// GEP-1494: with no (or an empty) `allowedResponseHeaders`, "all headers from the
/// authorization server except Authority or Host must be copied". Before, none were (absent)
/// or the rule failed closed (empty).
#[test]
fn empty_allowed_response_headers_copy_all_but_host() {
    let w = world();
    // The HTTP service is sent only the request headers listed (GEP-1494 and Envoy agree).
    let asked = "allowedHeaders: [x-ext-authz, x-ext-authz-answer-host]";
    for http_block in [
        format!("http: {{{asked}}}"),
        format!("http: {{{asked}, allowedResponseHeaders: []}}"),
    ] {
        w.write(
            "filtered.yaml",
            &route(&format!(
                "        protocol: HTTP\n        backendRef: {{name: http-authz, port: 8080}}\n        {http_block}"
            )),
        );
        let r = w.wait_for_response(
            &format!("all response headers with {http_block}"),
            || post(&w, &[("x-ext-authz-answer-host", "evil.example.com")]),
            served_by("http-authz"),
        );
        assert_eq!(
            r.echoed_header("x-ext-authz-check-result").as_deref(),
            Some("allowed")
        );
        assert_eq!(
            r.echoed_header("x-ext-authz-additional-header-override")
                .as_deref(),
            Some("http-additional-header-override-value")
        );
        let doc: serde_json::Value = serde_json::from_str(&r.body).expect("echo JSON");
        assert_eq!(doc["host"], HOST, "the auth server's host is not copied");
        // The answer's own `content-length: 0` would cut the client's body off.
        assert_eq!(
            r.echoed_header("content-length"),
            Some(BODY.len().to_string())
        );
        assert_eq!(
            r.echoed_header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            r.echoed_header("x-ext-authz-body-bytes").as_deref(),
            Some("0"),
            "no forwardBody, no body"
        );
    }
}
