//! Policy attachment beyond `targetRefs`: a rule's `ExtensionRef`, `targetSelectors`, and the
//! kgateway fields Gatehouse does not serve.

use super::tests::{DISABLE, USE_LOCAL, auth_on, cond, model, pairs};
use super::*;
use crate::testing::{store, target_ref, traffic_policy, traffic_policy_spec};

/// A TrafficPolicy `app/NAME` with `spec` (YAML flow mapping body, without braces).
fn tp(name: &str, spec: &str) -> String {
    traffic_policy_spec("app", name, spec)
}

/// A TrafficPolicy `app/NAME` targeting route `app/b`, with the further spec entries `rest`.
fn on_b(name: &str, rest: &str) -> String {
    tp(
        name,
        &format!(
            "targetRefs: [{}], {rest}",
            target_ref("HTTPRoute", "b", None)
        ),
    )
}

/// Route `app/c` on the Gateway with a protected rule naming `policy` and a public rule.
fn route_naming(policy: &str, labels: &str) -> String {
    format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: c, namespace: app, labels: {{{labels}}}}}
spec:
  parentRefs: [{{name: gw, namespace: infra, sectionName: http}}]
  hostnames: [c.example.com]
  rules:
  - name: guarded
    matches: [{{path: {{type: PathPrefix, value: /admin}}}}]
    filters: [{{type: ExtensionRef, extensionRef: {{group: gateway.kgateway.dev, kind: TrafficPolicy, name: {policy}}}}}]
    backendRefs: [{{name: web, port: 80}}]
  - name: open
    backendRefs: [{{name: web, port: 80}}]
"#
    )
}

fn auth_of(m: &Model, route: &str) -> Vec<(String, String)> {
    auth_on(m, 8080)
        .into_iter()
        .filter(|(r, _)| r.starts_with(&format!("{route}/")))
        .collect()
}

#[test]
fn extension_ref_attaches_its_policy_to_that_rule_only() {
    let m = model(&(route_naming("guard", "") + &tp("guard", &format!("extAuth: {USE_LOCAL}"))));
    assert_eq!(
        auth_of(&m, "c"),
        pairs(&[("c/guarded", "on:app/local"), ("c/open", "none")])
    );
    // The policy's status names the Gateway of the route that uses it.
    let st = &m.status.traffic_policies[&ObjKey::new("app", "guard")];
    assert_eq!(st[0].ancestor_ref.name, "gw");
    assert!(cond(&st[0].conditions, "Attached").is_true());
    let route = &m.status.http_routes[&ObjKey::new("app", "c")][0];
    assert!(
        find(&route.conditions, "PartiallyInvalid").is_none(),
        "{:?}",
        route.conditions
    );
}

#[test]
fn extension_ref_outranks_every_targeted_policy() {
    let route_off = traffic_policy("app", "off", "HTTPRoute", "c", Some("guarded"), DISABLE);
    let m = model(
        &(route_naming("guard", "") + &tp("guard", &format!("extAuth: {USE_LOCAL}")) + &route_off),
    );
    assert_eq!(
        auth_of(&m, "c")[0],
        ("c/guarded".into(), "on:app/local".into())
    );
    let off = &m.status.traffic_policies[&ObjKey::new("app", "off")][0];
    assert_eq!(cond(&off.conditions, "Attached").reason, "Overridden");
}

#[test]
fn extension_ref_to_a_missing_policy_fails_the_rule_closed() {
    let m = model(&route_naming("nope", ""));
    let got = auth_of(&m, "c");
    assert_eq!(got[0], ("c/guarded".into(), "closed:app/nope".into()));
    assert_eq!(got[1], ("c/open".into(), "none".into()));
    let route = &m.status.http_routes[&ObjKey::new("app", "c")][0];
    let partial = cond(&route.conditions, "PartiallyInvalid");
    assert!(
        partial
            .message
            .contains("TrafficPolicy app/nope, which does not exist"),
        "{}",
        partial.message
    );
}

