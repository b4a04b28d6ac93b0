//! Issue 17's reproductions through real Envoy over xDS: one tenant's HTTPRoute with a regex
//! over Envoy's RE2 size limit and a header value `100%` used to make Envoy refuse (NACK) the
//! port's whole RouteConfiguration, freezing every other tenant's changes. Now the bad rule
//! alone is left out (or answers 500), its status names the field, `100%` reaches the backend
//! as written, Envoy refuses nothing, and other routes on the same host keep updating.

use crate::support;

use std::time::Duration;

use support::http;
use support::manifests;
use support::standalone::{HOST, World};

/// Same host and port as the walkthrough's route: the worst case, one shared virtual host.
fn tenant_b() -> String {
    manifests::route("tenant-b", HOST, TENANT_B_RULES)
}

const TENANT_B_RULES: &str = "  - matches: [{path: {type: RegularExpression, value: '/(ab|cd|ef|gh|ij|kl|mn|op){3,10}'}}]
    backendRefs: [{name: httpbin, port: 8000}]
  - matches: [{path: {type: Exact, value: /pct}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-pct, value: '100%'}], add: [{name: x-fmt, value: '%REQ(host)%'}]}
    backendRefs: [{name: httpbin, port: 8000}]
  - matches: [{path: {type: Exact, value: /host}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: Host, value: evil.example.com}]}
    backendRefs: [{name: httpbin, port: 8000}]
  - matches: [{path: {type: RegularExpression, value: '/(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p){3,10}'}}]
    backendRefs: [{name: httpbin, port: 8000}]
";

fn tenant_a() -> String {
    manifests::route("tenant-a", HOST, TENANT_A_RULES)
}

const TENANT_A_RULES: &str = "  - matches: [{path: {type: Exact, value: /a-PATH}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-tenant-a, value: VERSION}]}
    backendRefs: [{name: httpbin, port: 8000}]
";

fn get(w: &World, path: &str) -> http::Response {
    http::get(w.listener_port, HOST, path, &[]).expect("request")
}

fn wait_path(w: &World, path: &str, what: &str, check: impl Fn(&http::Response) -> bool) {
    w.wait_until(what, Duration::from_secs(30), |w| {
        http::get(w.listener_port, HOST, path, &[]).is_ok_and(|r| check(&r))
    });
}

#[test]
fn one_tenants_invalid_values_never_make_envoy_refuse_the_port() {
    let w = World::start(false);
    w.write_and_wait("tenant-a.yaml", &tenant_a().replace("PATH", "1"));
    wait_path(&w, "/a-1", "tenant A's first route", |r| r.status == 200);

    w.write_and_wait("tenant-b.yaml", &tenant_b());
    // `100%` is literal: it reaches the backend as written, and `%REQ(host)%` is not expanded.
    wait_path(&w, "/pct", "tenant B's /pct rule", |r| r.status == 200);
    let r = get(&w, "/pct");
    assert_eq!(r.echoed_header("x-pct").as_deref(), Some("100%"), "{r:?}");
    assert_eq!(
        r.echoed_header("x-fmt").as_deref(),
        Some("%REQ(host)%"),
        "{r:?}"
    );
    // The regex Envoy refuses is left out (the path falls through to the walkthrough's
    // catch-all route); the rule that sets Host answers 500; the regex Envoy accepts serves.
    assert_eq!(get(&w, "/abcdef").echoed_header("x-pct"), None);
    assert_eq!(get(&w, "/host").status, 500);
    assert_eq!(get(&w, "/abc").status, 200);

    // Tenant A keeps updating: a NACKed table would freeze this change.
    w.write_and_wait("tenant-a.yaml", &tenant_a().replace("PATH", "2"));
    wait_path(&w, "/a-2", "tenant A's change", |r| {
        r.status == 200 && r.header("x-tenant-a") == Some("VERSION")
    });
    assert_eq!(w.metric("gatehouse_xds_nacks_total"), 0.0, "{}", w.logs());

    // The status names the fields and says why.
    let status = w.admin("/debug/status").expect("status").body;
    let doc: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let b = &doc["status"]["httpRoutes"]["httpbin/tenant-b"][0]["conditions"];
    let partial = b
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PartiallyInvalid"))
        .unwrap_or_else(|| panic!("no PartiallyInvalid condition: {status}"));
    assert_eq!(partial["status"], "True");
    assert_eq!(partial["reason"], "UnsupportedValue");
    let message = partial["message"].as_str().unwrap_or_default();
    for expected in [
        "Dropped Rule 0, 2",
        "spec.rules[0].matches[0].path.value: the regular expression compiles to an RE2 program of size",
        "spec.rules[2].filters[0].requestHeaderModifier.set[0].name: \"Host\" cannot be set or removed",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
}
