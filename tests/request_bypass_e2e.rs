//! No request-level bypass through a real Envoy: a path spelled another way reaches the rule
//! that protects it, never a public neighbour (docs/security-model.md).

mod support;

use support::http;
use support::standalone::World;

const HOST: &str = "tricks.example.com";

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tricks, namespace: httpbin}
spec:
  parentRefs: [{name: http, namespace: kgateway-system}]
  hostnames: [tricks.example.com]
  rules:
  - name: public
    matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: httpbin, port: 8000}]
  - name: admin
    matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: httpbin, port: 8000}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: policies-use-auth, namespace: kgateway-system}
spec:
  from: [{group: gateway.kgateway.dev, kind: TrafficPolicy, namespace: httpbin}]
  to: [{group: gateway.kgateway.dev, kind: GatewayExtension}]
---
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
    w.write_and_wait("tricks.yaml", ROUTE);
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
