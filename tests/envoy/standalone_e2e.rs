//! The seed walkthrough, end to end: real Envoy ← ADS ← `gatehouse standalone` ← a watched
//! directory, with the demo ext_authz server and the echo backend on loopback.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::http;
use support::standalone::{HOST, World};

const ALLOW: &[(&str, &str)] = &[("x-ext-authz", "allow")];

/// `scopes_from`: Gatehouse's `--route-scopes-from`; "1" serves the walkthrough's host as a
/// route scope (scoped RDS), "0" as one RouteConfiguration.
fn walkthrough(sotw: bool, scopes_from: &str) {
    let w = World::start_with(sotw, &["--route-scopes-from", scopes_from]);
    let dump = w
        .envoy_admin("/config_dump")
        .expect("envoy config dump")
        .body;
    let scope = format!("http-{}/{HOST}", w.listener_port);
    assert_eq!(
        dump.contains(&format!("\"name\": \"{scope}\"")),
        scopes_from == "1",
        "scope {scope} in Envoy's config dump:\n{dump}"
    );

    // 1. No policy: 200, and the auth server is not involved.
    let r = w.get(&[]).expect("request");
    assert_eq!(r.status, 200, "{}", w.logs());
    assert_eq!(r.echoed_header("x-ext-authz-check-result"), None);

    // 2. Gateway-level policy: denied, with the auth server's verdict header.
    w.apply_step("01-gateway-policy.yaml");
    let denied = w.wait_for("403 after the gateway policy", |r| r.status == 403, &[]);
    assert_eq!(denied.header("x-ext-authz-check-result"), Some("denied"));
    assert!(
        denied
            .body
            .contains("denied by ext_authz for not found header `x-ext-authz: allow`"),
        "{}",
        denied.body
    );

    // 3. Allowed with the header; the backend sees the verdict.
    let allowed = w.get(ALLOW).expect("request");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(
        allowed.echoed_header("x-ext-authz-check-result").as_deref(),
        Some("allowed")
    );

    // 4. Route-level disable: 200 without asking the auth server.
    w.apply_step("02-route-disable.yaml");
    let open = w.wait_for("200 after the route disable", |r| r.status == 200, &[]);
    assert_eq!(
        open.echoed_header("x-ext-authz-check-result"),
        None,
        "auth must not run on the disabled route"
    );

    // Removing the disable policy protects the route again.
    w.remove("02-route-disable.yaml");
    w.wait_for(
        "403 after removing the disable policy",
        |r| r.status == 403,
        &[],
    );

    let status = w.admin("/debug/status").expect("status");
    let doc: serde_json::Value = serde_json::from_str(&status.body).expect("json");
    assert_eq!(doc["ready"], true);
    assert_eq!(
        doc["status"]["trafficPolicies"]["kgateway-system/gateway-ext-auth-policy"][0]["conditions"]
            [1]["status"],
        "True"
    );
    let xds = w
        .admin("/debug/xds?gateway=kgateway-system/http")
        .expect("debug xds");
    assert!(
        xds.body
            .contains("envoy.filters.http.ext_authz/kgateway-system/basic-ext-auth"),
        "{}",
        xds.body
    );
    let explain = w
        .admin("/debug/explain?format=table")
        .expect("debug explain");
    assert!(
        explain
            .body
            .contains("by kgateway-system/gateway-ext-auth-policy"),
        "{}",
        explain.body
    );
    assert!(w.metric("gatehouse_xds_acks_total") >= 8.0);
    assert_eq!(w.metric("gatehouse_xds_connected_proxies"), 1.0);
}

#[test]
fn walkthrough_over_delta_ads() {
    walkthrough(false, "0");
}

#[test]
fn walkthrough_over_state_of_the_world_ads() {
    walkthrough(true, "0");
}

#[test]
fn walkthrough_with_route_scopes_over_delta_ads() {
    walkthrough(false, "1");
}

