//! An immutable, versioned set of resources for one proxy group.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use crate::resource::{ContentHash, Resource};

/// Resources by type URL, then by name. `BTreeMap`s keep iteration, and therefore
/// responses and aggregate versions, deterministic.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Snapshot {
    types: BTreeMap<String, BTreeMap<String, Arc<Resource>>>,
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a resource; its version is computed from `body`.
    pub fn insert(&mut self, type_url: &str, name: impl Into<String>, body: Any) {
        let resource = Resource::new(name, body);
        self.types
            .entry(type_url.to_string())
            .or_default()
            .insert(resource.name.clone(), Arc::new(resource));
    }

    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<Resource>> {
        self.types.get(type_url).and_then(|m| m.get(name))
    }

    /// The resources of one type, sorted by name.
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = &Arc<Resource>> {
        self.types
            .get(type_url)
            .into_iter()
            .flat_map(|m| m.values())
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
        content_version(self.resources(type_url))
    }

    /// True if both snapshots hold the same names with the same versions. Cheaper than `==`
    /// because it never compares bodies; versions are content hashes.
    pub fn same_versions(&self, other: &Snapshot) -> bool {
        let types = |s: &Snapshot| s.type_urls().map(str::to_string).collect::<Vec<_>>();
        types(self) == types(other)
            && self.type_urls().all(|t| {
                self.resources(t)
                    .map(|r| (&r.name, &r.version))
                    .eq(other.resources(t).map(|r| (&r.name, &r.version)))
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
