//! The seed walkthrough against a controller: shared by the controller tests that run it with
//! full rights and with only the chart's RBAC.
#![allow(dead_code)]

use serde_json::Value;

use super::cluster::{ClusterWorld, HOST};
use super::manifests;

pub const GW: &str = "gateway.networking.k8s.io/v1";
pub const KG: &str = "gateway.kgateway.dev/v1alpha1";
const ALLOW: &[(&str, &str)] = &[("x-ext-authz", "allow")];

pub fn condition<'a>(conditions: &'a Value, type_: &str) -> Option<&'a Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == type_)
}

pub fn holds(conditions: &Value, type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c["status"] == "True")
}

/// A route whose policy names a GatewayExtension that does not exist.
fn broken() -> String {
    manifests::route("broken", "broken.example.com", manifests::TO_HTTPBIN) + BROKEN_POLICY
}

const BROKEN_POLICY: &str = "---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: missing-extension, namespace: httpbin}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: broken}]
  extAuth: {extensionRef: {name: does-not-exist}}
";

/// Every step of the walkthrough, with its status checks; the world's Envoy already serves.
pub async fn seed_walkthrough(w: &ClusterWorld) {
    // 1. No policy: 200.
    assert_eq!(w.get(HOST, &[]).expect("request").status, 200);
    // 2. Gateway policy created: 403 with the verdict.
    w.apply_step("01-gateway-policy.yaml").await;
    // Until Envoy has both the new filter chain and the new routes, the chain guard may
    // answer 403 without a verdict (fail closed, docs/security-model.md); then the auth
    // server's own 403.
    let denied = w
        .wait_for(
            "the auth server's 403 after the gateway policy",
            HOST,
            |r| r.status == 403 && r.header("x-ext-authz-check-result").is_some(),
            &[],
        )
        .await;
    assert_eq!(denied.header("x-ext-authz-check-result"), Some("denied"));
    // 3. Allowed with the header.
    let ok = w.get(HOST, ALLOW).expect("request");
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.echoed_header("x-ext-authz-check-result").as_deref(),
        Some("allowed")
    );
    // 4. Route-level disable created: 200 without auth.
    w.apply_step("02-route-disable.yaml").await;
    let open = w
        .wait_for_code("200 after the route disable", HOST, 200)
        .await;
    assert_eq!(open.echoed_header("x-ext-authz-check-result"), None);
    // Updated to point at the provider instead: auth again.
    w.apply_yaml(
        &std::fs::read_to_string(
            super::repo().join("examples/ext-auth/steps/02-route-disable.yaml"),
        )
        .expect("read")
        .replace(
            "disable: {}",
            "extensionRef: {name: basic-ext-auth, namespace: kgateway-system}",
        ),
    )
    .await;
    // (cross-namespace extensionRef without a ReferenceGrant: fails closed)
    w.wait_for_code("500 for the ungranted cross-namespace reference", HOST, 500)
        .await;
    // Deleted: the gateway policy decides again.
    w.delete_step("02-route-disable.yaml").await;
    w.wait_for_code("403 after deleting the route policy", HOST, 403)
        .await;

    // Status written back.
    let gw = w
        .wait_status(
            "Gateway Programmed",
            GW,
            "Gateway",
            "kgateway-system",
            "http",
            // Every build is published as soon as it is made: a status written between the
            // Gateway and its route arriving is right for that moment. Wait for the last.
            |s| holds(&s["conditions"], "Programmed") && s["listeners"][0]["attachedRoutes"] == 1,
        )
        .await;
    assert!(holds(&gw["conditions"], "Accepted"), "{gw:#}");
    assert_eq!(gw["listeners"][0]["attachedRoutes"], 1, "{gw:#}");
    assert_eq!(gw["conditions"][0]["observedGeneration"], 1);
    let route = w
        .wait_status(
            "HTTPRoute parents",
            GW,
            "HTTPRoute",
            "httpbin",
            "httpbin",
            |s| {
                s["parents"].as_array().is_some_and(|p| {
                    !p.is_empty()
                        && holds(&p[0]["conditions"], "Accepted")
                        && holds(&p[0]["conditions"], "ResolvedRefs")
                })
            },
        )
        .await;
    let parent = &route["parents"][0];
    assert_eq!(parent["controllerName"], "gatehouse.dev/gatehouse");
    assert!(
        holds(&parent["conditions"], "Accepted") && holds(&parent["conditions"], "ResolvedRefs"),
        "{route:#}"
    );
    let policy = w
        .wait_status(
            "policy ancestors",
            KG,
            "TrafficPolicy",
            "kgateway-system",
            "gateway-ext-auth-policy",
            // Attached from the start: before the route arrives it has nothing to decide yet.
            |s| {
                s["ancestors"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && holds(&a[0]["conditions"], "Attached"))
            },
        )
        .await;
    let ancestor = &policy["ancestors"][0];
    assert_eq!(ancestor["ancestorRef"]["name"], "http");
    assert!(
        holds(&ancestor["conditions"], "Accepted") && holds(&ancestor["conditions"], "Attached"),
        "{policy:#}"
    );
    let class = w
        .wait_status(
            "GatewayClass Accepted",
            GW,
            "GatewayClass",
            "",
            "gatehouse",
            |s| holds(&s["conditions"], "Accepted"),
        )
        .await;
    assert!(holds(&class["conditions"], "Accepted"));
    let ext = w
        .wait_status(
            "GatewayExtension ResolvedRefs",
            KG,
            "GatewayExtension",
            "kgateway-system",
            "basic-ext-auth",
            |s| holds(&s["conditions"], "ResolvedRefs"),
        )
        .await;
    assert!(holds(&ext["conditions"], "Accepted"));

    // A policy pointing at a missing GatewayExtension: not accepted, its route fails closed.
    w.apply_yaml(&broken()).await;
    let broken = w
        .wait_status(
            "missing extension reported",
            KG,
            "TrafficPolicy",
            "httpbin",
            "missing-extension",
            |s| {
                s["ancestors"][0]["conditions"]
                    .as_array()
                    .is_some_and(|_| !holds(&s["ancestors"][0]["conditions"], "Accepted"))
            },
        )
        .await;
    assert_eq!(
        condition(&broken["ancestors"][0]["conditions"], "Accepted").expect("Accepted")["reason"],
        "ExtensionNotFound"
    );
    let closed = w
        .wait_for_code("the broken route to fail closed", "broken.example.com", 500)
        .await;
    assert!(closed.body.contains("misconfigured"), "{}", closed.body);
    assert_eq!(
        w.get(HOST, &[]).expect("request").status,
        403,
        "the walkthrough route is untouched"
    );
}
