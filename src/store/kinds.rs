//! The registry of kinds: the one place a kind Gatehouse reads is listed.
//!
//! Each kind is a line of [`registry!`]. From that line come its [`Kind`] variant, its
//! [`Object`] variant, its map in [`Store`] and its [`StoredKind`] impl, and through
//! [`Kind::with`] and [`Object::with`] every source, the decoder and the status writer reach its
//! Rust type without a `match` of their own. Group, version and scope come from the type's
//! [`Resource`] impl, as kube's own `Api` and watcher take them.

use std::collections::BTreeMap;
use std::fmt::Debug;

use kube::Resource;
use kube::core::{ClusterResourceScope, NamespaceResourceScope, ObjectMeta};
use serde::de::DeserializeOwned;

use super::{ObjKey, Store};

/// The kinds Gatehouse reads, one line each: [`Kind`] variant, Rust type, [`Store`] field,
/// Kubernetes kind name. The type must be a kube [`Resource`] with a static type (a k8s-openapi
/// type, or a `#[derive(CustomResource)]`), `PartialEq` and `Debug`.
///
/// The kind name is spelled out because [`Kind::name`] is a `&'static str` and kube's is a
/// `Cow`; a test holds each to the type's own. The order is [`Kind`]'s, and kinds sort by it.
///
/// It calls back (`$then!`) rather than expanding once because [`Store`] is generated in
/// `store/mod.rs`, next to its private fields.
macro_rules! registry {
    ($then:ident) => {
        $then! {
            GatewayClass(gateway_api::apis::standard::gatewayclasses::GatewayClass) gateway_classes "GatewayClass",
            Gateway(gateway_api::apis::standard::gateways::Gateway) gateways "Gateway",
            HttpRoute(gateway_api::apis::experimental::httproutes::HttpRoute) http_routes "HTTPRoute",
            ReferenceGrant(gateway_api::apis::standard::referencegrants::ReferenceGrant) reference_grants "ReferenceGrant",
            GatewayExtension(crate::api::GatewayExtension) gateway_extensions "GatewayExtension",
            TrafficPolicy(crate::api::TrafficPolicy) traffic_policies "TrafficPolicy",
            GatewayParameters(crate::api::GatewayParameters) gateway_parameters "GatewayParameters",
            Service(k8s_openapi::api::core::v1::Service) services "Service",
            EndpointSlice(k8s_openapi::api::discovery::v1::EndpointSlice) endpoint_slices "EndpointSlice",
            Namespace(k8s_openapi::api::core::v1::Namespace) namespaces "Namespace",
            Secret(k8s_openapi::api::core::v1::Secret) secrets "Secret",
            ConfigMap(k8s_openapi::api::core::v1::ConfigMap) config_maps "ConfigMap",
            BackendTlsPolicy(gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicy) backend_tls_policies "BackendTLSPolicy",
            GrpcRoute(gateway_api::apis::standard::grpcroutes::GrpcRoute) grpc_routes "GRPCRoute",
        }
    };
}
pub(super) use registry;

/// A kind's Rust type, as the registry knows it.
pub trait StoredKind:
    Resource<DynamicType = (), Scope: KindScope>
    + Observed
    + Clone
    + Debug
    + PartialEq
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    /// From the type's scope, so the registry cannot contradict the API server.
    const NAMESPACED: bool = <Self::Scope as KindScope>::NAMESPACED;

    /// Every object of this kind in `store`.
    fn map(store: &Store) -> &BTreeMap<ObjKey, Self>;
    /// Only [`Store`] writes through this: some kinds have indexes that must follow.
    fn map_mut(store: &mut Store) -> &mut BTreeMap<ObjKey, Self>;
    fn into_object(self) -> Object;
}

/// The parts of an object that change without it changing for Gatehouse's model: its
/// `status` (which Gatehouse itself writes, and reads only to write it) and its
/// `resourceVersion`. A status write's echo must not rebuild anything.
pub trait Observed: Resource + Clone + PartialEq {
    /// Copies `from`'s status into `self`.
    fn keep_status_of(&mut self, from: &Self);

    /// True when `self` and `other` differ at most in what is observed.
    fn same_but_observed(&self, other: &Self) -> bool {
        let mut probe = self.clone();
        probe.keep_status_of(other);
        probe.meta_mut().resource_version = other.meta().resource_version.clone();
        probe == *other
    }
}

macro_rules! observed {
    (status: $($with:ty),*; none: $($without:ty),*) => {
        $(impl Observed for $with {
            fn keep_status_of(&mut self, from: &Self) {
                self.status = from.status.clone();
            }
        })*
        $(impl Observed for $without {
            fn keep_status_of(&mut self, _: &Self) {}
        })*
    };
}

observed! {
    status:
        gateway_api::apis::standard::gatewayclasses::GatewayClass,
        gateway_api::apis::standard::gateways::Gateway,
        gateway_api::apis::experimental::httproutes::HttpRoute,
        crate::api::GatewayExtension,
        crate::api::TrafficPolicy,
        k8s_openapi::api::core::v1::Service,
        k8s_openapi::api::core::v1::Namespace,
        gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicy,
        gateway_api::apis::standard::grpcroutes::GrpcRoute;
    none:
        gateway_api::apis::standard::referencegrants::ReferenceGrant,
        crate::api::GatewayParameters,
        k8s_openapi::api::discovery::v1::EndpointSlice,
        k8s_openapi::api::core::v1::Secret,
        k8s_openapi::api::core::v1::ConfigMap
}

