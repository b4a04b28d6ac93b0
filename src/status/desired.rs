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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::{ConditionsStatus, PolicyAncestorStatus, PolicyStatus, TrafficPolicy};
use crate::model::{self, Status};
use crate::store::{Kind, ObjKey, Store};

use crate::api::GATEWAY_API_GROUP as GATEWAY_GROUP;

/// The status one object should have, where it differs from what the object holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub kind: Kind,
    pub key: ObjKey,
    /// The whole `status` value.
    pub status: Value,
}

/// What one status computation found to write: at most `limit` statuses, so that the first
/// status of 10,000 objects is not 10,000 JSON trees alive at once (they scattered the heap the
/// store lives in: BENCHMARKS.md, controller RSS). Objects not looked at because the plan was
/// full wait in `later`.
pub struct Plan<'a> {
    limit: usize,
    /// Statuses not to write although they differ (written already, the watch has not caught
    /// up).
    skip: &'a dyn Fn(Kind, &ObjKey, &Value) -> bool,
    pub writes: Vec<Desired>,
    pub later: Vec<(Kind, ObjKey)>,
}

impl<'a> Plan<'a> {
    pub fn new(limit: usize, skip: &'a dyn Fn(Kind, &ObjKey, &Value) -> bool) -> Self {
        Self {
            limit,
            skip,
            writes: Vec::new(),
            later: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.writes.len() >= self.limit
    }
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

/// Which objects a status computation looks at, by kind; `None` means every object the model
/// has a status for.
pub type Scope = BTreeMap<Kind, BTreeSet<ObjKey>>;

/// The objects whose model status differs between `before` and `after`: added or changed
/// entries (an object the model no longer speaks of keeps what it has).
pub fn changed_between(before: &Status, after: &Status) -> Scope {
    let mut scope = Scope::new();
    let mut add = |kind: Kind, key: &ObjKey| {
        scope.entry(kind).or_default().insert(key.clone());
    };
    fn changed<'m, S: PartialEq + 'm>(
        before: &'m BTreeMap<ObjKey, S>,
        after: &'m BTreeMap<ObjKey, S>,
    ) -> impl Iterator<Item = &'m ObjKey> {
        after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k)
    }
    changed(&before.gateway_classes, &after.gateway_classes)
        .for_each(|k| add(Kind::GatewayClass, k));
    changed(&before.gateways, &after.gateways).for_each(|k| add(Kind::Gateway, k));
    changed(&before.traffic_policies, &after.traffic_policies)
        .for_each(|k| add(Kind::TrafficPolicy, k));
    changed(&before.backend_tls_policies, &after.backend_tls_policies)
        .for_each(|k| add(Kind::BackendTlsPolicy, k));
    changed(&before.gateway_extensions, &after.gateway_extensions)
        .for_each(|k| add(Kind::GatewayExtension, k));
    // A persistent map: the diff skips what the two builds share, so a one-route change
    // costs O(log n) here, not a walk of every route.
    for kind in [Kind::HttpRoute, Kind::GrpcRoute] {
        for item in before.routes_of(kind).diff(after.routes_of(kind)) {
            match item {
                imbl::ordmap::DiffItem::Add(k, _) => add(kind, k),
                imbl::ordmap::DiffItem::Update { new: (k, v), old } if *old.1 != *v => add(kind, k),
                _ => {}
            }
        }
    }
    scope
}

