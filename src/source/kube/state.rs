use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::store::{Applied, Kind, ObjKey, Object, ObjectRef, Store};

/// The store the watchers fill, which kinds have synced, and what is failing.
///
/// The store is never copied: the rebuild and the status writer read it under its lock
/// ([`KubeState::with_store`]). A copy per change cost more than the change at 10,000 routes,
/// and a copy starts a new route history, so the model rebuilt every route each time.
#[derive(Debug, Default)]
pub struct KubeState {
    store: Mutex<Store>,
    synced: Mutex<BTreeSet<Kind>>,
    /// Kinds watched per namespace: the namespaces each must list before it is synced, and
    /// those that did.
    partitions: Mutex<BTreeMap<Kind, Partitions>>,
    failing: Mutex<BTreeMap<Kind, String>>,
    touched: Mutex<Touched>,
    /// Something the model reads changed: rebuild.
    changed: Notify,
    /// Some stored object changed, if only its status: the status writer looks at it.
    observed: Notify,
}

/// The namespaces a kind watched per namespace must list before it is synced, and those that
/// did.
#[derive(Debug, Default)]
struct Partitions {
    expected: BTreeSet<String>,
    listed: BTreeSet<String>,
}

/// Objects whose stored value changed, status included, since the status writer last asked.
#[derive(Debug, Default, PartialEq)]
pub struct Touched {
    /// A re-list replaced a kind: look at everything.
    pub all: bool,
    pub objects: BTreeSet<(Kind, ObjKey)>,
}

