use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::standard::{
    gatewayclasses::GatewayClass, gateways::Gateway, referencegrants::ReferenceGrant,
};
use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    discovery::v1::EndpointSlice,
};
use kube::Resource;

use super::ObjKey;
use crate::api::{GatewayExtension, GatewayParameters, TrafficPolicy};

/// The kinds Gatehouse reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    GatewayClass,
    Gateway,
    HttpRoute,
    ReferenceGrant,
    GatewayExtension,
    TrafficPolicy,
    GatewayParameters,
    Service,
    EndpointSlice,
    Namespace,
}

impl Kind {
    /// Every kind, in the order sources should sync them.
    pub const ALL: [Kind; 10] = [
        Kind::Namespace,
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::ReferenceGrant,
        Kind::GatewayExtension,
        Kind::TrafficPolicy,
        Kind::GatewayParameters,
        Kind::Service,
        Kind::EndpointSlice,
    ];

    /// The kind a manifest's `apiVersion` and `kind` name, if Gatehouse reads it.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let found = match (group, kind) {
            ("gateway.networking.k8s.io", "GatewayClass") => Kind::GatewayClass,
            ("gateway.networking.k8s.io", "Gateway") => Kind::Gateway,
            ("gateway.networking.k8s.io", "HTTPRoute") => Kind::HttpRoute,
            ("gateway.networking.k8s.io", "ReferenceGrant") => Kind::ReferenceGrant,
            ("gateway.kgateway.dev", "GatewayExtension") => Kind::GatewayExtension,
            ("gateway.kgateway.dev", "TrafficPolicy") => Kind::TrafficPolicy,
            ("gateway.kgateway.dev", "GatewayParameters") => Kind::GatewayParameters,
            ("", "Service") => Kind::Service,
            ("discovery.k8s.io", "EndpointSlice") => Kind::EndpointSlice,
            ("", "Namespace") => Kind::Namespace,
            _ => return None,
        };
        Some(found)
    }

    /// True for kinds without a namespace.
    pub fn cluster_scoped(self) -> bool {
        matches!(self, Kind::GatewayClass | Kind::Namespace)
    }

    /// The Kubernetes kind name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::GatewayExtension => "GatewayExtension",
            Kind::TrafficPolicy => "TrafficPolicy",
            Kind::GatewayParameters => "GatewayParameters",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Namespace => "Namespace",
        }
    }
}

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

/// One object of a kind Gatehouse reads. Boxed: the variants differ a lot in size.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    GatewayClass(Box<GatewayClass>),
    Gateway(Box<Gateway>),
    HttpRoute(Box<HttpRoute>),
    ReferenceGrant(Box<ReferenceGrant>),
    GatewayExtension(Box<GatewayExtension>),
    TrafficPolicy(Box<TrafficPolicy>),
    GatewayParameters(Box<GatewayParameters>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Namespace(Box<Namespace>),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::GatewayClass(_) => Kind::GatewayClass,
            Object::Gateway(_) => Kind::Gateway,
            Object::HttpRoute(_) => Kind::HttpRoute,
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::GatewayExtension(_) => Kind::GatewayExtension,
            Object::TrafficPolicy(_) => Kind::TrafficPolicy,
            Object::GatewayParameters(_) => Kind::GatewayParameters,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Namespace(_) => Kind::Namespace,
        }
    }

    fn meta(&self) -> &kube::core::ObjectMeta {
        match self {
            Object::GatewayClass(o) => o.meta(),
            Object::Gateway(o) => o.meta(),
            Object::HttpRoute(o) => o.meta(),
            Object::ReferenceGrant(o) => o.meta(),
            Object::GatewayExtension(o) => o.meta(),
            Object::TrafficPolicy(o) => o.meta(),
            Object::GatewayParameters(o) => o.meta(),
            Object::Service(o) => o.meta(),
            Object::EndpointSlice(o) => o.meta(),
            Object::Namespace(o) => o.meta(),
        }
    }

    /// The object's key; namespaced objects without a namespace land in `default`, as kubectl
    /// would put them.
    pub fn key(&self) -> ObjKey {
        let meta = self.meta();
        let name = meta.name.clone().unwrap_or_default();
        if self.kind().cluster_scoped() {
            ObjKey::cluster(name)
        } else {
            let ns = meta
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            ObjKey::new(ns, name)
        }
    }

    /// Kind and key.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind(),
            key: self.key(),
        }
    }
}
