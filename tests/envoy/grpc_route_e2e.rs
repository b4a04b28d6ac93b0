//! GRPCRoute through a real Envoy with a real gRPC client (tonic) and the GrpcEcho backend:
//! a protected method is refused without credentials (PERMISSION_DENIED) and served with them,
//! a rule the policy switches off and a route no policy protects are served, a method no rule
//! matches is UNIMPLEMENTED, and a cross-namespace backend is UNAVAILABLE until a
//! ReferenceGrant from GRPCRoutes allows it.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::grpc::{Code, Method, Outcome, call, pod, seen_header};
use crate::support::procs::{free_port, wait_for_port, workspace_bin};
use crate::support::standalone::World;

const ALLOW: (&str, &str) = ("x-ext-authz", "allow");

/// Polls `call` until `check` holds for its outcome.
fn wait_call(
    w: &World,
    what: &str,
    host: &str,
    method: Method,
    metadata: &[(&str, &str)],
    check: impl Fn(&Outcome) -> bool,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = call(w.listener_port, host, method, metadata);
        if check(&outcome) {
            return outcome;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; last: {outcome:?}\n{}",
                w.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_grpc_echo(w: &mut World, pod: &str, namespace: &str) -> u16 {
    let port = free_port();
    let mut echo = Command::new(workspace_bin("gatehouse-grpc-echo"));
    echo.args(["--addr", &format!("127.0.0.1:{port}")]).args([
        "--pod",
        pod,
        "--namespace",
        namespace,
    ]);
    w.spawn(pod, echo);
    wait_for_port(port, Duration::from_secs(10), pod);
    port
}

/// A Service without `appProtocol` (a GRPCRoute backend is HTTP/2 regardless) on loopback.
fn service(namespace: &str, name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{ports: [{{name: grpc, port: 9000, targetPort: {port}}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: grpc, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    )
}

const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: http, namespace: kgateway-system}]
  hostnames: [grpc.example.com]
  rules:
  - name: guarded
    matches: [{method: {service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: Echo}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route-rule, value: guarded}]}
    backendRefs: [{name: echo, port: 9000}]
  - name: open
    matches: [{method: {method: EchoTwo}}]
    backendRefs: [{name: echo, port: 9000}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-auth, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: GRPCRoute, name: echo}]
  extAuth: {extensionRef: {name: basic-ext-auth, namespace: kgateway-system}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: policies-from-default, namespace: kgateway-system}
spec:
  from: [{group: gateway.kgateway.dev, kind: TrafficPolicy, namespace: default}]
  to: [{group: gateway.kgateway.dev, kind: GatewayExtension, name: basic-ext-auth}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-open-rule, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: GRPCRoute, name: echo, sectionName: open}]
  extAuth: {disable: {}}
---
# Precedence: the protected service rule outranks the unprotected method-only rule
# (service characters first), so Echo is checked even though both match it.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: order, namespace: default}
spec:
  parentRefs: [{name: http, namespace: kgateway-system}]
  hostnames: [order.example.com]
  rules:
  - name: any-echo
    matches: [{method: {method: Echo}}]
    backendRefs: [{name: echo, port: 9000}]
  - name: service
    matches: [{method: {service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho}}]
    backendRefs: [{name: echo, port: 9000}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: order-service, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: GRPCRoute, name: order, sectionName: service}]
  extAuth: {extensionRef: {name: basic-ext-auth, namespace: kgateway-system}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: public, namespace: default}
spec:
  parentRefs: [{name: http, namespace: kgateway-system}]
  hostnames: [public.example.com]
  rules:
  - backendRefs: [{name: echo, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: billing, namespace: default}
spec:
  parentRefs: [{name: http, namespace: kgateway-system}]
  hostnames: [billing.example.com]
  rules:
  - backendRefs: [{name: billing, namespace: billing, port: 9000}]
"#;

const GRANT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: grpc-routes-from-default, namespace: billing}
spec:
  from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: default}]
  to: [{group: "", kind: Service, name: billing}]
"#;

/// The conditions of a GRPCRoute's parent status in `/debug/status`, as `type=status reason`.
fn route_conditions(w: &World, route: &str) -> Vec<String> {
    let doc: Value = w
        .admin("/debug/status")
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or(Value::Null);
    doc["status"]["grpcRoutes"][route][0]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}={} {}", c["type"], c["status"], c["reason"]).replace('"', ""))
        .collect()
}

