use super::ObjKey;
use super::kinds::{Kind, Object};

/// Where a namespaced object without a namespace lives, as `kubectl apply` would put it.
const DEFAULT_NAMESPACE: &str = "default";

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Kind and key: names one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub key: ObjKey,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

impl Object {
    /// The object's key; namespaced objects without a namespace land in `default`.
    pub fn key(&self) -> ObjKey {
        let meta = self.meta();
        let name = meta.name.clone().unwrap_or_default();
        if self.kind().cluster_scoped() {
            ObjKey::cluster(name)
        } else {
            let ns = match meta.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => DEFAULT_NAMESPACE,
            };
            ObjKey::new(ns, name)
        }
    }

    /// Writes the namespace [`Object::key`] gives into the object, so that what reads the
    /// object's own metadata agrees with where the store keeps it.
    pub fn set_default_namespace(&mut self) {
        if !self.kind().cluster_scoped() {
            let ns = self.key().namespace;
            self.meta_mut().namespace = Some(ns);
        }
    }

    /// Sets an annotation (the file loader marks objects it refused).
    pub fn annotate(&mut self, key: &str, value: String) {
        self.meta_mut()
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value);
    }

    /// Kind and key.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind(),
            key: self.key(),
        }
    }
}
