//! Model status → the `status` each object should carry, in the API's own types.
//!
//! `lastTransitionTime` is kept from the object's current condition while its `status` is
//! unchanged, so a steady state computes exactly what the objects already hold and writes
//! nothing.

use gateway_api::apis::experimental::httproutes::{
    HttpRouteStatus, HttpRouteStatusParents, HttpRouteStatusParentsParentRef,
};
use gateway_api::apis::standard::gateways::{
    GatewayStatus, GatewayStatusAddresses, GatewayStatusListeners,
    GatewayStatusListenersSupportedKinds,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use crate::api::{ConditionsStatus, PolicyAncestorStatus, PolicyStatus};
use crate::model::{self, Status};
use crate::store::{Kind, ObjKey, Store};

use crate::api::GATEWAY_API_GROUP as GATEWAY_GROUP;

/// The status one object should have.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub kind: Kind,
    pub key: ObjKey,
    /// The whole `status` value.
    pub status: Value,
    /// The object's current `status`, as observed.
    pub current: Value,
}

fn conditions(
    new: &[model::Condition],
    old: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    new.iter()
        .map(|c| {
            let previous = old.iter().find(|o| o.type_ == c.type_);
            let since = match previous {
                Some(p) if p.status == c.status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: c.type_.clone(),
                status: c.status.into(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Every object whose status Gatehouse owns, with what it should hold.
pub fn desired(store: &Store, status: &Status, controller: &str, now: &Time) -> Vec<Desired> {
    let mut out = Vec::new();
    let mut push = |kind, key: &ObjKey, status: Value, current: Value| {
        out.push(Desired {
            kind,
            key: key.clone(),
            status,
            current,
        });
    };

    for (key, conds) in &status.gateway_classes {
        let Some(obj) = store.gateway_classes.get(key) else {
            continue;
        };
        let old = obj.status.clone().unwrap_or_default();
        let mut new = old.clone();
        new.conditions = Some(conditions(
            conds,
            old.conditions.as_deref().unwrap_or_default(),
            obj.metadata.generation,
            now,
        ));
        push(Kind::GatewayClass, key, to_value(&new), to_value(&old));
    }

    for (key, gs) in &status.gateways {
        let Some(obj) = store.gateways.get(key) else {
            continue;
        };
        let generation = obj.metadata.generation;
        let old: GatewayStatus = obj.status.clone().unwrap_or_default();
        let old_listeners = old.listeners.clone().unwrap_or_default();
        let listeners = gs
            .listeners
            .iter()
            .map(|l| {
                let prev = old_listeners
                    .iter()
                    .find(|o| o.name == l.name)
                    .map(|o| o.conditions.as_slice())
                    .unwrap_or_default();
                GatewayStatusListeners {
                    name: l.name.clone(),
                    attached_routes: l.attached_routes,
                    conditions: conditions(&l.conditions, prev, generation, now),
                    supported_kinds: Some(vec![GatewayStatusListenersSupportedKinds {
                        group: Some(GATEWAY_GROUP.into()),
                        kind: "HTTPRoute".into(),
                    }]),
                }
            })
            .collect();
        let mut new = old.clone();
        new.conditions = Some(conditions(
            &gs.conditions,
            old.conditions.as_deref().unwrap_or_default(),
            generation,
            now,
        ));
        new.listeners = Some(listeners);
        if !gs.addresses.is_empty() {
            new.addresses = Some(
                gs.addresses
                    .iter()
                    .map(|(t, v)| GatewayStatusAddresses {
                        r#type: Some(t.clone()),
                        value: v.clone(),
                    })
                    .collect(),
            );
        }
        push(Kind::Gateway, key, to_value(&new), to_value(&old));
    }

    for (key, parents) in &status.http_routes {
        let Some(obj) = store.http_routes.get(key) else {
            continue;
        };
        let old: HttpRouteStatus = obj.status.clone().unwrap_or_default();
        let mut list: Vec<HttpRouteStatusParents> = old
            .parents
            .iter()
            .filter(|p| p.controller_name != controller)
            .cloned()
            .collect();
        for p in parents.iter() {
            let parent_ref = HttpRouteStatusParentsParentRef {
                group: Some(GATEWAY_GROUP.into()),
                kind: Some("Gateway".into()),
                name: p.parent_ref.name.clone(),
                namespace: Some(p.parent_ref.namespace.clone()),
                port: p.parent_ref.port,
                section_name: p.parent_ref.section_name.clone(),
            };
            let prev = old
                .parents
                .iter()
                .find(|o| {
                    o.controller_name == controller
                        && same_parent(&o.parent_ref, &parent_ref, &key.namespace)
                })
                .map(|o| o.conditions.as_slice())
                .unwrap_or_default();
            list.push(HttpRouteStatusParents {
                conditions: conditions(&p.conditions, prev, obj.metadata.generation, now),
                controller_name: controller.into(),
                parent_ref,
            });
        }
        push(
            Kind::HttpRoute,
            key,
            to_value(&HttpRouteStatus { parents: list }),
            to_value(&old),
        );
    }

    for (key, ancestors) in &status.traffic_policies {
        let Some(obj) = store.traffic_policies.get(key) else {
            continue;
        };
        let old: PolicyStatus = obj.status.clone().unwrap_or_default();
        let mut list: Vec<PolicyAncestorStatus> = old
            .ancestors
            .iter()
            .filter(|a| a.controller_name != controller)
            .cloned()
            .collect();
        for a in ancestors.iter() {
            let ancestor_ref = HttpRouteStatusParentsParentRef {
                group: Some(GATEWAY_GROUP.into()),
                kind: Some(a.ancestor_ref.kind.clone()),
                name: a.ancestor_ref.name.clone(),
                namespace: Some(a.ancestor_ref.namespace.clone()),
                port: None,
                section_name: a.ancestor_ref.section_name.clone(),
            };
            let prev = old
                .ancestors
                .iter()
                .find(|o| o.controller_name == controller && o.ancestor_ref == ancestor_ref)
                .map(|o| o.conditions.as_slice())
                .unwrap_or_default();
            list.push(PolicyAncestorStatus {
                ancestor_ref,
                controller_name: controller.into(),
                conditions: conditions(&a.conditions, prev, obj.metadata.generation, now),
            });
        }
        push(
            Kind::TrafficPolicy,
            key,
            to_value(&PolicyStatus { ancestors: list }),
            to_value(&old),
        );
    }

    for (key, conds) in &status.gateway_extensions {
        let Some(obj) = store.gateway_extensions.get(key) else {
            continue;
        };
        let old: ConditionsStatus = obj.status.clone().unwrap_or_default();
        let new = ConditionsStatus {
            conditions: conditions(conds, &old.conditions, obj.metadata.generation, now),
        };
        push(Kind::GatewayExtension, key, to_value(&new), to_value(&old));
    }
    out
}

/// Parent refs are equal once defaults (group, kind, namespace) are filled in.
fn same_parent(
    a: &HttpRouteStatusParentsParentRef,
    b: &HttpRouteStatusParentsParentRef,
    route_ns: &str,
) -> bool {
    let norm = |p: &HttpRouteStatusParentsParentRef| {
        (
            p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.into()),
            p.kind.clone().unwrap_or_else(|| "Gateway".into()),
            p.namespace.clone().unwrap_or_else(|| route_ns.into()),
            p.name.clone(),
            p.section_name.clone(),
            p.port,
        )
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn steady_state_desires_what_objects_hold() {
        let mut store = testing::store(WORLD);
        let config = ModelConfig {
            accept_unknown_classes: false,
            ..ModelConfig::default()
        };
        let status = build(&store, &config).status;
        let first = desired(
            &store,
            &status,
            "gatehouse.dev/gatehouse",
            &now("2026-01-01T00:00:00Z"),
        );
        assert_eq!(first.len(), 3, "class, gateway, route");
        assert!(
            first.iter().all(|d| d.status != d.current),
            "everything needs a first write"
        );

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
        let status = build(&store, &config).status;
        let again = desired(
            &store,
            &status,
            "gatehouse.dev/gatehouse",
            &now("2026-01-02T00:00:00Z"),
        );
        for d in &again {
            assert_eq!(
                d.status, d.current,
                "{:?} {} would be rewritten",
                d.kind, d.key
            );
        }
        let gw = again
            .iter()
            .find(|d| d.kind == Kind::Gateway)
            .expect("gateway");
        assert_eq!(
            gw.status["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(gw.status["listeners"][0]["attachedRoutes"], 1);
    }
}
