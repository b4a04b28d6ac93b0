use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::store::{Kind, Object, ObjectRef, Store};

/// The store the watchers fill, which kinds have synced, and what is failing.
#[derive(Debug, Default)]
pub struct KubeState {
    store: Mutex<Store>,
    synced: Mutex<BTreeSet<Kind>>,
    failing: Mutex<BTreeMap<Kind, String>>,
    changed: Notify,
}

impl KubeState {
    /// A complete list of `kind` arrived (first sync or a re-list after an error).
    pub fn relisted(&self, kind: Kind, objects: Vec<Object>) {
        let changed = self
            .store
            .lock()
            .map(|mut s| s.replace_kind(kind, objects))
            .unwrap_or(false);
        let first = self
            .synced
            .lock()
            .map(|mut s| s.insert(kind))
            .unwrap_or(false);
        let recovered = self
            .failing
            .lock()
            .map(|mut f| f.remove(&kind).is_some())
            .unwrap_or(false);
        if first {
            tracing::info!(%kind, "initial list complete");
        }
        if recovered {
            tracing::info!(%kind, "watch recovered");
        }
        if changed || first || recovered {
            self.changed.notify_one();
        }
    }

    pub fn apply(&self, object: Object) {
        if self
            .store
            .lock()
            .map(|mut s| s.apply(object))
            .unwrap_or(false)
        {
            self.changed.notify_one();
        }
    }

    pub fn delete(&self, object: ObjectRef) {
        if self
            .store
            .lock()
            .map(|mut s| s.delete(&object))
            .unwrap_or(false)
        {
            self.changed.notify_one();
        }
    }

    /// A watch failed; logged once per kind until it recovers.
    pub fn failed(&self, kind: Kind, message: String) {
        let new = self
            .failing
            .lock()
            .map(|mut f| f.insert(kind, message.clone()).is_none())
            .unwrap_or(false);
        if new {
            tracing::error!(%kind, "{message}");
            self.changed.notify_one();
        }
    }

    /// True once every kind delivered its first complete list.
    pub fn synced(&self) -> bool {
        self.synced
            .lock()
            .map(|s| Kind::ALL.iter().all(|k| s.contains(k)))
            .unwrap_or(false)
    }

    /// Kinds still waiting for their first list.
    pub fn unsynced(&self) -> Vec<Kind> {
        let synced = self.synced.lock().map(|s| s.clone()).unwrap_or_default();
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| !synced.contains(k))
            .collect()
    }

    /// A copy of the store.
    pub fn store(&self) -> Store {
        self.store.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Current watch failures, one line each.
    pub fn problems(&self) -> Vec<String> {
        self.failing
            .lock()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Resolves after the next change.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
