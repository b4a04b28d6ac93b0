//! No request-level bypass through a real Envoy: a path spelled another way reaches the rule
//! that protects it, never a public neighbour (docs/security-model.md).

use crate::support;

use support::http;
use support::manifests::{self, gateway_manifest, http_listener};
use support::standalone::World;

const HOST: &str = "tricks.example.com";

/// A public rule and a protected `/admin` rule on one route, its grant and its policy.
fn route() -> String {
    format!(
        "{}---\n{}{PROTECT_ADMIN}",
        manifests::route("tricks", HOST, TRICKS_RULES),
        manifests::policy_grant("kgateway-system", "policies-use-auth")
    )
}

const TRICKS_RULES: &str = "  - name: public
    matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: httpbin, port: 8000}]
  - name: admin
    matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: httpbin, port: 8000}]
";

const PROTECT_ADMIN: &str = "---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: protect-admin, namespace: httpbin}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tricks, sectionName: admin}]
  extAuth: {extensionRef: {name: basic-ext-auth, namespace: kgateway-system}}
";

/// The path the echo backend saw (it answers like httpbin's `/headers`, plus the request line).
fn upstream_path(r: &http::Response) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    doc["path"].as_str().map(str::to_string)
}

#[test]
fn other_spellings_of_a_protected_path_are_checked() {
    let w = World::start(false);
    w.write_and_wait("tricks.yaml", &route());
    let get = |path: &str, headers: &[(&str, &str)]| {
        http::get(w.listener_port, HOST, path, headers).expect("request through Envoy")
    };
    w.wait_for_response(
        "the admin rule protected",
        || http::get(w.listener_port, HOST, "/admin/x", &[]),
        |r| r.status == 403,
    );
    assert_eq!(get("/public", &[]).status, 200, "the public rule is open");

    // Each spelling is either checked (403 without credentials, and the backend sees the
    // normalized path with them) or redirected to the normalized path.
    for path in [
        "/public/../admin/x",
        "//admin/x",
        "/%61dmin/x",
        "/./admin/x",
        "/admin/./x",
        "/public/%2e%2e/admin/x",
    ] {
        let denied = get(path, &[]);
        assert_eq!(denied.status, 403, "{path} reached {:?}", denied);
        let allowed = get(path, &[("x-ext-authz", "allow")]);
        assert_eq!(allowed.status, 200, "{path}: {allowed:?}");
        assert_eq!(
            upstream_path(&allowed).as_deref(),
            Some("/admin/x"),
            "{path}: {}",
            allowed.body
        );
    }
    for path in ["/admin%2Fx", "/admin%2fx", "/public/..%2Fadmin/x"] {
        let r = get(path, &[]);
        assert!(!(200..300).contains(&r.status), "{path} was served: {r:?}");
        if (300..400).contains(&r.status) {
            let location = r.header("location").unwrap_or_default().to_string();
            assert!(location.ends_with("/admin/x"), "{path} -> {location}");
            let followed = get("/admin/x", &[]);
            assert_eq!(followed.status, 403, "{path} redirect target is checked");
        }
    }
}

