//! Route scopes through a real Envoy: a port whose hosts reach `--route-scopes-from` is
//! served one RouteConfiguration per host, selected by the Host header; a change re-applies
//! only its host's table; a wildcard host brings the port back to one table.

use crate::support;

use std::time::Duration;

use support::http;
use support::standalone::World;

const ALLOW: &[(&str, &str)] = &[("x-ext-authz", "allow")];

fn route(name: &str, hostname: &str, path: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: httpbin}}
spec:
  parentRefs: [{{name: http, namespace: kgateway-system}}]
  hostnames: [\"{hostname}\"]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    backendRefs: [{{name: httpbin, port: 8000}}]
"
    )
}

fn status(w: &World, host: &str, headers: &[(&str, &str)]) -> u16 {
    http::get(w.listener_port, host, "/headers", headers)
        .map(|r| r.status)
        .unwrap_or(0)
}

fn wait_status(w: &World, host: &str, headers: &[(&str, &str)], want: u16) {
    w.wait_for_response(
        &format!("{want} from {host}"),
        || http::get(w.listener_port, host, "/headers", headers),
        |r| r.status == want,
    );
}

/// Times Envoy loaded the RouteConfiguration of `host`'s scope.
fn reloads(w: &World, host: &str) -> u64 {
    let p = w.listener_port;
    w.envoy_stat(&format!("http.http-{p}.rds.http-{p}/{host}.config_reload"))
        .unwrap_or(0)
}

/// Whether Gatehouse serves the Gateway's routes as scopes (`/debug/xds`).
fn scoped(w: &World) -> bool {
    let xds = w
        .admin("/debug/xds?gateway=kgateway-system/http")
        .expect("debug xds");
    xds.body.contains("scopedRoutes")
}

#[test]
fn hosts_are_served_as_scopes_and_a_change_reloads_only_its_host() {
    let w = World::start_with(false, &["--route-scopes-from", "3"]);
    assert!(!scoped(&w), "one host is below the threshold");
    w.write("a.yaml", &route("a", "a.example.com", "/"));
    w.write("b.yaml", &route("b", "b.example.com", "/"));
    wait_status(&w, "b.example.com", &[], 200);
    assert!(scoped(&w), "three hosts reach the threshold");

    // Each host selects its own table; the port in Host is ignored; unknown hosts 404.
    for host in ["www.example.com", "a.example.com", "b.example.com:8080"] {
        assert_eq!(status(&w, host, &[]), 200, "{host}\n{}", w.logs());
    }
    assert_eq!(status(&w, "c.example.com", &[]), 404);
    assert_eq!(status(&w, "example.com", &[]), 404);
    // Scope keys compare bytes (documented): a Host in other letter case is not a scope.
    assert_eq!(status(&w, "A.Example.com", &[]), 404);

    // A Gateway-wide policy reaches every scope, and fails closed without the header.
    w.apply_step("01-gateway-policy.yaml");
    for host in ["www.example.com", "a.example.com", "b.example.com"] {
        wait_status(&w, host, &[], 403);
        assert_eq!(status(&w, host, ALLOW), 200, "{host}");
    }

    // Changing b re-applies b's table and leaves the others alone.
    let (a_before, b_before) = (reloads(&w, "a.example.com"), reloads(&w, "b.example.com"));
    assert!(a_before >= 1 && b_before >= 1, "scope stats missing");
    w.write("b.yaml", &route("b", "b.example.com", "/only-b"));
    wait_status(&w, "b.example.com", ALLOW, 404);
    assert_eq!(status(&w, "a.example.com", ALLOW), 200);
    w.wait_until("b's table reloaded", Duration::from_secs(10), |w| {
        reloads(w, "b.example.com") > b_before
    });
    assert_eq!(reloads(&w, "a.example.com"), a_before, "a was not touched");

    // A wildcard host cannot be a scope key: the port goes back to one table, and serves.
    w.write("wild.yaml", &route("wild", "*.wild.example.com", "/"));
    wait_status(&w, "x.wild.example.com", ALLOW, 200);
    assert!(!scoped(&w));
    assert_eq!(status(&w, "a.example.com", ALLOW), 200);
    assert_eq!(
        status(&w, "A.Example.com", ALLOW),
        200,
        "one table matches any case"
    );
    assert_eq!(status(&w, "www.example.com", &[]), 403);

    // Without it, scoped again.
    w.remove("wild.yaml");
    wait_status(&w, "x.wild.example.com", ALLOW, 404);
    assert!(scoped(&w));
    assert_eq!(status(&w, "a.example.com", ALLOW), 200);
    assert_eq!(status(&w, "a.example.com", &[]), 403);
    assert_eq!(w.metric("gatehouse_xds_nacks_total"), 0.0, "{}", w.logs());
}
