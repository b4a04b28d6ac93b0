//! The snapshot cache: one writer (the controller) and many readers (proxy streams).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::snapshot::Snapshot;

type Slot = watch::Sender<Option<Arc<Snapshot>>>;

/// Latest snapshot per proxy group (e.g. "ns/gateway"). Cloning shares the cache.
///
/// Each group is a `watch` channel: streams always see the newest snapshot and skip
/// intermediate ones they were too slow to send, which is what a config push wants.
#[derive(Clone, Default)]
pub struct SnapshotCache {
    groups: Arc<Mutex<HashMap<String, Slot>>>,
}

impl SnapshotCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the group's snapshot. Subscribers are woken only if some resource changed,
    /// so an identical rebuild costs the proxies nothing.
    pub fn set(&self, group: &str, snapshot: Snapshot) {
        let mut groups = self.lock();
        let slot = groups
            .entry(group.to_string())
            .or_insert_with(|| watch::Sender::new(None));
        slot.send_if_modified(|current| match current {
            Some(old) if old.same_versions(&snapshot) => false,
            _ => {
                *current = Some(Arc::new(snapshot));
                true
            }
        });
    }

    /// Forgets the group. Connected proxies keep the config they have: an emptied snapshot
    /// would tear down their listeners, which is the embedding program's call to make (it can
    /// `set` an empty snapshot instead).
    pub fn remove(&self, group: &str) {
        let mut groups = self.lock();
        if let Some(slot) = groups.get(group) {
            slot.send_if_modified(|current| current.take().is_some());
        }
        // Subscribers keep their channel so that a later `set` still reaches them.
        groups.retain(|_, slot| slot.borrow().is_some() || slot.receiver_count() > 0);
    }

    pub fn get(&self, group: &str) -> Option<Arc<Snapshot>> {
        self.lock()
            .get(group)
            .and_then(|slot| slot.borrow().clone())
    }

    /// Groups that currently have a snapshot, sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, slot)| slot.borrow().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Follows one group. The value is `None` while the group has no snapshot (not set yet,
    /// or removed).
    pub fn subscribe(&self, group: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let mut groups = self.lock();
        groups.retain(|_, slot| slot.borrow().is_some() || slot.receiver_count() > 0);
        groups
            .entry(group.to_string())
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding this lock cannot leave the map half-updated (every
        // mutation is a single insert/replace), so a poisoned lock is still usable.
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::type_url::CLUSTER;
    use envoy_types::pb::google::protobuf::Any;

    fn snap(v: &str) -> Snapshot {
        let mut s = Snapshot::new();
        s.insert(
            CLUSTER,
            "c",
            Any {
                type_url: CLUSTER.into(),
                value: v.as_bytes().to_vec(),
            },
        );
        s
    }

    #[test]
    fn set_get_remove_groups() {
        let cache = SnapshotCache::new();
        assert!(cache.get("g").is_none());
        cache.set("b", snap("1"));
        cache.set("a", snap("1"));
        assert_eq!(cache.groups(), ["a", "b"]);
        assert_eq!(cache.get("a").as_deref(), Some(&snap("1")));
        cache.remove("a");
        assert!(cache.get("a").is_none());
        assert_eq!(cache.groups(), ["b"]);
    }

    #[test]
    fn subscribers_wake_only_on_change() {
        let cache = SnapshotCache::new();
        let mut rx = cache.subscribe("g");
        assert!(rx.borrow_and_update().is_none());
        assert!(!rx.has_changed().unwrap());

        cache.set("g", snap("1"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_deref(), Some(&snap("1")));

        cache.set("g", snap("1"));
        assert!(
            !rx.has_changed().unwrap(),
            "identical snapshot must not wake"
        );

        cache.set("g", snap("2"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_deref(), Some(&snap("2")));
    }

    #[test]
    fn subscriber_survives_remove_and_sees_later_set() {
        let cache = SnapshotCache::new();
        let mut rx = cache.subscribe("g");
        cache.set("g", snap("1"));
        rx.borrow_and_update();
        cache.remove("g");
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().is_none());
        cache.set("g", snap("2"));
        assert_eq!(rx.borrow_and_update().as_deref(), Some(&snap("2")));
    }
}