#[test]
fn selectors_attach_to_labelled_routes_and_rules() {
    let by_label = tp(
        "sel",
        &format!(
            "targetSelectors: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, matchLabels: {{tier: admin}}}}], extAuth: {USE_LOCAL}"
        ),
    );
    let labelled = route_naming("none-needed", "tier: admin, team: x")
        .replace("filters: [{type: ExtensionRef, extensionRef: {group: gateway.kgateway.dev, kind: TrafficPolicy, name: none-needed}}]\n    ", "");
    let m = model(&(labelled.clone() + &by_label));
    assert_eq!(
        auth_of(&m, "c"),
        pairs(&[("c/guarded", "on:app/local"), ("c/open", "on:app/local")])
    );
    // Routes without the label, or in another namespace, are not selected.
    assert!(auth_of(&m, "a").iter().all(|(_, d)| d == "none"));
    let unlabelled = labelled.replace("tier: admin, ", "");
    let m = model(&(unlabelled + &by_label));
    assert!(auth_of(&m, "c").iter().all(|(_, d)| d == "none"));

    // With a sectionName, only that rule; a selector and a targetRef at one level: oldest wins.
    let rule_sel = tp(
        "rule-sel",
        &format!(
            "targetSelectors: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, matchLabels: {{team: x}}, sectionName: open}}], extAuth: {USE_LOCAL}"
        ),
    )
    .replace("namespace: app}", "namespace: app, creationTimestamp: '2026-01-01T00:00:00Z'}");
    let rule_ref = traffic_policy("app", "rule-ref", "HTTPRoute", "c", Some("open"), DISABLE)
        .replace(
            "namespace: app}",
            "namespace: app, creationTimestamp: '2026-02-01T00:00:00Z'}",
        );
    let m = model(&(labelled + &rule_sel + &rule_ref));
    assert_eq!(
        auth_of(&m, "c"),
        pairs(&[("c/guarded", "none"), ("c/open", "on:app/local")])
    );
    let loser = &m.status.traffic_policies[&ObjKey::new("app", "rule-ref")][0];
    assert_eq!(cond(&loser.conditions, "Attached").reason, "Overridden");
}

#[test]
fn gateway_selectors_attach_to_labelled_gateways() {
    let sel = traffic_policy_spec(
        "infra",
        "all",
        "targetSelectors: [{group: gateway.networking.k8s.io, kind: Gateway, matchLabels: {edge: public}, sectionName: admin}], extAuth: {disable: {}}",
    );
    let base_labelled = super::tests::base().replace(
        "metadata: {name: gw, namespace: infra}",
        "metadata: {name: gw, namespace: infra, labels: {edge: public}}",
    );
    let m = build(
        &store(&format!("{base_labelled}{sel}")),
        &ModelConfig::default(),
    );
    assert!(auth_on(&m, 9090).iter().all(|(_, d)| d == "off:infra/all"));
    assert!(auth_on(&m, 8080).iter().all(|(_, d)| d == "none"));
    let m = model(&sel);
    assert!(auth_on(&m, 9090).iter().all(|(_, d)| d == "none"));
    let _ = DISABLE;
}

#[test]
fn a_denying_field_gatehouse_lacks_fails_the_policy_closed() {
    for field in [
        "jwtAuth: {providers: {}}",
        "rbac: {policy: {}}",
        "basicAuth: {users: []}",
    ] {
        let p = on_b("jwt", field);
        let m = model(&p);
        assert_eq!(
            auth_of(&m, "b"),
            pairs(&[("b/", "closed:app/jwt")]),
            "{field}"
        );
        let st = &m.status.traffic_policies[&ObjKey::new("app", "jwt")][0];
        let accepted = cond(&st.conditions, "Accepted");
        assert_eq!(
            (accepted.status, accepted.reason.as_str()),
            ("False", "UnsupportedField")
        );
        let implemented = cond(&st.conditions, "Implemented");
        assert!(
            implemented.message.contains("answer 500"),
            "{}",
            implemented.message
        );
    }
}

