//! The typed object store every source fills and the model reads.
//!
//! Sources (`source::files`, `source::kube`) call [`Store::apply`] and [`Store::delete`]; nothing
//! downstream knows where an object came from. Maps are ordered so that everything computed from
//! the store is deterministic.

mod endpoints;
mod kinds;
mod object;

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::standard::grpcroutes::GrpcRoute;
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use kinds::{Kind, KindFn, KindScope, Object, ObjectFn, Observed, StoredKind};
pub use object::ObjectRef;

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

macro_rules! define_store {
    ($($variant:ident($ty:ty) $field:ident $name:literal,)*) => {
        /// Every object Gatehouse reads, by kind and key. Change `endpoint_slices` through
        /// [`Store::apply`] and [`Store::delete`] only: `slices_by_service` follows it.
        #[derive(Clone, Debug, Default)]
        pub struct Store {
            $(
                #[doc = concat!("Every ", $name, ", by key.")]
                pub $field: BTreeMap<ObjKey, $ty>,
            )*
            /// EndpointSlices by the Service they label (`kubernetes.io/service-name`): resolving
            /// a backend is a lookup, not a scan of every slice (which made 10,000 routes
            /// quadratic).
            slices_by_service: BTreeMap<ObjKey, std::collections::BTreeSet<ObjKey>>,
            /// Ready endpoints of each Service with slices, recomputed when one of its slices
            /// changes.
            endpoints: BTreeMap<ObjKey, endpoints::ByPort>,
            revisions: Revisions,
        }
    };
}
kinds::registry!(define_store);

pub use endpoints::Endpoint;

/// When parts of a store last changed, so that a rebuild can reuse what an unchanged part
/// produced. Revisions come from one process-wide counter: two stores never share one unless
/// one is a clone of the other taken when they were equal.
struct Revisions {
    /// Last change to any kind but the routes: every route's resolution reads those.
    context: u64,
    /// Last change to each route (HTTPRoute, GRPCRoute); the keys of their maps in `Store`.
    routes: BTreeMap<ObjectRef, u64>,
    /// Deletions of routes, while they are remembered.
    deleted: BTreeMap<ObjectRef, u64>,
    /// The route of every revision in `routes` and `deleted`: what changed since a build is a
    /// range of this, so the next build visits the changed routes only.
    log: BTreeMap<u64, ObjectRef>,
    /// Revisions in `deleted`, oldest first (some since superseded by a new route).
    deletions: std::collections::VecDeque<u64>,
    /// The latest deletion forgotten: a cursor below it may have missed one.
    forgotten: u64,
    /// Names this history; a clone goes its own way and gets its own.
    lineage: u64,
}

/// Deletions remembered for [`Store::route_changes`]; a build that fell further behind
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
    fn route_changed(&mut self, key: &ObjectRef, present: bool) {
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

/// Where a build is in a store's route history (see [`Store::route_changes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteCursor {
    lineage: u64,
    revision: u64,
}

/// One changed route and its current version, `None` when it was deleted.
pub type RouteChange<'a> = (&'a ObjectRef, Option<AnyRoute<'a>>);

/// A route of one of the kinds the model resolves route by route.
#[derive(Clone, Copy, Debug)]
pub enum AnyRoute<'a> {
    Http(&'a HttpRoute),
    Grpc(&'a GrpcRoute),
}

/// True for the kinds kept in the route history rather than in the context revision.
pub fn is_route_kind(kind: Kind) -> bool {
    matches!(kind, Kind::HttpRoute | Kind::GrpcRoute)
}

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

/// What [`Store::apply`] did. Ordered: a batch did the most of what its objects did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Applied {
    /// The store held this object already.
    Unchanged,
    /// Only its status or `resourceVersion` moved (see [`Observed`]): stored, so the status
    /// writer reads it, but no revision moves and nothing needs rebuilding.
    Observed,
    /// The object is new, or changed in what the model reads.
    Changed,
}

impl Applied {
    /// True when the model must be rebuilt.
    pub fn changed(self) -> bool {
        self == Applied::Changed
    }
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

    /// Revision of everything but the routes: equal revisions mean equal objects.
    pub fn context_revision(&self) -> u64 {
        self.revisions.context
    }

    /// Revision of one route (0 when there is none): equal revisions mean equal routes.
    #[cfg(test)]
    pub fn route_revision(&self, route: &ObjectRef) -> u64 {
        self.revisions.routes.get(route).copied().unwrap_or(0)
    }

    /// Where the route history of this store is now.
    pub fn route_cursor(&self) -> RouteCursor {
        RouteCursor {
            lineage: self.revisions.lineage,
            revision: self.revisions.log.keys().next_back().copied().unwrap_or(0),
        }
    }

