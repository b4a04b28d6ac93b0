//! The precedence model with real Envoy: Gateway < listener < HTTPRoute < rule, each level
//! naming one of two providers or disabling auth; every case asserts which provider answered.

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::http;
use support::manifests::{RULES_A_B, policy_grant, route};
use support::procs::{Proc, free_port, wait_for_port, workspace_bin};
use support::standalone::World;

const HOST: &str = "matrix.example.com";

fn setup(w: &mut World) {
    let port = free_port();
    let mut second = Command::new(workspace_bin("gatehouse-ext-authz"));
    second.args([
        "--grpc-addr",
        &format!("127.0.0.1:{port}"),
        "--http-addr",
        "off",
        "--name",
        "second",
    ]);
    w.procs
        .push(Proc::spawn("ext-authz-second", second, w.path()));
    wait_for_port(port, Duration::from_secs(10), "second ext-authz");
    w.write_and_wait(
        "matrix.yaml",
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: ext-authz-second, namespace: kgateway-system}}
spec: {{ports: [{{port: 4445, appProtocol: kubernetes.io/h2c}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: ext-authz-second, namespace: kgateway-system, labels: {{kubernetes.io/service-name: ext-authz-second}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {{name: second, namespace: kgateway-system}}
spec: {{extAuth: {{grpcService: {{backendRef: {{name: ext-authz-second, port: 4445}}}}}}}}
---
{}---
{}",
            policy_grant("kgateway-system", "httpbin-policies"),
            route("matrix", HOST, RULES_A_B)
        ),
    );
}

/// A policy document: `level` is `gateway`, `listener`, `route` or `rule:NAME`; `auth` is a
/// provider name (`ext`: the walkthrough's `basic-ext-auth`; `second`) or `off`.
fn policy(level: &str, auth: &str) -> String {
    let (ns, target) = match level {
        "gateway" => (
            "kgateway-system",
            "{group: gateway.networking.k8s.io, kind: Gateway, name: http}".to_string(),
        ),
        "listener" => (
            "kgateway-system",
            "{group: gateway.networking.k8s.io, kind: Gateway, name: http, sectionName: http}"
                .to_string(),
        ),
        "route" => (
            "httpbin",
            "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: matrix}".to_string(),
        ),
        rule => {
            let name = rule.strip_prefix("rule:").expect("level");
            (
                "httpbin",
                format!(
                    "{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: matrix, sectionName: {name}}}"
                ),
            )
        }
    };
    let ext_auth = match auth {
        "off" => "{disable: {}}".to_string(),
        "ext" => "{extensionRef: {name: basic-ext-auth, namespace: kgateway-system}}".to_string(),
        other => format!("{{extensionRef: {{name: {other}, namespace: kgateway-system}}}}"),
    };
    let name = format!("{}-{}", level.replace(':', "-"), auth);
    format!(
        "---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  targetRefs: [{target}]\n  extAuth: {ext_auth}\n"
    )
}

/// Which provider answered a request to `path`: its name, `open` when no auth ran.
fn answered_by(w: &World, path: &str) -> String {
    let denied = http::get(w.listener_port, HOST, path, &[]).expect("request");
    let allowed =
        http::get(w.listener_port, HOST, path, &[("x-ext-authz", "allow")]).expect("request");
    match (denied.status, allowed.status) {
        (200, 200) if allowed.echoed_header("x-ext-authz-provider").is_none() => "open".into(),
        (403, 200) => allowed
            .echoed_header("x-ext-authz-provider")
            .unwrap_or_else(|| "?".into()),
        (d, a) => format!("unexpected {d}/{a}"),
    }
}

#[test]
fn precedence_matrix_with_two_providers() {
    let mut w = World::start(false);
    setup(&mut w);
    // (case, policies as (level, auth), provider answering /a, provider answering /b)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            "gateway level",
            &[("gateway", "ext")],
            "ext-authz",
            "ext-authz",
        ),
        (
            "listener beats gateway",
            &[("gateway", "ext"), ("listener", "second")],
            "second",
            "second",
        ),
        (
            "route disable beats listener",
            &[("gateway", "ext"), ("listener", "second"), ("route", "off")],
            "open",
            "open",
        ),
        (
            "rule re-enables under a route disable",
            &[("gateway", "ext"), ("route", "off"), ("rule:a", "second")],
            "second",
            "open",
        ),
        (
            "rule beats gateway for one rule",
            &[("gateway", "ext"), ("rule:b", "second")],
            "ext-authz",
            "second",
        ),
        (
            "rule disable under a route provider",
            &[("route", "second"), ("rule:a", "off")],
            "open",
            "second",
        ),
        (
            "listener alone",
            &[("listener", "ext")],
            "ext-authz",
            "ext-authz",
        ),
        ("route alone", &[("route", "second")], "second", "second"),
    ];
    for (name, policies, want_a, want_b) in cases {
        let doc: String = policies
            .iter()
            .map(|(level, auth)| policy(level, auth))
            .collect();
        w.write_and_wait("policies.yaml", &doc);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = (answered_by(&w, "/a"), answered_by(&w, "/b"));
            if got == (want_a.to_string(), want_b.to_string()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "case {name:?}: /a, /b answered by {got:?}, want ({want_a}, {want_b})\n{}",
                w.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
