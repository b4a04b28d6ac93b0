//! The typed object store every source fills and the model reads.
//!
//! Sources (`source::files`, `source::kube`) call [`Store::apply`] and [`Store::delete`]; nothing
//! downstream knows where an object came from. Maps are ordered so that everything computed from
//! the store is deterministic.

mod endpoints;
mod object;

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::standard::{
    gatewayclasses::GatewayClass, gateways::Gateway, referencegrants::ReferenceGrant,
};
use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    discovery::v1::EndpointSlice,
};

use crate::api::{GatewayExtension, GatewayParameters, TrafficPolicy};

pub use object::{Kind, Object, ObjectRef};

/// Namespace and name of a namespaced object (namespace is empty for cluster-scoped ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// Key of a namespaced object.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self {
            namespace: String::new(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Every object Gatehouse reads, by kind and key.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub gateway_classes: BTreeMap<ObjKey, GatewayClass>,
    pub gateways: BTreeMap<ObjKey, Gateway>,
    pub http_routes: BTreeMap<ObjKey, HttpRoute>,
    pub reference_grants: BTreeMap<ObjKey, ReferenceGrant>,
    pub gateway_extensions: BTreeMap<ObjKey, GatewayExtension>,
    pub traffic_policies: BTreeMap<ObjKey, TrafficPolicy>,
    pub gateway_parameters: BTreeMap<ObjKey, GatewayParameters>,
    pub services: BTreeMap<ObjKey, Service>,
    /// Change through [`Store::apply`] and [`Store::delete`] only: `slices_by_service`
    /// follows it.
    pub endpoint_slices: BTreeMap<ObjKey, EndpointSlice>,
    pub namespaces: BTreeMap<ObjKey, Namespace>,
    /// EndpointSlices by the Service they label (`kubernetes.io/service-name`): resolving a
    /// backend is a lookup, not a scan of every slice (which made 10,000 routes quadratic).
    slices_by_service: BTreeMap<ObjKey, std::collections::BTreeSet<ObjKey>>,
    /// Ready endpoints of each Service with slices, recomputed when one of its slices changes.
    endpoints: BTreeMap<ObjKey, endpoints::ByPort>,
    revisions: Revisions,
}

pub use endpoints::Endpoint;

/// When parts of a store last changed, so that a rebuild can reuse what an unchanged part
/// produced. Revisions come from one process-wide counter: two stores never share one unless
/// one is a clone of the other taken when they were equal.
struct Revisions {
    /// Last change to any kind but HTTPRoute: every route's resolution reads those.
    context: u64,
    /// Last change to each HTTPRoute; the same keys as `Store::http_routes`.
    routes: BTreeMap<ObjKey, u64>,
    /// Deletions of HTTPRoutes, while they are remembered.
    deleted: BTreeMap<ObjKey, u64>,
    /// The route of every revision in `routes` and `deleted`: what changed since a build is a
    /// range of this, so the next build visits the changed routes only.
    log: BTreeMap<u64, ObjKey>,
    /// Revisions in `deleted`, oldest first (some since superseded by a new route).
    deletions: std::collections::VecDeque<u64>,
    /// The latest deletion forgotten: a cursor below it may have missed one.
    forgotten: u64,
    /// Names this history; a clone goes its own way and gets its own.
    lineage: u64,
}

/// Deletions remembered for [`Store::http_route_changes`]; a build that fell further behind
/// walks every route instead.
pub(crate) const REMEMBERED_DELETIONS: usize = 4096;

impl Default for Revisions {
    fn default() -> Self {
        Self {
            context: next_revision(),
            routes: Default::default(),
            deleted: Default::default(),
            log: Default::default(),
            deletions: Default::default(),
            forgotten: 0,
            lineage: next_revision(),
        }
    }
}

impl Clone for Revisions {
    fn clone(&self) -> Self {
        Self {
            context: self.context,
            routes: self.routes.clone(),
            deleted: self.deleted.clone(),
            log: self.log.clone(),
            deletions: self.deletions.clone(),
            forgotten: self.forgotten,
            lineage: next_revision(),
        }
    }
}

