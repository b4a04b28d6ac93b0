//! Gateways that left our classes: their provisioned proxies must go. Pure: reads the store.
//!
//! A deleted Gateway needs nothing from us — its objects name it as controlling owner and the
//! garbage collector removes them. A Gateway that moved to another class still exists, so its
//! objects stay unless deleted here. They are found through the provisioned Service (the store
//! watches Services): labelled as ours and controlled by a Gateway whose class now belongs to
//! another controller. A Gateway whose class is missing keeps its proxies: a class deleted by
//! mistake or not yet recreated must not take traffic down.

use super::names::{GATEWAY_NAME_LABEL, MANAGED_BY, label_value, proxy_name};
use crate::store::{ObjKey, Object, Store, StoredKind};

/// What provisioning reads, copied out of the store so that a sync can await the API server
/// without holding the store: GatewayClasses, Gateways, GatewayParameters, and the Services
/// labelled as Gatehouse's (for [`abandoned`]). Never the routes: at 10,000 routes a full copy
/// per change cost more than the change.
pub fn inputs(store: &Store) -> Store {
    fn copy<'a, K: StoredKind>(
        objects: impl Iterator<Item = &'a K> + 'a,
    ) -> impl Iterator<Item = Object> + 'a {
        objects.map(|o| o.clone().into_object())
    }
    let ours = store.services.values().filter(|svc| managed(svc));
    let mut out = Store::new();
    copy(store.gateway_classes.values())
        .chain(copy(store.gateways.values()))
        .chain(copy(store.gateway_parameters.values()))
        .chain(copy(ours))
        .for_each(|o| {
            out.apply(o);
        });
    out
}

/// True when two [`inputs`] hold the same objects but for their status (a Gateway's status
/// changes with every route attached to it; provisioning never reads it).
pub fn same_inputs(a: &Store, b: &Store) -> bool {
    fn same<K: StoredKind>(
        a: &std::collections::BTreeMap<ObjKey, K>,
        b: &std::collections::BTreeMap<ObjKey, K>,
    ) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| ka == kb && (va == vb || va.same_but_observed(vb)))
    }
    same(&a.gateway_classes, &b.gateway_classes)
        && same(&a.gateways, &b.gateways)
        && same(&a.gateway_parameters, &b.gateway_parameters)
        && same(&a.services, &b.services)
}

fn managed(svc: &k8s_openapi::api::core::v1::Service) -> bool {
    svc.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/managed-by"))
        .is_some_and(|v| v == MANAGED_BY)
}

/// Gateways whose provisioned objects should be deleted, with their uid: they exist, carry the
/// uid our objects name, and their GatewayClass exists with a controller other than
/// `controller`. Each object is deleted only if it, too, is ours for that uid
/// ([`super::ownership`]): sharing the Service's name proves nothing.
pub fn abandoned(store: &Store, controller: &str) -> Vec<(ObjKey, String)> {
    let mut out = Vec::new();
    for (key, svc) in &store.services {
        let labels = svc.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        if !managed(svc) {
            continue;
        }
        let Some(owner) = svc
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "Gateway" && o.controller == Some(true))
        else {
            continue;
        };
        let gateway = ObjKey::new(key.namespace.clone(), owner.name.clone());
        let Some(gw) = store.gateways.get(&gateway) else {
            continue;
        };
        let same = gw.metadata.uid.as_deref() == Some(owner.uid.as_str())
            && key.name == proxy_name(&gateway.name)
            && label(GATEWAY_NAME_LABEL) == Some(label_value(&gateway.name).as_str());
        let class = store
            .gateway_classes
            .get(&ObjKey::cluster(gw.spec.gateway_class_name.clone()));
        let elsewhere = class.is_some_and(|c| c.spec.controller_name != controller);
        if same && elsewhere {
            out.push((gateway, owner.uid.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::store;

    const OURS: &str = "gatehouse.dev/gatehouse";

    fn world(svc_owner: &str, svc_uid: &str, managed: &str) -> Store {
        store(&format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other}}
spec: {{controllerName: example.com/other}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: ns, uid: u-1}}
spec: {{gatewayClassName: other, listeners: [{{name: http, protocol: HTTP, port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata:
  name: gatehouse-gw
  namespace: ns
  labels: {{app.kubernetes.io/managed-by: {managed}, gateway.networking.k8s.io/gateway-name: gw}}
  ownerReferences: [{{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, name: {svc_owner}, uid: {svc_uid}, controller: true}}]
spec: {{ports: [{{port: 80}}]}}
"
        ))
    }

    #[test]
    fn only_our_objects_of_an_existing_gateway_outside_our_classes_are_abandoned() {
        let gw = ObjKey::new("ns", "gw");
        let moved = world("gw", "u-1", "gatehouse");
        assert_eq!(abandoned(&moved, OURS), [(gw, "u-1".to_string())]);
        assert!(
            abandoned(&moved, "example.com/other").is_empty(),
            "still ours"
        );
        let mut class_gone = moved.clone();
        class_gone.gateway_classes.clear();
        assert!(
            abandoned(&class_gone, OURS).is_empty(),
            "a missing class keeps the proxies"
        );
        assert!(
            abandoned(&world("gw", "u-0", "gatehouse"), OURS).is_empty(),
            "owned by an earlier Gateway of that name: the garbage collector's job"
        );
        assert!(
            abandoned(&world("gone", "u-1", "gatehouse"), OURS).is_empty(),
            "owner deleted: the garbage collector's job"
        );
        assert!(
            abandoned(&world("gw", "u-1", "someone-else"), OURS).is_empty(),
            "not ours"
        );
    }

    /// Provisioning reads a copy of what it needs: our Services, not others, and no routes;
    /// two copies that differ only in status are the same input.
    #[test]
    fn inputs_copy_what_provisioning_reads_and_ignore_status() {
        let mut world = world("gw", "u-1", "gatehouse");
        let theirs = crate::testing::store(
            &(crate::testing::service("ns", "backend", 80)
                + &crate::testing::http_route("ns", "r", "gw", &[], "  - {}\n")),
        );
        for o in theirs.services.into_values() {
            world.apply(Object::Service(Box::new(o)));
        }
        for o in theirs.http_routes.into_values() {
            world.apply(Object::HttpRoute(Box::new(o)));
        }
        let copy = inputs(&world);
        assert_eq!(
            copy.services.keys().collect::<Vec<_>>(),
            [&ObjKey::new("ns", "gatehouse-gw")]
        );
        assert!(copy.http_routes.is_empty());
        assert_eq!(abandoned(&copy, OURS), abandoned(&world, OURS));

        let gw = ObjKey::new("ns", "gw");
        let mut written = world.gateways[&gw].clone();
        written.status = Some(Default::default());
        world.apply(Object::Gateway(Box::new(written.clone())));
        assert!(
            same_inputs(&copy, &inputs(&world)),
            "a status write is no input"
        );
        written.spec.listeners[0].port = 81;
        world.apply(Object::Gateway(Box::new(written)));
        assert!(!same_inputs(&copy, &inputs(&world)), "a listener is");
    }
}