#[test]
fn walkthrough_with_route_scopes_over_state_of_the_world_ads() {
    walkthrough(true, "1");
}

#[test]
fn rejected_config_is_nacked_and_the_last_good_one_keeps_serving() {
    let w = World::start(false);
    w.apply_step("01-gateway-policy.yaml");
    w.wait_for("403 after the gateway policy", |r| r.status == 403, &[]);
    assert_eq!(w.metric("gatehouse_xds_nacks_total"), 0.0);
    // Values Envoy refuses never reach it from the manifests (src/model/validate*.rs); a
    // listener on a port another process holds is one only Envoy can find out about.
    let gateway = std::fs::read_to_string(w.manifests.join("gateway.yaml")).expect("read");
    let taken = format!(
        "{gateway}  - {{name: taken, protocol: HTTP, port: {}, allowedRoutes: {{namespaces: {{from: All}}}}}}\n",
        w.echo_port
    );
    w.write("gateway.yaml", &taken);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while w.metric("gatehouse_xds_nacks_total") < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no NACK counted\n{}",
            w.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        w.metric("gatehouse_xds_nacks_total{gateway=\"kgateway-system/http\",type=\"listener\"}")
            >= 1.0
    );
    // The previous configuration still serves, auth included.
    assert_eq!(w.get(&[]).expect("request").status, 403);
    assert_eq!(w.get(ALLOW).expect("request").status, 200);
    let gatehouse_log = std::fs::read_to_string(w.path().join("gatehouse.log")).unwrap_or_default();
    assert!(
        gatehouse_log.contains("NACK") || gatehouse_log.contains("nack"),
        "NACK not logged:\n{}",
        w.logs()
    );

    // Fixing the input gets the next configuration through: a route only the fixed
    // configuration has answers.
    let free = support::procs::free_port();
    w.write(
        "gateway.yaml",
        &taken.replace(&format!("port: {}", w.echo_port), &format!("port: {free}")),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http::get(free, HOST, "/headers", ALLOW)
            && r.status == 200
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", w.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn changing_a_backend_under_load_drops_no_request() {
    let mut w = World::start(false);
    let second = support::procs::free_port();
    w.start_echo("echo-b", second);
    let svc_b = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: httpbin-b, namespace: httpbin}}\nspec: {{ports: [{{name: http, port: 8000}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: httpbin-b-local, namespace: httpbin, labels: {{kubernetes.io/service-name: httpbin-b}}}}\naddressType: IPv4\nports: [{{name: http, port: {second}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    );
    // The new Service must be known before a route points at it; a route to an unknown
    // Service answers 500 by the Gateway API spec.
    w.write_and_wait("httpbin-b.yaml", &svc_b);
    let route = std::fs::read_to_string(w.manifests.join("httpbin.yaml")).expect("read");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = w.listener_port;
    let load = {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match http::get(port, HOST, "/headers", &[]) {
                    Ok(r) if (200..300).contains(&r.status) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("{} {:?} {}", r.status, r.headers, r.body)),
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
            }
        })
    };
    // Switch the route to the new Service (a new cluster) and back, twice.
    for (target, backend) in [
        ("httpbin-b", "echo-b"),
        ("httpbin", "echo"),
        ("httpbin-b", "echo-b"),
        ("httpbin", "echo"),
    ] {
        let text = route.replace(
            "backendRefs:\n    - name: httpbin\n",
            &format!("backendRefs:\n    - name: {target}\n"),
        );
        assert!(text.contains(target));
        w.write("httpbin.yaml", &text);
        w.wait_for(
            &format!("traffic on {backend}"),
            |r| r.header("x-echo-backend") == Some(backend),
            &[],
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    let failures = failures.lock().expect("lock");
    let served = ok.load(Ordering::Relaxed);
    assert!(served > 100, "only {served} requests served");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during backend changes: {:?}\n{}",
        failures.len(),
        served + failures.len(),
        &failures[..failures.len().min(5)],
        w.logs()
    );
}

#[test]
fn proxy_of_an_unknown_gateway_gets_an_empty_config_and_a_warning() {
    let mut w = World::start(false);
    let admin = support::procs::free_port();
    let out = std::process::Command::new(support::procs::gatehouse())
        .args([
            "bootstrap",
            "--gateway",
            "nowhere/nothing",
            "--xds-address",
            &format!("127.0.0.1:{}", w.xds_port),
        ])
        .args(["--admin-port", &admin.to_string()])
        .output()
        .expect("bootstrap");
    let file = w.path().join("unknown.yaml");
    std::fs::write(&file, &out.stdout).expect("write");
    let mut envoy = std::process::Command::new(support::envoy());
    envoy.arg("-c").arg(&file).args([
        "--disable-hot-restart",
        "-l",
        "warning",
        "--concurrency",
        "1",
    ]);
    w.procs.push(support::procs::Proc::spawn(
        "envoy-unknown",
        envoy,
        w.path(),
    ));

    // Envoy leaves initialisation (15 s initial fetch timeout otherwise) only once answered.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = http::get(admin, "localhost", "/server_info", &[])
            .map(|r| r.body)
            .unwrap_or_default();
        if info.contains("\"state\": \"LIVE\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unknown Gateway's proxy got no answer\n{}",
            w.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listeners = http::get(admin, "localhost", "/listeners", &[]).expect("listeners");
    assert_eq!(
        listeners.body.trim(),
        "",
        "an unknown Gateway serves nothing"
    );
    assert_eq!(w.metric("gatehouse_xds_connected_proxies"), 2.0);
    let log = std::fs::read_to_string(w.path().join("gatehouse.log")).unwrap_or_default();
    assert_eq!(
        log.matches("Gatehouse does not serve").count(),
        1,
        "one warning, no loop:\n{log}"
    );
    // The known Gateway is unaffected.
    assert_eq!(w.get(&[]).expect("request").status, 200);
}

#[test]
fn sigterm_stops_gatehouse_cleanly_and_envoy_keeps_serving() {
    let mut w = World::start(false);
    let gatehouse = w
        .procs
        .iter_mut()
        .find(|p| p.name == "gatehouse")
        .expect("gatehouse process");
    let status = gatehouse
        .terminate(Duration::from_secs(10))
        .expect("gatehouse exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    // Envoy keeps its last configuration without a control plane.
    assert_eq!(w.get(&[]).expect("request").status, 200);
}

/// `/debug/*` shows every tenant's configuration: it is served on its own (loopback) address,
/// never on the admin port probes and Prometheus reach, and credential-like header values in
/// it are redacted.
#[test]
fn debug_endpoints_are_apart_from_the_admin_port_and_redact_credentials() {
    let w = World::start(false);
    w.write_and_wait(
        "http-authz.yaml",
        "apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {name: with-secret, namespace: kgateway-system}
spec:
  type: ExtAuth
  extAuth:
    httpService:
      backendRef: {name: ext-authz, port: 4444}
      authorizationRequest:
        headersToAdd: {authorization: Basic c2VjcmV0LXZhbHVl, x-tenant: team-a}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: uses-secret, namespace: kgateway-system}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: http}]
  extAuth: {extensionRef: {name: with-secret}}
",
    );
    let on_admin = http::get(w.admin_port, "localhost", "/debug/xds", &[]).expect("admin");
    assert_eq!(on_admin.status, 404, "debug served on the admin port");
    let xds = w.admin("/debug/xds").expect("debug port");
    assert_eq!(xds.status, 200);
    assert!(
        xds.body.contains("x-tenant") && xds.body.contains("team-a"),
        "{}",
        xds.body
    );
    assert!(!xds.body.contains("c2VjcmV0LXZhbHVl"), "credential shown");
    assert!(xds.body.contains("[redacted]"));
}