impl Revisions {
    fn route_changed(&mut self, key: &ObjKey, present: bool) {
        let revision = next_revision();
        let old = if present {
            self.routes.insert(key.clone(), revision)
        } else {
            self.routes.remove(key)
        };
        for r in old.into_iter().chain(self.deleted.remove(key)) {
            self.log.remove(&r);
        }
        self.log.insert(revision, key.clone());
        if !present {
            self.deleted.insert(key.clone(), revision);
            self.deletions.push_back(revision);
        }
        while self.deletions.len() > REMEMBERED_DELETIONS {
            let Some(oldest) = self.deletions.pop_front() else {
                break;
            };
            // Superseded when the route came back: its log entry went with it.
            if let Some(gone) = self.log.get(&oldest)
                && self.deleted.get(gone) == Some(&oldest)
            {
                self.deleted.remove(gone);
                self.log.remove(&oldest);
                self.forgotten = oldest;
            }
        }
    }
}

/// Where a build is in a store's HTTPRoute history (see [`Store::http_route_changes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteCursor {
    lineage: u64,
    revision: u64,
}

/// One changed HTTPRoute and its current version, `None` when it was deleted.
pub type RouteChange<'a> = (&'a ObjKey, Option<&'a HttpRoute>);

/// Revisions say when, not what: two stores holding the same objects print the same.
impl std::fmt::Debug for Revisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Revisions")
    }
}