#[test]
fn grpc_routes_are_protected_by_the_same_policies() {
    let mut w = World::start(false);
    let echo_port = start_grpc_echo(&mut w, "echo-pod", "default");
    let billing_port = start_grpc_echo(&mut w, "billing-pod", "billing");
    w.write(
        "grpc-backends.yaml",
        &format!(
            "{}---\n{}",
            service("default", "echo", echo_port),
            service("billing", "billing", billing_port)
        ),
    );
    w.write_and_wait("grpc-routes.yaml", ROUTES);

    // A protected method: refused without credentials, with the code a gRPC client reads.
    let denied = wait_call(
        &w,
        "the protected method refused",
        "grpc.example.com",
        Method::Echo,
        &[],
        |o| matches!(o, Err((Code::PermissionDenied, _))),
    );
    assert!(denied.is_err());
    let allowed = call(w.listener_port, "grpc.example.com", Method::Echo, &[ALLOW])
        .expect("the protected method with credentials");
    assert_eq!(pod(&allowed), "echo-pod");
    let assertions = allowed.assertions.as_ref().expect("assertions");
    assert_eq!(
        assertions.fully_qualified_method,
        "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo"
    );
    assert_eq!(seen_header(&allowed, "x-route-rule"), Some("guarded"));
    assert_eq!(
        seen_header(&allowed, "x-ext-authz-check-result"),
        Some("allowed"),
        "the auth service decided the call: {allowed:?}"
    );

    // The rule the policy switches off, and a route no policy names: served without.
    let open = call(w.listener_port, "grpc.example.com", Method::EchoTwo, &[])
        .expect("the rule with auth switched off");
    assert_eq!(seen_header(&open, "x-ext-authz-check-result"), None);
    let public = call(w.listener_port, "public.example.com", Method::Echo, &[])
        .expect("an unprotected GRPCRoute");
    assert_eq!(pod(&public), "echo-pod");

    // Two rules match Echo on order.example.com; the protected service rule decides.
    let ordered = call(w.listener_port, "order.example.com", Method::Echo, &[]);
    assert!(
        matches!(ordered, Err((Code::PermissionDenied, _))),
        "a method-only rule took a protected service's call: {ordered:?}"
    );

    // No rule of the route matches EchoThree: Envoy's "no route" reads as UNIMPLEMENTED.
    let unmatched = call(
        w.listener_port,
        "grpc.example.com",
        Method::EchoThree,
        &[ALLOW],
    );
    assert!(
        matches!(unmatched, Err((Code::Unimplemented, _))),
        "{unmatched:?}"
    );

    // A backend in another namespace without a grant: UNAVAILABLE and RefNotPermitted.
    let refused = call(w.listener_port, "billing.example.com", Method::Echo, &[]);
    assert!(
        matches!(refused, Err((Code::Unavailable, _))),
        "{refused:?}"
    );
    let conditions = route_conditions(&w, "default/billing");
    assert!(
        conditions.contains(&"ResolvedRefs=False RefNotPermitted".to_string()),
        "{conditions:?}"
    );
    w.write("grant.yaml", GRANT);
    let granted = wait_call(
        &w,
        "the cross-namespace backend once granted",
        "billing.example.com",
        Method::Echo,
        &[],
        Result::is_ok,
    )
    .expect("granted");
    assert_eq!(pod(&granted), "billing-pod");
    let conditions = route_conditions(&w, "default/billing");
    assert!(
        conditions.contains(&"ResolvedRefs=True ResolvedRefs".to_string())
            && conditions.contains(&"Accepted=True Accepted".to_string()),
        "{conditions:?}"
    );

    // Switching the rule's policy off protects it again (the route-level policy decides).
    w.remove("grpc-routes.yaml");
    w.write_and_wait(
        "grpc-routes.yaml",
        &ROUTES.replace(
            "sectionName: open}]\n  extAuth: {disable: {}}",
            "sectionName: nope}]\n  extAuth: {disable: {}}",
        ),
    );
    let _ = wait_call(
        &w,
        "the formerly open rule protected",
        "grpc.example.com",
        Method::EchoTwo,
        &[],
        |o| matches!(o, Err((Code::PermissionDenied, _))),
    );
}
