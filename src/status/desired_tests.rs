//! Tests of [`super`]: desired statuses, plans and their limits.
use super::*;
use crate::model::{ModelConfig, build};
use crate::testing;

const WORLD: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gatehouse, generation: 1}
spec: {controllerName: gatehouse.dev/gatehouse}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 3}
spec: {gatewayClassName: gatehouse, listeners: [{name: http, protocol: HTTP, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra, generation: 2}
spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: missing, port: 80}]}]}
status:
  parents:
  - parentRef: {name: gw, namespace: infra}
    controllerName: example.com/other
    conditions: []
";

fn now(s: &str) -> Time {
    Time(s.parse().expect("timestamp"))
}

/// Skips nothing.
const NOTHING: &dyn Fn(Kind, &ObjKey, &Value) -> bool = &|_, _, _| false;

/// A plan with room for `limit` of what `store` should hold on `day`.
fn plan<'a>(
    store: &Store,
    status: &Status,
    day: &str,
    limit: usize,
    skip: &'a dyn Fn(Kind, &ObjKey, &Value) -> bool,
) -> Plan<'a> {
    let mut plan = Plan::new(limit, skip);
    let now = now(day);
    desired(
        store,
        status,
        "gatehouse.dev/gatehouse",
        &now,
        None,
        &mut plan,
    );
    plan
}

#[test]
fn steady_state_desires_what_objects_hold() {
    let mut store = testing::store(WORLD);
    let config = ModelConfig {
        accept_unknown_classes: false,
        ..ModelConfig::default()
    };
    let status = build(&store, &config).status;
    let first = plan(&store, &status, "2026-01-01T00:00:00Z", usize::MAX, NOTHING);
    let first = first.writes;
    assert_eq!(
        first.len(),
        3,
        "class, gateway, route: each needs a first write"
    );
    let gw = first
        .iter()
        .find(|d| d.kind == Kind::Gateway)
        .expect("gateway");
    assert_eq!(gw.status["listeners"][0]["attachedRoutes"], 1);

    let route = first
        .iter()
        .find(|d| d.kind == Kind::HttpRoute)
        .expect("route");
    let parents = route.status["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 2, "the other controller's entry is kept");
    let ours = &parents[1];
    assert_eq!(ours["conditions"][1]["reason"], "BackendNotFound");
    assert_eq!(ours["conditions"][1]["observedGeneration"], 2);

    // Apply what was written, then recompute later: nothing to write.
    for d in &first {
        match d.kind {
            Kind::GatewayClass => store
                .gateway_classes
                .values_mut()
                .for_each(|o| o.status = serde_json::from_value(d.status.clone()).ok()),
            Kind::Gateway => store
                .gateways
                .values_mut()
                .for_each(|o| o.status = serde_json::from_value(d.status.clone()).ok()),
            Kind::HttpRoute => store
                .http_routes
                .values_mut()
                .for_each(|o| o.status = serde_json::from_value(d.status.clone()).ok()),
            _ => {}
        }
    }
    // A day later: each condition keeps its lastTransitionTime, so nothing differs.
    let status = build(&store, &config).status;
    let again = plan(&store, &status, "2026-01-02T00:00:00Z", usize::MAX, NOTHING);
    assert_eq!(again.writes, vec![], "nothing would be rewritten");
    assert!(again.later.is_empty());

    // A plan with room for one looks at one object and leaves the others for later.
    let mut store = testing::store(WORLD);
    let status = build(&store, &config).status;
    let one = plan(&store, &status, "2026-01-01T00:00:00Z", 1, NOTHING);
    assert_eq!(one.writes.len(), 1);
    assert_eq!(one.later.len(), 2, "{:?}", one.later);
    // What is skipped (written, not yet seen) neither counts nor waits.
    store.gateway_classes.clear();
    let skip_routes = |kind: Kind, _: &ObjKey, _: &Value| kind == Kind::HttpRoute;
    let skipping = plan(
        &store,
        &status,
        "2026-01-01T00:00:00Z",
        usize::MAX,
        &skip_routes,
    );
    let kinds: Vec<Kind> = skipping.writes.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, vec![Kind::Gateway]);
}