/// Gateway API listener isolation: a request is handled only by the routes of the most
/// specific listener that matches it. A route attached to a catch-all listener and to a
/// protected hostname listener of the same port must not serve the protected hostname through
/// the unprotected copy.
#[test]
fn the_most_specific_listener_owns_its_hostname() {
    let w = World::start(false);
    let port = w.listener_port;
    let gateway = gateway_manifest(&[
        http_listener("http", None, port),
        http_listener("admin", Some("admin.example.com"), port),
        http_listener("wild", Some("*.internal.example.com"), port),
    ]);
    w.write_and_wait("gateway.yaml", &gateway);
    w.write_and_wait(
        "isolation.yaml",
        "apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: protect-admin-listener, namespace: kgateway-system}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: http, sectionName: admin}]
  extAuth: {extensionRef: {name: basic-ext-auth}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: everywhere, namespace: httpbin}
spec:
  parentRefs: [{name: http, namespace: kgateway-system}]
  hostnames: [admin.example.com, open.example.com, api.internal.example.com]
  rules: [{backendRefs: [{name: httpbin, port: 8000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catch-all, namespace: httpbin}
spec:
  parentRefs: [{name: http, namespace: kgateway-system, sectionName: http}]
  rules: [{backendRefs: [{name: httpbin, port: 8000}]}]
",
    );
    let get = |host: &str, headers: &[(&str, &str)]| {
        http::get(w.listener_port, host, "/x", headers).map(|r| r.status)
    };
    w.wait_for_response(
        "the admin listener's policy in force",
        || http::get(w.listener_port, "admin.example.com", "/x", &[]),
        |r| r.status == 403,
    );
    assert_eq!(
        get("admin.example.com", &[("x-ext-authz", "allow")]).ok(),
        Some(200)
    );
    // Hosts only the catch-all listener owns are served by it, unprotected.
    assert_eq!(get("open.example.com", &[]).ok(), Some(200));
    assert_eq!(get("anything.example.org", &[]).ok(), Some(200));
    // The wildcard listener owns its subdomains: its route's host is served, any other host
    // under it gets 404 from the wildcard listener instead of the catch-all route.
    assert_eq!(get("api.internal.example.com", &[]).ok(), Some(200));
    assert_eq!(get("other.internal.example.com", &[]).ok(), Some(404));
    // The same hosts spelled with a port or a trailing dot are the same hosts.
    let with_port = |h: &str| format!("{h}:{port}");
    assert_eq!(
        get(&with_port("other.internal.example.com"), &[]).ok(),
        Some(404)
    );
    assert_eq!(get(&with_port("admin.example.com"), &[]).ok(), Some(403));
    assert_eq!(get("admin.example.com.", &[]).ok(), Some(403));
    assert_eq!(get("other.internal.example.com.", &[]).ok(), Some(404));
}

/// A protected regex rule edited into a regex Envoy would refuse is not emitted, but its
/// requests must not fall through to the public rule: a broader stand-in answers 500 there.
#[test]
fn an_invalid_protected_match_fails_closed_instead_of_falling_through() {
    let w = World::start(false);
    let route = |regex: &str| {
        route().replace(
            "matches: [{path: {type: PathPrefix, value: /admin}}]",
            &format!("matches: [{{path: {{type: RegularExpression, value: '{regex}'}}}}]"),
        )
    };
    w.write_and_wait("tricks.yaml", &route("/admin/[a-z]+"));
    w.wait_for_response(
        "the regex rule protected",
        || http::get(w.listener_port, HOST, "/admin/x", &[]),
        |r| r.status == 403,
    );
    // RE2 program size 192 > 100: Envoy would refuse the whole table.
    w.write_and_wait(
        "tricks.yaml",
        &route("/admin/(ab|cd|ef|gh|ij|kl|mn|op){3,10}"),
    );
    // The stand-in keeps the rule's auth: checked first (403), then 500 even when allowed.
    w.wait_for_response(
        "the invalid rule answering 500",
        || {
            http::get(
                w.listener_port,
                HOST,
                "/admin/abcdef",
                &[("x-ext-authz", "allow")],
            )
        },
        |r| r.status == 500,
    );
    for path in ["/admin/abcdef", "/admin/x", "/public"] {
        let r = http::get(w.listener_port, HOST, path, &[]).expect("request");
        assert!(
            !(200..300).contains(&r.status) || path == "/public",
            "{path} served: {r:?}"
        );
    }
    assert_eq!(w.metric("gatehouse_xds_nacks_total"), 0.0, "no NACK");
}

/// kgateway attaches a TrafficPolicy to a rule with an `ExtensionRef` filter. Gatehouse does
/// not serve that filter yet: the rule answers 500 (never runs without it) and the route's
/// status names the filter.
#[test]
fn an_unsupported_filter_fails_its_rule_closed() {
    let w = World::start(false);
    w.write_and_wait(
        "extref.yaml",
        &manifests::route(
            "extref",
            "extref.example.com",
            "  - matches: [{path: {type: PathPrefix, value: /admin}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: AuthFilter, name: protect}}]
    backendRefs: [{name: httpbin, port: 8000}]
  - matches: [{path: {type: PathPrefix, value: /named}}]
    filters: [{type: ExtensionRef, extensionRef: {group: gateway.kgateway.dev, kind: TrafficPolicy, name: absent}}]
    backendRefs: [{name: httpbin, port: 8000}]
  - backendRefs: [{name: httpbin, port: 8000}]
",
        ),
    );
    w.wait_for_response(
        "the rule with the ExtensionRef answering 500",
        || http::get(w.listener_port, "extref.example.com", "/admin/x", &[]),
        |r| r.status == 500,
    );
    let status_of = |path: &str| {
        http::get(w.listener_port, "extref.example.com", path, &[])
            .map(|r| r.status)
            .ok()
    };
    // A TrafficPolicy the rule names but that does not exist: never a fallback to no policy.
    assert_eq!(status_of("/named/x"), Some(500));
    assert_eq!(status_of("/other"), Some(200));
    let status = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
    assert!(
        status.contains("ExtensionRef to example.com/AuthFilter"),
        "{status}"
    );
    assert!(
        status.contains("TrafficPolicy httpbin/absent, which does not exist"),
        "{status}"
    );
}