/// Every object whose status Gatehouse owns, within `scope`, whose status should change, with
/// what it should hold, into `out`.
pub fn desired(
    store: &Store,
    status: &Status,
    controller: &str,
    now: &Time,
    scope: Option<&Scope>,
    out: &mut Plan,
) {
    let cx = Cx { controller, now };
    // `None`: the kind is out of scope; `Some(None)`: all of it.
    let keys = |kind: Kind| match scope {
        None => Some(None),
        Some(scope) => scope.get(&kind).map(Some),
    };
    if let Some(keys) = keys(Kind::GatewayClass) {
        let model = &status.gateway_classes;
        one_kind(
            out,
            Kind::GatewayClass,
            model,
            keys,
            &store.gateway_classes,
            |o, c| {
                let old = o.status.clone().unwrap_or_default();
                let mut new = old.clone();
                new.conditions = Some(cx.conditions(c, old.conditions.as_deref(), &o.metadata));
                (to_value(&new), to_value(&old))
            },
        );
    }
    if let Some(keys) = keys(Kind::Gateway) {
        one_kind(
            out,
            Kind::Gateway,
            &status.gateways,
            keys,
            &store.gateways,
            |o, g| {
                let old = o.status.clone().unwrap_or_default();
                (to_value(&cx.gateway(&old, g, &o.metadata)), to_value(&old))
            },
        );
    }
    if let Some(keys) = keys(Kind::HttpRoute) {
        let model = &status.http_routes;
        one_kind(
            out,
            Kind::HttpRoute,
            model,
            keys,
            &store.http_routes,
            |o, p| cx.route(o.status.clone().unwrap_or_default(), p, &o.metadata),
        );
    }
    if let Some(keys) = keys(Kind::GrpcRoute) {
        one_kind(
            out,
            Kind::GrpcRoute,
            &status.grpc_routes,
            keys,
            &store.grpc_routes,
            |o, p| {
                // GRPCRoute's status has HTTPRoute's shape, field for field.
                let old: HttpRouteStatus = o
                    .status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                cx.route(old, p, &o.metadata)
            },
        );
    }
    if let Some(keys) = keys(Kind::TrafficPolicy) {
        let model = &status.traffic_policies;
        one_kind(
            out,
            Kind::TrafficPolicy,
            model,
            keys,
            &store.traffic_policies,
            |o, a| cx.policy(o, a),
        );
    }
    if let Some(keys) = keys(Kind::BackendTlsPolicy) {
        one_kind(
            out,
            Kind::BackendTlsPolicy,
            &status.backend_tls_policies,
            keys,
            &store.backend_tls_policies,
            |o, a| {
                // Gateway API's policy status has TrafficPolicy's shape, field for field.
                let old: PolicyStatus = o
                    .status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                cx.ancestors(&old, a, &o.metadata)
            },
        );
    }
    if let Some(keys) = keys(Kind::GatewayExtension) {
        let model = &status.gateway_extensions;
        one_kind(
            out,
            Kind::GatewayExtension,
            model,
            keys,
            &store.gateway_extensions,
            |o, c| {
                let old: ConditionsStatus = o.status.clone().unwrap_or_default();
                let new = ConditionsStatus {
                    conditions: cx.conditions(c, Some(&old.conditions), &o.metadata),
                };
                (to_value(&new), to_value(&old))
            },
        );
    }
}

/// A kind's model statuses, as a sorted map or as the builder's persistent map of routes.
trait StatusMap<S> {
    fn entries(&self) -> Box<dyn Iterator<Item = (&ObjKey, &S)> + '_>;
    fn lookup(&self, key: &ObjKey) -> Option<&S>;
}

impl<S> StatusMap<S> for BTreeMap<ObjKey, S> {
    fn entries(&self) -> Box<dyn Iterator<Item = (&ObjKey, &S)> + '_> {
        Box::new(self.iter())
    }
    fn lookup(&self, key: &ObjKey) -> Option<&S> {
        self.get(key)
    }
}

impl<S: Clone> StatusMap<S> for imbl::OrdMap<Arc<ObjKey>, S> {
    fn entries(&self) -> Box<dyn Iterator<Item = (&ObjKey, &S)> + '_> {
        Box::new(self.iter().map(|(k, v)| (&**k, v)))
    }
    fn lookup(&self, key: &ObjKey) -> Option<&S> {
        self.get(key)
    }
}

/// One kind's desired statuses, for `keys` or every object the model speaks of: `status_of`
/// gives (new, current) for an object and what the model says of it. Objects gone from the
/// store are skipped.
fn one_kind<T, S>(
    out: &mut Plan,
    kind: Kind,
    model: &dyn StatusMap<S>,
    keys: Option<&BTreeSet<ObjKey>>,
    objects: &BTreeMap<ObjKey, T>,
    status_of: impl Fn(&T, &S) -> (Value, Value),
) {
    let entries: Box<dyn Iterator<Item = (&ObjKey, &S)>> = match keys {
        None => model.entries(),
        Some(keys) => Box::new(keys.iter().filter_map(|k| Some((k, model.lookup(k)?)))),
    };
    for (key, said) in entries {
        if out.full() {
            out.later.push((kind, key.clone()));
            continue;
        }
        if let Some(obj) = objects.get(key) {
            let (status, current) = status_of(obj, said);
            if status != current && !(out.skip)(kind, key, &status) {
                out.writes.push(Desired {
                    kind,
                    key: key.clone(),
                    status,
                });
            }
        }
    }
}

/// What every status computation shares: who writes and when.
struct Cx<'a> {
    controller: &'a str,
    now: &'a Time,
}

