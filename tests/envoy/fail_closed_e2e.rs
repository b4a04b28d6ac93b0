//! Every invalid reference fails closed — HTTP 500 — for exactly the routes its policy decides,
//! through a real Envoy; a neighbouring route keeps working, and the status says why.

use crate::support;

use support::http;
use support::manifests::{TO_HTTPBIN, route};
use support::standalone::World;

const NEIGHBOUR: &str = "neighbour.example.com";

fn neighbour_route() -> String {
    route("neighbour", NEIGHBOUR, TO_HTTPBIN)
}

fn extension(name: &str, backend: &str) -> String {
    format!(
        "---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: GatewayExtension\nmetadata: {{name: {name}, namespace: httpbin}}\nspec: {{extAuth: {{grpcService: {{backendRef: {backend}}}}}}}\n"
    )
}

fn policy(extension_ref: &str) -> String {
    format!(
        "---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: protect, namespace: httpbin}}\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: httpbin}}]\n  extAuth: {{extensionRef: {extension_ref}}}\n"
    )
}

fn debug_status(w: &World) -> serde_json::Value {
    let body = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
    serde_json::from_str(&body).unwrap_or_default()
}

#[test]
fn invalid_references_fail_closed_for_their_routes_only() {
    let w = World::start(false);
    w.write_and_wait("neighbour.yaml", &neighbour_route());
    let cases = [
        (
            "missing extension",
            policy("{name: does-not-exist}"),
            "ExtensionNotFound",
            None,
        ),
        (
            "missing Service",
            extension("broken", "{name: no-such-service, port: 4444}") + &policy("{name: broken}"),
            "InvalidExtension",
            Some("BackendNotFound"),
        ),
        (
            "missing port",
            extension(
                "broken",
                "{name: ext-authz, namespace: kgateway-system, port: 9999}",
            ) + "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: ext-to-svc, namespace: kgateway-system}\nspec: {from: [{group: gateway.kgateway.dev, kind: GatewayExtension, namespace: httpbin}], to: [{group: \"\", kind: Service}]}\n"
                + &policy("{name: broken}"),
            "InvalidExtension",
            Some("BackendNotFound"),
        ),
        (
            "cross-namespace without grant",
            policy("{name: basic-ext-auth, namespace: kgateway-system}"),
            "RefNotPermitted",
            None,
        ),
        (
            "wrong kind",
            extension(
                "broken",
                "{group: \"\", kind: ConfigMap, name: ext-authz, port: 4444}",
            ) + &policy("{name: broken}"),
            "InvalidExtension",
            Some("InvalidKind"),
        ),
    ];
    for (name, doc, policy_reason, extension_reason) in cases {
        w.write_and_wait("case.yaml", &doc);
        let closed = w.wait_for(
            &format!("{name}: 500"),
            |r| r.status == 500,
            &[("x-ext-authz", "allow")],
        );
        assert!(
            closed
                .body
                .contains("external authorization is misconfigured"),
            "{name}: {}",
            closed.body
        );
        assert!(
            closed.echoed_header("x-ext-authz-check-result").is_none(),
            "{name}: reached the backend"
        );
        let neighbour = http::get(w.listener_port, NEIGHBOUR, "/headers", &[]).expect("request");
        assert_eq!(
            neighbour.status, 200,
            "{name}: the neighbouring route must keep working"
        );

        let status = debug_status(&w);
        let conditions = &status["status"]["trafficPolicies"]["httpbin/protect"][0]["conditions"];
        assert_eq!(conditions[0]["type"], "Accepted", "{name}: {status:#}");
        assert_eq!(conditions[0]["status"], "False", "{name}");
        assert_eq!(
            conditions[0]["reason"], policy_reason,
            "{name}: {conditions:#}"
        );
        if let Some(reason) = extension_reason {
            let ext = &status["status"]["gatewayExtensions"]["httpbin/broken"];
            let refs = ext
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "ResolvedRefs"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                (refs["status"].as_str(), refs["reason"].as_str()),
                (Some("False"), Some(reason)),
                "{name}: {ext:#}"
            );
        }
        // Without the broken policy the route is served again.
        w.remove("case.yaml");
        w.wait_for(&format!("{name}: removed"), |r| r.status == 200, &[]);
    }
}