    /// Every route added, changed or deleted after `since`, once each, in the order of
    /// their last change; `None` when `since` is from another store (or a clone) or so far
    /// behind that a deletion was forgotten: the caller must walk every route.
    pub fn route_changes(&self, since: RouteCursor) -> Option<Vec<RouteChange<'_>>> {
        let r = &self.revisions;
        if since.lineage != r.lineage || since.revision < r.forgotten {
            return None;
        }
        Some(
            r.log
                .range(since.revision + 1..)
                .map(|(_, route)| (route, self.route(route)))
                .collect(),
        )
    }

    /// The route `route` names, if it is a route kind and stored.
    pub fn route(&self, route: &ObjectRef) -> Option<AnyRoute<'_>> {
        match route.kind {
            Kind::HttpRoute => self.http_routes.get(&route.key).map(AnyRoute::Http),
            Kind::GrpcRoute => self.grpc_routes.get(&route.key).map(AnyRoute::Grpc),
            _ => None,
        }
    }

    /// Every route, HTTPRoutes then GRPCRoutes (the order of [`ObjectRef`]).
    pub fn routes(&self) -> Vec<(ObjectRef, AnyRoute<'_>)> {
        let http = self.http_routes.iter().map(|(key, r)| {
            let at = ObjectRef {
                kind: Kind::HttpRoute,
                key: key.clone(),
            };
            (at, AnyRoute::Http(r))
        });
        let grpc = self.grpc_routes.iter().map(|(key, r)| {
            let at = ObjectRef {
                kind: Kind::GrpcRoute,
                key: key.clone(),
            };
            (at, AnyRoute::Grpc(r))
        });
        http.chain(grpc).collect()
    }

    fn changed(&mut self, kind: Kind, key: &ObjKey, present: bool) {
        if is_route_kind(kind) {
            let route = ObjectRef {
                kind,
                key: key.clone(),
            };
            self.revisions.route_changed(&route, present);
        } else {
            self.revisions.context = next_revision();
        }
    }

    /// Inserts or replaces an object; says whether that changed it, and how.
    pub fn apply(&mut self, object: Object) -> Applied {
        let kind = object.kind();
        let key = object.key();
        let applied = self.put(object, key.clone());
        if applied.changed() {
            self.changed(kind, &key, true);
        }
        applied
    }

    fn put(&mut self, object: Object, key: ObjKey) -> Applied {
        // The one kind with indexes of its own; they follow its map here and in `remove`.
        let Object::EndpointSlice(slice) = &object else {
            return object.with(Put { store: self, key });
        };
        let before = self.unindex_slice(&key);
        let after = slice_service(&key, slice);
        if let Some(service) = &after {
            self.slices_by_service
                .entry(service.clone())
                .or_default()
                .insert(key.clone());
        }
        let applied = object.with(Put { store: self, key });
        if applied.changed() {
            for service in before
                .iter()
                .chain(after.iter().filter(|a| before.as_ref() != Some(*a)))
            {
                self.reindex_endpoints(service);
            }
        }
        applied
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
        let slice_of = match object.kind {
            Kind::EndpointSlice => self.unindex_slice(key),
            _ => None,
        };
        let removed = object.kind.with(Remove { store: self, key });
        if let Some(service) = slice_of {
            self.reindex_endpoints(&service);
        }
        removed
    }

    /// Keys of every object of one kind.
    pub fn keys(&self, kind: Kind) -> Vec<ObjKey> {
        struct Keys<'a>(&'a Store);
        impl KindFn for Keys<'_> {
            type Output = Vec<ObjKey>;
            fn call<K: StoredKind>(self) -> Vec<ObjKey> {
                K::map(self.0).keys().cloned().collect()
            }
        }
        kind.with(Keys(self))
    }

    /// Makes `objects` the complete set of `kind` (a re-list): objects not in it are deleted.
    /// Returns the most any object's change did.
    pub fn replace_kind(&mut self, kind: Kind, objects: Vec<Object>) -> Applied {
        self.replace_kind_in(kind, None, objects)
    }

    /// [`Store::replace_kind`] for the objects of one namespace (`None`: all of them), as a
    /// watch of that namespace lists them.
    pub fn replace_kind_in(
        &mut self,
        kind: Kind,
        namespace: Option<&str>,
        objects: Vec<Object>,
    ) -> Applied {
        let keep: std::collections::BTreeSet<ObjKey> = objects.iter().map(Object::key).collect();
        let mut applied = Applied::Unchanged;
        let in_scope = |key: &ObjKey| namespace.is_none_or(|ns| key.namespace == ns);
        for key in self.keys(kind).into_iter().filter(in_scope) {
            if !keep.contains(&key) && self.delete(&ObjectRef { kind, key }) {
                applied = Applied::Changed;
            }
        }
        for o in objects {
            debug_assert_eq!(o.kind(), kind);
            applied = applied.max(self.apply(o));
        }
        applied
    }

    /// Number of objects held, all kinds together.
    pub fn len(&self) -> usize {
        struct Len<'a>(&'a Store);
        impl KindFn for Len<'_> {
            type Output = usize;
            fn call<K: StoredKind>(self) -> usize {
                K::map(self.0).len()
            }
        }
        Kind::ALL.iter().map(|kind| kind.with(Len(self))).sum()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stores an object in its kind's map, saying how the stored value changed.
struct Put<'a> {
    store: &'a mut Store,
    key: ObjKey,
}

impl ObjectFn for Put<'_> {
    type Output = Applied;
    fn call<K: StoredKind>(self, object: K) -> Applied {
        let map = K::map_mut(self.store);
        let applied = match map.get(&self.key) {
            Some(old) if *old == object => return Applied::Unchanged,
            Some(old) if object.same_but_observed(old) => Applied::Observed,
            _ => Applied::Changed,
        };
        map.insert(self.key, object);
        applied
    }
}

/// Drops an object from its kind's map; true when it was there.
struct Remove<'a> {
    store: &'a mut Store,
    key: &'a ObjKey,
}

impl KindFn for Remove<'_> {
    type Output = bool;
    fn call<K: StoredKind>(self) -> bool {
        K::map_mut(self.store).remove(self.key).is_some()
    }
}

#[cfg(test)]
mod tests;