fn next_revision() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The Service an EndpointSlice belongs to, from its `kubernetes.io/service-name` label.
fn slice_service(key: &ObjKey, slice: &EndpointSlice) -> Option<ObjKey> {
    let name = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?;
    Some(ObjKey::new(key.namespace.clone(), name.clone()))
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revision of everything but HTTPRoutes: equal revisions mean equal objects.
    pub fn context_revision(&self) -> u64 {
        self.revisions.context
    }

    /// Revision of one HTTPRoute (0 when there is none): equal revisions mean equal routes.
    #[cfg(test)]
    pub fn route_revision(&self, key: &ObjKey) -> u64 {
        self.revisions.routes.get(key).copied().unwrap_or(0)
    }

    /// Where the HTTPRoute history of this store is now.
    pub fn route_cursor(&self) -> RouteCursor {
        RouteCursor {
            lineage: self.revisions.lineage,
            revision: self.revisions.log.keys().next_back().copied().unwrap_or(0),
        }
    }

    /// Every HTTPRoute added, changed or deleted after `since`, once each, in the order of
    /// their last change; `None` when `since` is from another store (or a clone) or so far
    /// behind that a deletion was forgotten: the caller must walk every route.
    pub fn http_route_changes(&self, since: RouteCursor) -> Option<Vec<RouteChange<'_>>> {
        let r = &self.revisions;
        if since.lineage != r.lineage || since.revision < r.forgotten {
            return None;
        }
        Some(
            r.log
                .range(since.revision + 1..)
                .map(|(_, key)| (key, self.http_routes.get(key)))
                .collect(),
        )
    }

    fn changed(&mut self, kind: Kind, key: &ObjKey, present: bool) {
        if kind != Kind::HttpRoute {
            self.revisions.context = next_revision();
        } else {
            self.revisions.route_changed(key, present);
        }
    }

    /// Inserts or replaces an object; returns true when the stored value changed.
    pub fn apply(&mut self, object: Object) -> bool {
        let kind = object.kind();
        let key = object.key();
        let changed = self.put(object, key.clone());
        if changed {
            self.changed(kind, &key, true);
        }
        changed
    }

    fn put(&mut self, object: Object, key: ObjKey) -> bool {
        match object {
            Object::GatewayClass(o) => put(&mut self.gateway_classes, key, *o),
            Object::Gateway(o) => put(&mut self.gateways, key, *o),
            Object::HttpRoute(o) => put(&mut self.http_routes, key, *o),
            Object::ReferenceGrant(o) => put(&mut self.reference_grants, key, *o),
            Object::GatewayExtension(o) => put(&mut self.gateway_extensions, key, *o),
            Object::TrafficPolicy(o) => put(&mut self.traffic_policies, key, *o),
            Object::GatewayParameters(o) => put(&mut self.gateway_parameters, key, *o),
            Object::Service(o) => put(&mut self.services, key, *o),
            Object::EndpointSlice(o) => {
                let before = self.unindex_slice(&key);
                let after = slice_service(&key, &o);
                if let Some(service) = &after {
                    self.slices_by_service
                        .entry(service.clone())
                        .or_default()
                        .insert(key.clone());
                }
                let changed = put(&mut self.endpoint_slices, key, *o);
                if changed {
                    for service in before
                        .iter()
                        .chain(after.iter().filter(|a| before.as_ref() != Some(*a)))
                    {
                        self.reindex_endpoints(service);
                    }
                }
                changed
            }
            Object::Namespace(o) => put(&mut self.namespaces, key, *o),
        }
    }

    /// Drops `key` from the slice index; returns the Service it belonged to.
    fn unindex_slice(&mut self, key: &ObjKey) -> Option<ObjKey> {
        let service = self
            .endpoint_slices
            .get(key)
            .and_then(|old| slice_service(key, old))?;
        if let Some(set) = self.slices_by_service.get_mut(&service) {
            set.remove(key);
            if set.is_empty() {
                self.slices_by_service.remove(&service);
            }
        }
        Some(service)
    }

    fn reindex_endpoints(&mut self, service: &ObjKey) {
        let by_port = endpoints::by_port(self.slices_of(service));
        if by_port.is_empty() {
            self.endpoints.remove(service);
        } else {
            self.endpoints.insert(service.clone(), by_port);
        }
    }

    /// Ready endpoints of `service` for the slice port named `port_name` ("" when unnamed).
    pub fn endpoints_of(&self, service: &ObjKey, port_name: &str) -> Arc<Vec<Endpoint>> {
        self.endpoints
            .get(service)
            .and_then(|by_port| by_port.get(port_name))
            .cloned()
            .unwrap_or_default()
    }

    /// The EndpointSlices of `service`, in key order.
    pub fn slices_of<'a>(
        &'a self,
        service: &ObjKey,
    ) -> impl Iterator<Item = &'a EndpointSlice> + 'a {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|k| self.endpoint_slices.get(k))
    }

    /// Removes an object; returns true when it was present.
    pub fn delete(&mut self, object: &ObjectRef) -> bool {
        let removed = self.remove(object);
        if removed {
            self.changed(object.kind, &object.key, false);
        }
        removed
    }

    fn remove(&mut self, object: &ObjectRef) -> bool {
        let key = &object.key;
        match object.kind {
            Kind::GatewayClass => self.gateway_classes.remove(key).is_some(),
            Kind::Gateway => self.gateways.remove(key).is_some(),
            Kind::HttpRoute => self.http_routes.remove(key).is_some(),
            Kind::ReferenceGrant => self.reference_grants.remove(key).is_some(),
            Kind::GatewayExtension => self.gateway_extensions.remove(key).is_some(),
            Kind::TrafficPolicy => self.traffic_policies.remove(key).is_some(),
            Kind::GatewayParameters => self.gateway_parameters.remove(key).is_some(),
            Kind::Service => self.services.remove(key).is_some(),
            Kind::EndpointSlice => {
                let service = self.unindex_slice(key);
                let removed = self.endpoint_slices.remove(key).is_some();
                if let Some(service) = service {
                    self.reindex_endpoints(&service);
                }
                removed
            }
            Kind::Namespace => self.namespaces.remove(key).is_some(),
        }
    }

    /// Keys of every object of one kind.
    pub fn keys(&self, kind: Kind) -> Vec<ObjKey> {
        fn k<T>(m: &BTreeMap<ObjKey, T>) -> Vec<ObjKey> {
            m.keys().cloned().collect()
        }
        match kind {
            Kind::GatewayClass => k(&self.gateway_classes),
            Kind::Gateway => k(&self.gateways),
            Kind::HttpRoute => k(&self.http_routes),
            Kind::ReferenceGrant => k(&self.reference_grants),
            Kind::GatewayExtension => k(&self.gateway_extensions),
            Kind::TrafficPolicy => k(&self.traffic_policies),
            Kind::GatewayParameters => k(&self.gateway_parameters),
            Kind::Service => k(&self.services),
            Kind::EndpointSlice => k(&self.endpoint_slices),
            Kind::Namespace => k(&self.namespaces),
        }
    }

    /// Makes `objects` the complete set of `kind` (a re-list): objects not in it are deleted.
    /// Returns true when anything changed.
    pub fn replace_kind(&mut self, kind: Kind, objects: Vec<Object>) -> bool {
        let keep: std::collections::BTreeSet<ObjKey> = objects.iter().map(Object::key).collect();
        let mut changed = false;
        for key in self.keys(kind) {
            if !keep.contains(&key) {
                changed |= self.delete(&ObjectRef { kind, key });
            }
        }
        for o in objects {
            debug_assert_eq!(o.kind(), kind);
            changed |= self.apply(o);
        }
        changed
    }

    /// Number of objects held, all kinds together.
    pub fn len(&self) -> usize {
        self.gateway_classes.len()
            + self.gateways.len()
            + self.http_routes.len()
            + self.reference_grants.len()
            + self.gateway_extensions.len()
            + self.traffic_policies.len()
            + self.gateway_parameters.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.namespaces.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn put<T: PartialEq>(map: &mut BTreeMap<ObjKey, T>, key: ObjKey, value: T) -> bool {
    match map.get(&key) {
        Some(old) if *old == value => false,
        _ => {
            map.insert(key, value);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn revisions_move_only_when_content_changes() {
        let route = |path: &str| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: a}}\nspec:\n  rules: [{{matches: [{{path: {{type: PathPrefix, value: {path}}}}}]}}]\n"
            )
        };
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\n";
        let mut store = testing::store(&(route("/") + "---\n" + svc));
        let key = ObjKey::new("a", "r");
        let (context, r1) = (store.context_revision(), store.route_revision(&key));
        assert_ne!(r1, 0);
        let same = testing::store(&route("/")).http_routes[&key].clone();
        assert!(!store.apply(Object::HttpRoute(Box::new(same))));
        assert_eq!(store.route_revision(&key), r1, "an identical apply");
        let moved = testing::store(&route("/v2")).http_routes[&key].clone();
        assert!(store.apply(Object::HttpRoute(Box::new(moved))));
        let r2 = store.route_revision(&key);
        assert!(
            r2 != r1 && store.context_revision() == context,
            "a route change"
        );
        let copy = store.clone();
        assert!(store.delete(&ObjectRef {
            kind: Kind::Service,
            key: ObjKey::new("a", "s"),
        }));
        assert!(store.context_revision() != context && store.route_revision(&key) == r2);
        assert_eq!(copy.context_revision(), context, "a clone keeps its own");
        assert!(store.delete(&ObjectRef {
            kind: Kind::HttpRoute,
            key: key.clone(),
        }));
        assert_eq!(store.route_revision(&key), 0);
        assert_ne!(
            Store::new().context_revision(),
            Store::new().context_revision(),
            "two empty stores never look like the same build input"
        );
    }

    #[test]
    fn replace_kind_deletes_what_a_relist_no_longer_has() {
        let mut store = testing::store(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\n",
        );
        let relist = testing::store(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n",
        );
        let objects: Vec<Object> = relist
            .namespaces
            .values()
            .map(|n| Object::Namespace(Box::new(n.clone())))
            .collect();
        assert!(store.replace_kind(Kind::Namespace, objects.clone()));
        assert_eq!(
            store.keys(Kind::Namespace),
            vec![ObjKey::cluster("b"), ObjKey::cluster("c")]
        );
        assert_eq!(store.services.len(), 1, "other kinds untouched");
        assert!(
            !store.replace_kind(Kind::Namespace, objects),
            "same list, no change"
        );
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;
    use crate::testing;

    fn route(name: &str, path: &str) -> Object {
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: a}}\nspec:\n  rules: [{{matches: [{{path: {{type: PathPrefix, value: {path}}}}}]}}]\n"
        );
        let key = ObjKey::new("a", name);
        Object::HttpRoute(Box::new(testing::store(&yaml).http_routes[&key].clone()))
    }

    fn gone(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::HttpRoute,
            key: ObjKey::new("a", name),
        }
    }

    /// (name, present) of each change since `since`.
    fn changes(store: &Store, since: RouteCursor) -> Option<Vec<(String, bool)>> {
        store.http_route_changes(since).map(|c| {
            c.into_iter()
                .map(|(k, now)| (k.name.clone(), now.is_some()))
                .collect()
        })
    }

    #[test]
    fn changes_since_a_cursor_name_each_route_once() {
        let mut store = Store::new();
        let start = store.route_cursor();
        store.apply(route("a", "/"));
        store.apply(route("b", "/"));
        assert_eq!(
            changes(&store, start),
            Some(vec![("a".into(), true), ("b".into(), true)])
        );
        let seen = store.route_cursor();
        assert_eq!(changes(&store, seen), Some(vec![]));
        assert!(!store.apply(route("a", "/")), "an identical apply");
        assert_eq!(changes(&store, seen), Some(vec![]));
        store.apply(route("a", "/v2"));
        store.delete(&gone("b"));
        store.apply(route("a", "/v3"));
        store.apply(route("c", "/"));
        // In the order of each route's last change; `a` once.
        assert_eq!(
            changes(&store, seen),
            Some(vec![
                ("b".into(), false),
                ("a".into(), true),
                ("c".into(), true)
            ])
        );
        // A route deleted and back is one change, present.
        let seen = store.route_cursor();
        store.delete(&gone("c"));
        store.apply(route("c", "/"));
        assert_eq!(changes(&store, seen), Some(vec![("c".into(), true)]));
        // Other kinds are not in the route history.
        let seen = store.route_cursor();
        store.apply(
            testing::store("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\n")
                .services
                .into_values()
                .map(|s| Object::Service(Box::new(s)))
                .next()
                .expect("a service"),
        );
        assert_eq!(changes(&store, seen), Some(vec![]));
    }

    #[test]
    fn a_clone_or_a_forgotten_deletion_asks_for_a_full_walk() {
        let mut store = Store::new();
        store.apply(route("a", "/"));
        let seen = store.route_cursor();
        let mut copy = store.clone();
        copy.apply(route("b", "/"));
        assert_eq!(changes(&copy, seen), None, "a cursor of another history");
        assert_eq!(changes(&store, seen), Some(vec![]));

        for i in 0..=REMEMBERED_DELETIONS {
            let name = format!("d{i}");
            store.apply(route(&name, "/"));
            store.delete(&gone(&name));
        }
        assert_eq!(changes(&store, seen), None, "a deletion was forgotten");
        let recent = store.route_cursor();
        store.delete(&gone("a"));
        assert_eq!(changes(&store, recent), Some(vec![("a".into(), false)]));
        // Superseded deletions are not what gets forgotten: the history stays bounded.
        assert!(store.revisions.deleted.len() <= REMEMBERED_DELETIONS);
        assert_eq!(store.revisions.log.len(), store.revisions.deleted.len());
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;
    use crate::testing;

    fn slice(name: &str, service: &str, addresses: &[&str]) -> Object {
        let yaml = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: a, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}, {{port: 9090}}]\nendpoints:\n- addresses: [{}]\n- addresses: [10.9.9.9]\n  conditions: {{ready: false}}\n",
            addresses.join(", ")
        );
        let key = ObjKey::new("a", name);
        Object::EndpointSlice(Box::new(
            testing::store(&yaml).endpoint_slices[&key].clone(),
        ))
    }

    fn addresses(store: &Store, service: &str, port: &str) -> Vec<String> {
        store
            .endpoints_of(&ObjKey::new("a", service), port)
            .iter()
            .map(|e| format!("{}:{}", e.address, e.port))
            .collect()
    }

    #[test]
    fn endpoints_follow_slices_as_they_change_move_and_go() {
        let mut store = Store::new();
        store.apply(slice("s1", "web", &["10.0.0.2", "10.0.0.1"]));
        store.apply(slice("s2", "web", &["10.0.0.1", "10.0.0.3"]));
        // Sorted, without repeats, ready only, by port name.
        assert_eq!(
            addresses(&store, "web", "http"),
            ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
        );
        assert_eq!(addresses(&store, "web", "").len(), 3, "the unnamed port");
        assert!(addresses(&store, "web", "grpc").is_empty());

        // s2 moves to another Service: both Services change.
        store.apply(slice("s2", "api", &["10.0.0.3"]));
        assert_eq!(
            addresses(&store, "web", "http"),
            ["10.0.0.1:8080", "10.0.0.2:8080"]
        );
        assert_eq!(addresses(&store, "api", "http"), ["10.0.0.3:8080"]);

        store.delete(&ObjectRef {
            kind: Kind::EndpointSlice,
            key: ObjKey::new("a", "s1"),
        });
        assert!(addresses(&store, "web", "http").is_empty());
        assert_eq!(addresses(&store, "api", "http"), ["10.0.0.3:8080"]);
    }
}