/// Locks even after a panic elsewhere: every writer of these leaves them consistent between
/// statements, and refusing to serve forever would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KubeState {
    /// `kind` is watched in these namespaces only, one watch each: it is synced once each has
    /// listed.
    pub fn watch_in(&self, kind: Kind, namespaces: &[String]) {
        lock(&self.partitions).insert(
            kind,
            Partitions {
                expected: namespaces.iter().cloned().collect(),
                listed: BTreeSet::new(),
            },
        );
    }

    /// A complete list of `kind` arrived (first sync or a re-list after an error).
    pub fn relisted(&self, kind: Kind, objects: Vec<Object>) {
        self.relisted_in(kind, None, objects);
    }

    /// A complete list of `kind` in `namespace` (`None`: everywhere) arrived.
    pub fn relisted_in(&self, kind: Kind, namespace: Option<&str>, objects: Vec<Object>) {
        let applied = lock(&self.store).replace_kind_in(kind, namespace, objects);
        let complete = match (namespace, lock(&self.partitions).get_mut(&kind)) {
            (Some(ns), Some(p)) => {
                p.listed.insert(ns.to_string());
                p.listed.is_superset(&p.expected)
            }
            _ => true,
        };
        let first = complete && lock(&self.synced).insert(kind);
        let recovered = lock(&self.failing).remove(&kind).is_some();
        if first {
            tracing::info!(%kind, "initial list complete");
        }
        if recovered {
            tracing::info!(%kind, "watch recovered");
        }
        if applied != Applied::Unchanged || first {
            lock(&self.touched).all = true;
            self.observed.notify_one();
        }
        if applied.changed() || first || recovered {
            self.changed.notify_one();
        }
    }

    pub fn apply(&self, object: Object) {
        let id = (object.kind(), object.key());
        let applied = lock(&self.store).apply(object);
        self.record(id, applied);
    }

    pub fn delete(&self, object: ObjectRef) {
        let removed = lock(&self.store).delete(&object);
        let applied = if removed {
            Applied::Changed
        } else {
            Applied::Unchanged
        };
        self.record((object.kind, object.key), applied);
    }

    fn record(&self, id: (Kind, ObjKey), applied: Applied) {
        if applied == Applied::Unchanged {
            return;
        }
        lock(&self.touched).objects.insert(id);
        self.observed.notify_one();
        if applied.changed() {
            self.changed.notify_one();
        }
    }

    /// A watch failed; logged once per kind until it recovers.
    pub fn failed(&self, kind: Kind, message: String) {
        if lock(&self.failing).insert(kind, message.clone()).is_none() {
            tracing::error!(%kind, "{message}");
            self.changed.notify_one();
        }
    }

    /// True once every kind delivered its first complete list.
    pub fn synced(&self) -> bool {
        let synced = lock(&self.synced);
        Kind::ALL.iter().all(|k| synced.contains(k))
    }

    /// Kinds still waiting for their first list.
    pub fn unsynced(&self) -> Vec<Kind> {
        let synced = lock(&self.synced);
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| !synced.contains(k))
            .collect()
    }

    /// Runs `f` on the store, holding its lock: the watchers wait meanwhile, so `f` must not
    /// block on anything but computation.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
    }

    /// The objects changed since the last call, and forgets them.
    pub fn take_touched(&self) -> Touched {
        std::mem::take(&mut *lock(&self.touched))
    }

    /// Current watch failures, one line each.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.failing).values().cloned().collect()
    }

    /// Resolves after the next change the model reads.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Resolves after the next change to a stored object, status included.
    pub async fn observed(&self) {
        self.observed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn route(status: bool) -> Object {
        let yaml = testing::http_route("a", "r", "", &[], "  - {}\n");
        let mut r = testing::store(&yaml).http_routes[&ObjKey::new("a", "r")].clone();
        if status {
            r.status = Some(Default::default());
            r.metadata.resource_version = Some("2".into());
        }
        Object::HttpRoute(Box::new(r))
    }

    fn now_or_never(f: impl std::future::Future<Output = ()>) -> bool {
        futures::FutureExt::now_or_never(f).is_some()
    }

    /// A status write's echo wakes the status writer, never the rebuild.
    #[test]
    fn a_status_echo_is_observed_without_a_rebuild() {
        let state = KubeState::default();
        state.apply(route(false));
        assert!(now_or_never(state.changed()), "a new route rebuilds");
        assert!(now_or_never(state.observed()));
        let key = (Kind::HttpRoute, ObjKey::new("a", "r"));
        assert_eq!(state.take_touched().objects, BTreeSet::from([key.clone()]));

        state.apply(route(true));
        assert!(!now_or_never(state.changed()), "the echo rebuilds nothing");
        assert!(now_or_never(state.observed()), "the writer looks at it");
        assert_eq!(state.take_touched().objects, BTreeSet::from([key]));
        assert!(state.with_store(|s| s.http_routes.values().all(|r| r.status.is_some())));

        state.apply(route(true));
        assert!(!now_or_never(state.observed()), "nothing moved");
        assert_eq!(state.take_touched(), Touched::default());
    }

    fn config_map(ns: &str, name: &str) -> Object {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        );
        let key = ObjKey::new(ns, name);
        Object::ConfigMap(Box::new(testing::store(&yaml).config_maps[&key].clone()))
    }

    /// A kind watched per namespace is synced once every namespace listed, and a namespace's
    /// re-list replaces that namespace's objects only.
    #[test]
    fn a_kind_watched_per_namespace_syncs_when_each_has_listed() {
        let state = KubeState::default();
        let namespaces = ["a".to_string(), "b".to_string()];
        state.watch_in(Kind::ConfigMap, &namespaces);
        state.relisted_in(Kind::ConfigMap, Some("a"), vec![config_map("a", "x")]);
        assert!(
            state.unsynced().contains(&Kind::ConfigMap),
            "b has not listed"
        );
        state.relisted_in(Kind::ConfigMap, Some("b"), vec![config_map("b", "y")]);
        assert!(!state.unsynced().contains(&Kind::ConfigMap));
        state.relisted_in(Kind::ConfigMap, Some("a"), Vec::new());
        let left: Vec<ObjKey> = state.with_store(|s| s.config_maps.keys().cloned().collect());
        assert_eq!(left, [ObjKey::new("b", "y")], "a's re-list left b alone");
    }
}