#[test]
fn other_fields_gatehouse_lacks_are_reported_and_ext_auth_still_applies() {
    let with_ext_auth = on_b(
        "p",
        &format!("extAuth: {USE_LOCAL}, cors: {{allowOrigins: ['*']}}, timeouts: {{request: 5s}}"),
    );
    let m = model(&with_ext_auth);
    assert_eq!(auth_of(&m, "b"), pairs(&[("b/", "on:app/local")]));
    let st = &m.status.traffic_policies[&ObjKey::new("app", "p")][0];
    assert!(cond(&st.conditions, "Accepted").is_true());
    let implemented = cond(&st.conditions, "Implemented");
    assert_eq!(implemented.status, "False");
    assert!(
        implemented.message.contains("cors, timeouts") && implemented.message.contains("no effect"),
        "{}",
        implemented.message
    );
    // A policy with nothing Gatehouse serves still gets a status saying so.
    let only_cors = on_b("c", "cors: {}");
    let m = model(&only_cors);
    assert_eq!(auth_of(&m, "b"), pairs(&[("b/", "none")]));
    let st = &m.status.traffic_policies[&ObjKey::new("app", "c")][0];
    assert_eq!(cond(&st.conditions, "Attached").reason, "NoEffect");
    assert_eq!(cond(&st.conditions, "Implemented").status, "False");
}

/// The incremental builder agrees with a fresh build when a route's labels or ExtensionRef
/// change: selection and naming are decided per route, not when policies are indexed.
#[test]
fn incremental_builds_follow_route_labels_and_extension_refs() {
    let policies = tp(
        "sel",
        &format!(
            "targetSelectors: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, matchLabels: {{tier: admin}}}}], extAuth: {USE_LOCAL}"
        ),
    ) + &tp("guard", &format!("extAuth: {DISABLE}"));
    let steps = [
        route_naming("guard", "tier: admin"),
        route_naming("guard", "tier: web"),
        route_naming("gone", "tier: admin"),
        route_naming("guard", ""),
    ];
    let mut builder = Builder::default();
    let config = ModelConfig::default();
    for step in steps {
        let s = store(&format!("{}{policies}{step}", super::tests::base()));
        let incremental = builder.build(&s, &config);
        let fresh = build(&s, &config);
        assert_eq!(incremental.gateways, fresh.gateways, "{step}");
        assert_eq!(incremental.status, fresh.status, "{step}");
    }
}

#[test]
fn a_policy_with_no_route_under_its_target_is_attached_not_overridden() {
    // Gateway `infra/two`: listener `used` has route `app/c`, listener `idle` has none.
    let world = crate::testing::gateway(
        "infra",
        "two",
        "gatehouse",
        "listeners: [{name: used, protocol: HTTP, port: 8082, allowedRoutes: {namespaces: {from: All}}}, {name: idle, protocol: HTTP, port: 8083}]",
    ) + r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: c, namespace: app}
spec:
  parentRefs: [{name: two, namespace: infra, sectionName: used}]
  rules:
  - backendRefs: [{name: web, port: 80}]
"#;
    let policies = traffic_policy("infra", "idle", "Gateway", "two", Some("idle"), DISABLE)
        + &traffic_policy("infra", "used", "Gateway", "two", Some("used"), DISABLE)
        + &traffic_policy("app", "route", "HTTPRoute", "c", None, USE_LOCAL);
    let m = model(&(world + &policies));
    let attached = |name: &str| {
        let st = &m.status.traffic_policies
            [&ObjKey::new(if name == "route" { "app" } else { "infra" }, name)];
        let c = cond(&st[0].conditions, "Attached");
        (c.status.to_string(), c.reason.clone())
    };
    assert_eq!(
        attached("idle"),
        ("True".into(), "Attached".into()),
        "nothing to decide yet is not being overridden"
    );
    assert_eq!(
        attached("used"),
        ("False".into(), "Overridden".into()),
        "the route's own policy decides its only route"
    );
    assert_eq!(attached("route"), ("True".into(), "Attached".into()));
}
