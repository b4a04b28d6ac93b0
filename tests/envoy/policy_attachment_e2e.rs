//! kgateway's other ways to attach a TrafficPolicy, through a real Envoy: a rule's
//! `ExtensionRef` filter and `targetSelectors` protect what they name; a policy with an
//! access-control field Gatehouse does not serve answers 500 instead of serving unchecked.

use crate::support;

use support::http;
use support::manifests::{http_route, policy_grant};
use support::standalone::World;

const ALLOW: &[(&str, &str)] = &[("x-ext-authz", "allow")];

/// A kgateway manifest: the policy has no targetRefs; the rule names it.
const EXTENSION_REF: &str = "apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: admin-auth, namespace: httpbin}
spec:
  extAuth: {extensionRef: {name: basic-ext-auth, namespace: kgateway-system}}
";

/// The rule that names the policy, and an open one.
const BY_REF_RULES: &str = "  - matches: [{path: {type: PathPrefix, value: /admin}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: gateway.kgateway.dev, kind: TrafficPolicy, name: admin-auth}
    backendRefs: [{name: httpbin, port: 8000}]
  - backendRefs: [{name: httpbin, port: 8000}]
";

const OPEN_RULE: &str = "  - backendRefs: [{name: httpbin, port: 8000}]\n";

const SELECTOR: &str = "apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: protect-labelled, namespace: httpbin}
spec:
  targetSelectors:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, matchLabels: {protect: 'yes'}}
  extAuth: {extensionRef: {name: basic-ext-auth, namespace: kgateway-system}}
";

fn labelled_route(labels: &str) -> String {
    http_route("selected", "selected.example.com", labels, OPEN_RULE)
}

/// A policy carrying kgateway's `jwtAuth` (which Gatehouse does not serve) on its route.
const JWT: &str = "apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: jwt-only, namespace: httpbin}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: jwt}]
  jwtAuth:
    providers:
      issuer-a: {issuer: https://issuer.example.com, jwks: {remote: {url: https://issuer.example.com/jwks}}}
";

#[test]
fn kgateway_attachments_protect_what_they_name() {
    let w = World::start(false);
    w.write(
        "grant.yaml",
        &policy_grant("kgateway-system", "policies-use-auth"),
    );
    w.write("by-ref-policy.yaml", EXTENSION_REF);
    w.write_and_wait(
        "by-ref.yaml",
        &http_route("by-ref", "ref.example.com", "", BY_REF_RULES),
    );
    let get = |host: &str, path: &str, headers: &[(&str, &str)]| {
        http::get(w.listener_port, host, path, headers).expect("request through Envoy")
    };
    w.wait_for_response(
        "the ExtensionRef rule checked",
        || http::get(w.listener_port, "ref.example.com", "/admin/x", &[]),
        |r| r.status == 403,
    );
    assert_eq!(get("ref.example.com", "/admin/x", ALLOW).status, 200);
    assert_eq!(
        get("ref.example.com", "/public", &[]).status,
        200,
        "the other rule is open"
    );

    // targetSelectors: the labelled route is checked; relabelled, it is not selected.
    w.write("selector.yaml", SELECTOR);
    w.write_and_wait("selected.yaml", &labelled_route("protect: 'yes'"));
    w.wait_for_response(
        "the selected route checked",
        || http::get(w.listener_port, "selected.example.com", "/", &[]),
        |r| r.status == 403,
    );
    assert_eq!(get("selected.example.com", "/", ALLOW).status, 200);
    w.write_and_wait("selected.yaml", &labelled_route("protect: 'no'"));
    w.wait_for_response(
        "the relabelled route no longer selected",
        || http::get(w.listener_port, "selected.example.com", "/", &[]),
        |r| r.status == 200,
    );

    // jwtAuth is not served: the route answers 500 rather than forward unchecked.
    w.write("jwt-policy.yaml", JWT);
    w.write_and_wait(
        "jwt.yaml",
        &http_route("jwt", "jwt.example.com", "", OPEN_RULE),
    );
    w.wait_for_response(
        "the jwtAuth route refused",
        || http::get(w.listener_port, "jwt.example.com", "/", &[]),
        |r| r.status == 500,
    );
    assert_eq!(
        get("jwt.example.com", "/", ALLOW).status,
        500,
        "no header lets it through"
    );
    assert_eq!(
        get("ref.example.com", "/public", &[]).status,
        200,
        "others unaffected"
    );
}

/// Standalone mode reports a field no kind has, as `kubectl apply` does, naming it. A refused
/// HTTPRoute or TrafficPolicy is not dropped — dropping it would leave its paths to a broader
/// route, or its targets unprotected — but fails closed (500); other objects keep serving.
#[test]
fn unknown_fields_are_load_errors_and_fail_closed() {
    let w = World::start(false);
    w.write(
        "grant.yaml",
        &policy_grant("kgateway-system", "policies-use-auth"),
    );
    // A public route for the whole host, and the protected /admin route in another file with a
    // typo in its rule.
    w.write(
        "site.yaml",
        &http_route("site", "typo.example.com", "", OPEN_RULE),
    );
    w.write("by-ref-policy.yaml", EXTENSION_REF);
    let admin_rules = "  - matches: [{path: {type: PathPrefix, value: /admin}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: gateway.kgateway.dev, kind: TrafficPolicy, name: admin-auth}
    timeouts: {requst: 10s}
    backendRefs: [{name: httpbin, port: 8000}]
";
    w.write(
        "admin.yaml",
        &http_route("admin", "typo.example.com", "", admin_rules),
    );
    w.write(
        "selector.yaml",
        &SELECTOR.replace("matchLabels:", "matchLabelz: {a: b}, matchLabels:"),
    );
    w.write_and_wait("selected.yaml", &labelled_route("protect: 'yes'"));
    w.wait_until(
        "the load errors reported",
        std::time::Duration::from_secs(10),
        |w| {
            let logs = w.logs();
            logs.contains("unknown field `spec.targetSelectors[0].matchLabelz`")
                && logs.contains("unknown field `spec.rules[0].timeouts.requst`")
        },
    );
    w.wait_for_response(
        "the refused route failing closed",
        || http::get(w.listener_port, "typo.example.com", "/admin/x", ALLOW),
        |r| r.status == 500,
    );
    let get = |host: &str, path: &str| {
        http::get(w.listener_port, host, path, ALLOW)
            .map(|r| r.status)
            .ok()
    };
    assert_eq!(
        get("selected.example.com", "/"),
        Some(500),
        "the refused policy's target"
    );
    assert_eq!(
        get("typo.example.com", "/public"),
        Some(200),
        "the site route serves"
    );
    assert_eq!(
        w.get(&[]).map(|r| r.status).ok(),
        Some(200),
        "the walkthrough still served"
    );
}