/// kube's resource scopes, as far as generic code over kinds needs them: `Api::namespaced`
/// accepts namespaced types only, so the choice has to be made where the scope is known.
pub trait KindScope: Sized {
    const NAMESPACED: bool;
    /// An `Api` for objects of `K` in `namespace` (ignored for cluster-scoped kinds).
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(
        client: kube::Client,
        namespace: &str,
    ) -> kube::Api<K>;
}

impl KindScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(
        client: kube::Client,
        namespace: &str,
    ) -> kube::Api<K> {
        kube::Api::namespaced(client, namespace)
    }
}

impl KindScope for ClusterResourceScope {
    const NAMESPACED: bool = false;
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(
        client: kube::Client,
        _: &str,
    ) -> kube::Api<K> {
        kube::Api::all(client)
    }
}

/// Code generic over the kind, run by [`Kind::with`] with the kind's type: a closure that
/// takes a type parameter, which Rust closures cannot.
pub trait KindFn {
    type Output;
    fn call<K: StoredKind>(self) -> Self::Output;
}

/// Like [`KindFn`], given the object itself (see [`Object::with`]).
pub trait ObjectFn {
    type Output;
    fn call<K: StoredKind>(self, object: K) -> Self::Output;
}

macro_rules! define_kinds {
    ($($variant:ident($ty:ty) $field:ident $name:literal,)*) => {
        /// The kinds Gatehouse reads.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($variant,)*
        }

        /// One object of a kind Gatehouse reads. Boxed: the variants differ a lot in size.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $($variant(Box<$ty>),)*
        }

        $(impl StoredKind for $ty {
            const KIND: Kind = Kind::$variant;
            fn map(store: &Store) -> &BTreeMap<ObjKey, Self> {
                &store.$field
            }
            fn map_mut(store: &mut Store) -> &mut BTreeMap<ObjKey, Self> {
                &mut store.$field
            }
            fn into_object(self) -> Object {
                Object::$variant(Box::new(self))
            }
        })*

        impl Kind {
            /// Every kind, in registry order.
            pub const ALL: [Kind; [$(Kind::$variant),*].len()] = [$(Kind::$variant),*];

            /// Runs `f` with this kind's Rust type.
            pub fn with<F: KindFn>(self, f: F) -> F::Output {
                match self {
                    $(Kind::$variant => f.call::<$ty>(),)*
                }
            }

            /// The Kubernetes kind name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }
        }

        impl Object {
            /// Runs `f` with the object as its own type.
            pub fn with<F: ObjectFn>(self, f: F) -> F::Output {
                match self {
                    $(Object::$variant(o) => f.call(*o),)*
                }
            }

            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)*
                }
            }

            pub(super) fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.meta(),)*
                }
            }

            pub(super) fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.meta_mut(),)*
                }
            }
        }
    };
}
registry!(define_kinds);

impl Kind {
    /// The kind a manifest's `apiVersion` and `kind` name, if Gatehouse reads it.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        struct InGroup<'a>(&'a str);
        impl KindFn for InGroup<'_> {
            type Output = bool;
            fn call<K: StoredKind>(self) -> bool {
                K::group(&()) == self.0
            }
        }
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == kind && k.with(InGroup(group)))
    }

    /// True for kinds without a namespace.
    pub fn cluster_scoped(self) -> bool {
        struct Scoped;
        impl KindFn for Scoped {
            type Output = bool;
            fn call<K: StoredKind>(self) -> bool {
                !K::NAMESPACED
            }
        }
        self.with(Scoped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry's kind names are kube's, so manifests and the API server agree with it.
    #[test]
    fn names_are_the_types_own() {
        struct Own;
        impl KindFn for Own {
            type Output = (Kind, String, String);
            fn call<K: StoredKind>(self) -> Self::Output {
                (K::KIND, K::kind(&()).into(), K::api_version(&()).into())
            }
        }
        for kind in Kind::ALL {
            let (of_type, name, api_version) = kind.with(Own);
            assert_eq!((of_type, kind.name()), (kind, name.as_str()));
            assert_eq!(Kind::from_type_meta(&api_version, &name), Some(kind));
        }
        assert_eq!(
            Kind::ALL.iter().filter(|k| k.cluster_scoped()).count(),
            2,
            "GatewayClass and Namespace"
        );
        assert_eq!(Kind::from_type_meta("v1", "HTTPRoute"), None);
    }

    /// The controller's watch of a kind its role cannot list never syncs, and until every kind
    /// has synced nothing is served; the README's RBAC table is what the chart's ClusterRole is
    /// tested against (`tests/offline/helm_chart.rs`).
    #[test]
    fn the_controller_may_watch_every_kind() {
        let grants: Vec<(&str, Vec<&str>, &str)> = include_str!("../../README.md")
            .lines()
            .filter_map(|line| {
                let [_, group, resources, verbs, _] = line.split('|').collect::<Vec<_>>()[..]
                else {
                    return None;
                };
                let group = group.split('`').nth(1)?.trim_matches('"');
                Some((group, resources.trim().split(", ").collect(), verbs))
            })
            .collect();
        struct Resource;
        impl KindFn for Resource {
            type Output = (String, String);
            fn call<K: StoredKind>(self) -> Self::Output {
                (K::group(&()).into(), K::plural(&()).into())
            }
        }
        for kind in Kind::ALL {
            let (group, plural) = kind.with(Resource);
            assert!(
                grants.iter().any(|(g, resources, verbs)| *g == group
                    && resources.contains(&plural.as_str())
                    && verbs.contains("list")
                    && verbs.contains("watch")),
                "the README's RBAC table grants no list and watch of {plural} (API group {group:?})"
            );
        }
    }
}
