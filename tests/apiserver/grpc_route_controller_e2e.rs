//! GRPCRoute in controller mode: created through a real kube-apiserver, served by a real Envoy
//! to a real gRPC client, protected by a TrafficPolicy that targets it, with status written
//! back to the GRPCRoute and the Gateway's listener reporting both route kinds.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::ClusterWorld;
use support::grpc::{self, Code, Method};
use support::procs::{Proc, workspace_bin};

const GRPC_PORT: u16 = 3100;
const HOST: &str = "grpc.example.com";

fn objects(ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: grpc-echo, namespace: kgateway-system}}
spec: {{ports: [{{name: grpc, port: 9000, targetPort: {GRPC_PORT}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: grpc-echo-1, namespace: kgateway-system, labels: {{kubernetes.io/service-name: grpc-echo}}}}
addressType: IPv4
ports: [{{name: grpc, port: {GRPC_PORT}}}]
endpoints: [{{addresses: [{ip}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo, namespace: kgateway-system}}
spec:
  parentRefs: [{{name: http}}]
  hostnames: [{HOST}]
  rules:
  - name: guarded
    matches: [{{method: {{service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: Echo}}}}]
    backendRefs: [{{name: grpc-echo, port: 9000}}]
  - name: open
    matches: [{{method: {{method: EchoTwo}}}}]
    backendRefs: [{{name: grpc-echo, port: 9000}}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: grpc-auth, namespace: kgateway-system}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: GRPCRoute, name: echo}}]
  extAuth: {{extensionRef: {{name: basic-ext-auth}}}}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: grpc-open-rule, namespace: kgateway-system}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: GRPCRoute, name: echo, sectionName: open}}]
  extAuth: {{disable: {{}}}}
"#
    )
}

fn holds(status: &Value, path: &str, kind: &str) -> bool {
    status["parents"][0]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
        && status["parents"][0]["parentRef"]["name"] == path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_route_through_the_api_server() {
    let mut w = ClusterWorld::start().await;
    let ip = w.net.host_ip().to_string();
    let mut echo = w.net.command(workspace_bin("gatehouse-grpc-echo"));
    echo.args([
        "--addr",
        &format!("{ip}:{GRPC_PORT}"),
        "--pod",
        "grpc-echo-0",
    ]);
    w.procs.push(Proc::spawn("grpc-echo", echo, w.dir.path()));
    let r = w.start_replica("solo");
    w.start_envoy(r).await;
    w.apply_yaml(&objects(&ip)).await;

    let status = w
        .wait_status(
            "the GRPCRoute Accepted with its references resolved",
            "gateway.networking.k8s.io/v1",
            "GRPCRoute",
            "kgateway-system",
            "echo",
            |s| holds(s, "http", "Accepted") && holds(s, "http", "ResolvedRefs"),
        )
        .await;
    assert_eq!(
        status["parents"][0]["controllerName"], "gatehouse.dev/gatehouse",
        "{status:#}"
    );
    let gateway = w
        .wait_status(
            "the listener counting the GRPCRoute",
            "gateway.networking.k8s.io/v1",
            "Gateway",
            "kgateway-system",
            "http",
            |s| s["listeners"][0]["attachedRoutes"].as_i64() >= Some(2),
        )
        .await;
    let kinds: Vec<&str> = gateway["listeners"][0]["supportedKinds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["HTTPRoute", "GRPCRoute"], "{gateway:#}");

    // Denied without credentials once Envoy has the route and its policy; served with them.
    let port = w.listener_port;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = grpc::call_async(port, HOST, Method::Echo, &[]).await;
        if matches!(outcome, Err((Code::PermissionDenied, _))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the protected method was not refused: {outcome:?}\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let allowed = grpc::call_async(port, HOST, Method::Echo, &[("x-ext-authz", "allow")])
        .await
        .expect("served with credentials");
    assert_eq!(grpc::pod(&allowed), "grpc-echo-0");
    assert_eq!(
        grpc::seen_header(&allowed, "x-ext-authz-check-result"),
        Some("allowed")
    );
    let open = grpc::call_async(port, HOST, Method::EchoTwo, &[])
        .await
        .expect("the rule with auth off");
    assert_eq!(grpc::seen_header(&open, "x-ext-authz-check-result"), None);

    // The policy's status names the Gateway it reaches through the GRPCRoute.
    let policy = w
        .wait_status(
            "the policy Accepted and Attached",
            "gateway.kgateway.dev/v1alpha1",
            "TrafficPolicy",
            "kgateway-system",
            "grpc-auth",
            |s| {
                s["ancestors"][0]["conditions"]
                    .as_array()
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Attached" && c["status"] == "True")
                    })
            },
        )
        .await;
    assert_eq!(
        policy["ancestors"][0]["ancestorRef"]["name"], "http",
        "{policy:#}"
    );
}