impl Cx<'_> {
    fn conditions(
        &self,
        new: &[model::Condition],
        old: Option<&[Condition]>,
        meta: &ObjectMeta,
    ) -> Vec<Condition> {
        conditions(new, old.unwrap_or_default(), meta.generation, self.now)
    }

    fn gateway(
        &self,
        old: &GatewayStatus,
        g: &model::GatewayStatus,
        meta: &ObjectMeta,
    ) -> GatewayStatus {
        let old_listeners = old.listeners.clone().unwrap_or_default();
        let listeners = g
            .listeners
            .iter()
            .map(|l| {
                let prev = old_listeners
                    .iter()
                    .find(|o| o.name == l.name)
                    .map(|o| o.conditions.as_slice());
                GatewayStatusListeners {
                    name: l.name.clone(),
                    attached_routes: l.attached_routes,
                    conditions: self.conditions(&l.conditions, prev, meta),
                    supported_kinds: Some(
                        l.supported_kinds
                            .iter()
                            .map(|kind| GatewayStatusListenersSupportedKinds {
                                group: Some(GATEWAY_GROUP.into()),
                                kind: (*kind).into(),
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        let mut new = old.clone();
        new.conditions = Some(self.conditions(&g.conditions, old.conditions.as_deref(), meta));
        new.listeners = Some(listeners);
        if !g.addresses.is_empty() {
            new.addresses = Some(
                g.addresses
                    .iter()
                    .map(|(t, v)| GatewayStatusAddresses {
                        r#type: Some(t.clone()),
                        value: v.clone(),
                    })
                    .collect(),
            );
        }
        new
    }

    fn route(
        &self,
        old: HttpRouteStatus,
        parents: &[model::RouteParentStatus],
        meta: &ObjectMeta,
    ) -> (Value, Value) {
        let fresh = parents.iter().map(|p| {
            let parent_ref = HttpRouteStatusParentsParentRef {
                group: Some(GATEWAY_GROUP.into()),
                kind: Some("Gateway".into()),
                name: p.parent_ref.name.clone(),
                namespace: Some(p.parent_ref.namespace.clone()),
                port: p.parent_ref.port,
                section_name: p.parent_ref.section_name.clone(),
            };
            (parent_ref, p.conditions.as_slice())
        });
        let parents = self.merge(&old.parents, fresh, meta);
        (to_value(&HttpRouteStatus { parents }), to_value(&old))
    }

    fn policy(
        &self,
        o: &TrafficPolicy,
        ancestors: &[model::PolicyAncestorStatus],
    ) -> (Value, Value) {
        let old: PolicyStatus = o.status.clone().unwrap_or_default();
        self.ancestors(&old, ancestors, &o.metadata)
    }

    /// A policy's `status.ancestors`: (new, old).
    fn ancestors(
        &self,
        old: &PolicyStatus,
        ancestors: &[model::PolicyAncestorStatus],
        meta: &ObjectMeta,
    ) -> (Value, Value) {
        let fresh = ancestors.iter().map(|a| {
            let ancestor_ref = HttpRouteStatusParentsParentRef {
                group: Some(GATEWAY_GROUP.into()),
                kind: Some(a.ancestor_ref.kind.clone()),
                name: a.ancestor_ref.name.clone(),
                namespace: Some(a.ancestor_ref.namespace.clone()),
                port: None,
                section_name: a.ancestor_ref.section_name.clone(),
            };
            (ancestor_ref, a.conditions.as_slice())
        });
        let ancestors = self.merge(&old.ancestors, fresh, meta);
        (to_value(&PolicyStatus { ancestors }), to_value(old))
    }

    /// Route parents and policy ancestors alike: other controllers' entries stay as they are;
    /// ours are replaced by `fresh`, keeping each condition's transition time.
    fn merge<'s, E: ParentEntry>(
        &self,
        old: &[E],
        fresh: impl Iterator<Item = (HttpRouteStatusParentsParentRef, &'s [model::Condition])>,
        meta: &ObjectMeta,
    ) -> Vec<E> {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let mut list: Vec<E> = old
            .iter()
            .filter(|e| e.controller() != self.controller)
            .cloned()
            .collect();
        for (parent_ref, conds) in fresh {
            let prev = old
                .iter()
                .find(|o| {
                    o.controller() == self.controller
                        && same_parent(o.parent_ref(), &parent_ref, namespace)
                })
                .map(|o| o.conditions());
            let conditions = self.conditions(conds, prev, meta);
            list.push(E::new(parent_ref, self.controller, conditions));
        }
        list
    }
}

/// An HTTPRoute parent or a policy ancestor: a parent reference with one controller's
/// conditions.
trait ParentEntry: Clone {
    fn controller(&self) -> &str;
    fn parent_ref(&self) -> &HttpRouteStatusParentsParentRef;
    fn conditions(&self) -> &[Condition];
    fn new(
        parent_ref: HttpRouteStatusParentsParentRef,
        controller: &str,
        conditions: Vec<Condition>,
    ) -> Self;
}

impl ParentEntry for HttpRouteStatusParents {
    fn controller(&self) -> &str {
        &self.controller_name
    }
    fn parent_ref(&self) -> &HttpRouteStatusParentsParentRef {
        &self.parent_ref
    }
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn new(
        parent_ref: HttpRouteStatusParentsParentRef,
        controller: &str,
        conditions: Vec<Condition>,
    ) -> Self {
        HttpRouteStatusParents {
            conditions,
            controller_name: controller.into(),
            parent_ref,
        }
    }
}

impl ParentEntry for PolicyAncestorStatus {
    fn controller(&self) -> &str {
        &self.controller_name
    }
    fn parent_ref(&self) -> &HttpRouteStatusParentsParentRef {
        &self.ancestor_ref
    }
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn new(
        ancestor_ref: HttpRouteStatusParentsParentRef,
        controller: &str,
        conditions: Vec<Condition>,
    ) -> Self {
        PolicyAncestorStatus {
            ancestor_ref,
            controller_name: controller.into(),
            conditions,
        }
    }
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
#[path = "desired_tests.rs"]
mod tests;
