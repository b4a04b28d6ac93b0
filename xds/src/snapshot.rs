//! An immutable, versioned set of resources for one proxy group.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use envoy_types::pb::google::protobuf::Any;

use crate::resource::{ContentHash, Resource};

/// Resources by type URL, each type sorted by name, which keeps iteration, and therefore
/// responses and aggregate versions, deterministic.
///
/// Sorted vectors rather than maps: a scoped Gateway has two resources per hostname, and
/// inserting 10,000 of them into maps (a search and a cloned name each) was a third of a
/// one-route rebuild's CPU (`perf`, BENCHMARKS.md). Resources arrive in name order, so a
/// push is one comparison.
#[derive(Clone, Default, Debug)]
pub struct Snapshot {
    types: BTreeMap<String, Vec<Arc<Resource>>>,
    /// Each type's aggregate version, computed on first use: every response of every
    /// connection names it.
    versions: OnceLock<BTreeMap<String, String>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.types == other.types
    }
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a resource; its version is computed from `body`.
    pub fn insert(&mut self, type_url: &str, name: impl Into<String>, body: Any) {
        self.insert_shared(type_url, Arc::new(Resource::new(name, body)));
    }

    /// Adds or replaces a resource built (and hashed) earlier, shared with other snapshots.
    pub fn insert_shared(&mut self, type_url: &str, resource: Arc<Resource>) {
        self.versions = OnceLock::new();
        let list = match self.types.get_mut(type_url) {
            Some(list) => list,
            None => self.types.entry(type_url.to_string()).or_default(),
        };
        if list.last().is_none_or(|last| last.name < resource.name) {
            list.push(resource);
            return;
        }
        match list.binary_search_by(|r| r.name.cmp(&resource.name)) {
            Ok(i) => list[i] = resource,
            Err(i) => list.insert(i, resource),
        }
    }

    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<Resource>> {
        let list = self.types.get(type_url)?;
        list.binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| &list[i])
    }

    /// The resources of one type, sorted by name.
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = &Arc<Resource>> {
        self.types.get(type_url).into_iter().flatten()
    }

    /// The names among `sorted` (ascending, as a `BTreeMap`'s keys are) that have no resource
    /// of `type_url` here: one merge walk. A lookup per name was 9% of a controller's CPU per
    /// change with 1,000 clusters (`perf`, BENCHMARKS.md).
    pub fn missing<'n>(
        &self,
        type_url: &str,
        sorted: impl IntoIterator<Item = &'n String>,
    ) -> Vec<&'n String> {
        let mut have = self.resources(type_url).map(|r| r.name.as_str()).peekable();
        sorted
            .into_iter()
            .filter(|n| {
                while have.next_if(|h| *h < n.as_str()).is_some() {}
                have.peek() != Some(&n.as_str())
            })
            .collect()
    }

    /// Number of resources of one type.
    pub fn count(&self, type_url: &str) -> usize {
        self.types.get(type_url).map_or(0, Vec::len)
    }

    /// Type URLs that hold at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(t, _)| t.as_str())
    }

    /// Aggregate version of one type: a hash of its (name, version) pairs.
    ///
    /// Never empty: a type with no resources has the fixed version of the empty set, so an
    /// empty LDS/CDS response still carries a version distinct from "nothing accepted yet".
    pub fn version(&self, type_url: &str) -> String {
        let versions = self.versions.get_or_init(|| {
            self.types
                .iter()
                .map(|(t, list)| (t.clone(), content_version(list.iter())))
                .collect()
        });
        match versions.get(type_url) {
            Some(v) => v.clone(),
            None => content_version(std::iter::empty()),
        }
    }

    /// True if both snapshots hold the same names with the same versions. Cheaper than `==`
    /// because it never compares bodies; versions are content hashes.
    pub fn same_versions(&self, other: &Snapshot) -> bool {
        let types = |s: &Snapshot| s.type_urls().map(str::to_string).collect::<Vec<_>>();
        types(self) == types(other)
            && self.type_urls().all(|t| {
                // Shared resources (the same `Arc`) skip comparing names and versions.
                self.count(t) == other.count(t)
                    && self.resources(t).zip(other.resources(t)).all(|(a, b)| {
                        Arc::ptr_eq(a, b) || (a.name == b.name && a.version == b.version)
                    })
            })
    }
}

/// Hash of (name, version) pairs, in the order given.
pub(crate) fn content_version<'a>(resources: impl Iterator<Item = &'a Arc<Resource>>) -> String {
    let mut h = ContentHash::new();
    for r in resources {
        h.write_str(&r.name);
        h.write_str(&r.version);
    }
    h.hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::type_url::{CLUSTER, ROUTE};

    fn any(v: &str) -> Any {
        Any {
            type_url: CLUSTER.to_string(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn resources_are_sorted_and_versioned() {
        let mut s = Snapshot::new();
        s.insert(CLUSTER, "b", any("1"));
        s.insert(CLUSTER, "a", any("2"));
        let names: Vec<_> = s.resources(CLUSTER).map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(s.get(CLUSTER, "a").is_some());
        assert!(s.get(ROUTE, "a").is_none());
        assert_eq!(s.resources(ROUTE).count(), 0);
    }

    /// The merge walk agrees with a lookup per name, whatever interleaves.
    #[test]
    fn missing_names_are_those_without_a_resource() {
        let mut s = Snapshot::new();
        for name in ["b", "d", "e", "h"] {
            s.insert(CLUSTER, name, any(name));
        }
        let held: std::collections::BTreeSet<String> =
            ["a", "b", "c", "e", "f", "h", "z"].map(String::from).into();
        let walked: Vec<&String> = s.missing(CLUSTER, &held);
        let looked: Vec<&String> = held
            .iter()
            .filter(|n| s.get(CLUSTER, n).is_none())
            .collect();
        assert_eq!(walked, looked);
        assert_eq!(walked, ["a", "c", "f", "z"]);
        assert_eq!(
            s.missing(ROUTE, &held).len(),
            held.len(),
            "no routes at all"
        );
        assert!(
            Snapshot::new()
                .missing(CLUSTER, &std::collections::BTreeSet::new())
                .is_empty()
        );
    }

    #[test]
    fn out_of_order_inserts_and_replacements_keep_one_sorted_entry_per_name() {
        let mut s = Snapshot::new();
        for (name, v) in [
            ("c", "1"),
            ("a", "1"),
            ("b", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "1"),
        ] {
            s.insert(CLUSTER, name, any(v));
        }
        let names: Vec<_> = s.resources(CLUSTER).map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(
            s.get(CLUSTER, "b").map(|r| r.body.value.clone()),
            Some(b"2".to_vec())
        );
        assert_eq!(
            s.get(CLUSTER, "c").map(|r| r.body.value.clone()),
            Some(b"3".to_vec())
        );
        assert_eq!(s.count(CLUSTER), 4);
    }

    #[test]
    fn type_version_tracks_content() {
        let mut a = Snapshot::new();
        a.insert(CLUSTER, "a", any("1"));
        let mut b = a.clone();
        assert_eq!(a.version(CLUSTER), b.version(CLUSTER));
        assert!(a.same_versions(&b));
        b.insert(CLUSTER, "a", any("2"));
        assert_ne!(a.version(CLUSTER), b.version(CLUSTER));
        assert!(!a.same_versions(&b));
        // The empty set has a real, fixed version.
        assert_eq!(a.version(ROUTE), Snapshot::new().version(ROUTE));
        assert!(!a.version(ROUTE).is_empty());
    }
}
