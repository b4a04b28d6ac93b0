//! Cross-object references: ReferenceGrants, Services and their ports, EndpointSlices.

use std::sync::Arc;

use gateway_api::apis::standard::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{Service, ServicePort};

use super::types::{Endpoint, UpstreamProtocol, UpstreamTls};
use crate::model::condition_names as cond;
use crate::store::{ObjKey, ObjectRef, Store};

/// Why a reference does not resolve, with the Gateway API reason it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefError {
    pub reason: &'static str,
    pub message: String,
}

impl RefError {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The object a reference comes from, for ReferenceGrant `from` matching.
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// True when a reference from `from` to `to_group/to_kind` named `to` may cross namespaces.
pub fn permitted(
    store: &Store,
    from: &From<'_>,
    to_group: &str,
    to_kind: &str,
    to: &ObjKey,
) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    store
        .reference_grants
        .iter()
        .filter(|(key, _)| key.namespace == to.namespace)
        .any(|(_, grant)| grant_allows(grant, from, to_group, to_kind, &to.name))
}

fn grant_allows(
    grant: &ReferenceGrant,
    from: &From<'_>,
    group: &str,
    kind: &str,
    name: &str,
) -> bool {
    let from_ok = grant
        .spec
        .from
        .iter()
        .any(|f| f.group == from.group && f.kind == from.kind && f.namespace == from.namespace);
    let to_ok =
        grant.spec.to.iter().any(|t| {
            t.group == group && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name)
        });
    from_ok && to_ok
}

/// A Service port a reference resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedService {
    pub key: ObjKey,
    pub port: u16,
    pub protocol: UpstreamProtocol,
    pub endpoints: Arc<Vec<Endpoint>>,
    /// TLS a BackendTLSPolicy asks for.
    pub tls: Option<Arc<UpstreamTls>>,
}

/// A reference to a Service, as routes and extensions write it.
pub struct ServiceRef<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub namespace: &'a str,
    pub name: &'a str,
    pub port: Option<i32>,
}

/// The fields every HTTPRoute backendRef shape has (rule backends, mirrors, ExternalAuth):
/// the gateway-api crate generates one type per place, with the same fields.
pub trait RouteBackend {
    fn service_ref<'a>(&'a self, default_namespace: &'a str) -> ServiceRef<'a>;
}

macro_rules! route_backend {
    ($($ty:ty),*) => {$(
        impl RouteBackend for $ty {
            fn service_ref<'a>(&'a self, default_namespace: &'a str) -> ServiceRef<'a> {
                ServiceRef {
                    group: self.group.as_deref(),
                    kind: self.kind.as_deref(),
                    namespace: self.namespace.as_deref().unwrap_or(default_namespace),
                    name: &self.name,
                    port: self.port,
                }
            }
        }
    )*};
}

route_backend!(
    gateway_api::apis::experimental::httproutes::HttpRouteRulesBackendRefs,
    gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersRequestMirrorBackendRef,
    gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersExternalAuthBackendRef
);

/// Resolves a backendRef written in route `route`, an HTTPRoute or a GRPCRoute (which supplies
/// the grant's `from` and the default namespace).
pub fn resolve_route_backend(
    store: &Store,
    route: &ObjectRef,
    backend: &impl RouteBackend,
) -> Result<ResolvedService, RefError> {
    let from = From {
        group: "gateway.networking.k8s.io",
        kind: route.kind.name(),
        namespace: &route.key.namespace,
    };
    resolve_service(store, &from, &backend.service_ref(&route.key.namespace))
}

/// Resolves a Service reference: kind, grant, existence, port, endpoints.
pub fn resolve_service(
    store: &Store,
    from: &From<'_>,
    r: &ServiceRef<'_>,
) -> Result<ResolvedService, RefError> {
    let group = r.group.unwrap_or("");
    let kind = r.kind.unwrap_or("Service");
    if !(group.is_empty() || group == "core") || kind != "Service" {
        return Err(RefError::new(
            cond::INVALID_KIND,
            format!("backend kind {group}/{kind} is not supported; use a core Service"),
        ));
    }
    let key = ObjKey::new(r.namespace, r.name);
    if !permitted(store, from, "", "Service", &key) {
        return Err(RefError::new(
            cond::REF_NOT_PERMITTED,
            format!(
                "no ReferenceGrant in namespace {} allows {} {}/* to reference Service {key}",
                key.namespace, from.kind, from.namespace
            ),
        ));
    }
    let service = store.services.get(&key).ok_or_else(|| {
        RefError::new(cond::BACKEND_NOT_FOUND, format!("Service {key} not found"))
    })?;
    let Some(port) = r.port else {
        return Err(RefError::new(
            cond::BACKEND_NOT_FOUND,
            format!("reference to Service {key} needs a port"),
        ));
    };
    let service_port = find_port(service, port).ok_or_else(|| {
        RefError::new(
            cond::BACKEND_NOT_FOUND,
            format!("Service {key} has no port {port}"),
        )
    })?;
    let tls = super::backend_tls::for_port(store, &key, service_port)
        .map_err(|why| RefError::new(cond::INVALID_BACKEND_TLS_POLICY, why))?;
    Ok(ResolvedService {
        port: port as u16,
        protocol: protocol_of(service_port),
        endpoints: endpoints(store, &key, service_port),
        tls,
        key,
    })
}

fn find_port(service: &Service, port: i32) -> Option<&ServicePort> {
    service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == port)
}

fn protocol_of(port: &ServicePort) -> UpstreamProtocol {
    match port.app_protocol.as_deref() {
        Some("kubernetes.io/h2c" | "h2c" | "grpc") => UpstreamProtocol::H2c,
        _ => UpstreamProtocol::Http1,
    }
}

/// Ready endpoints of a Service port, from the EndpointSlices labelled with the Service's name
/// (the store keeps them by slice port name).
fn endpoints(store: &Store, service: &ObjKey, port: &ServicePort) -> Arc<Vec<Endpoint>> {
    store.endpoints_of(service, port.name.as_deref().unwrap_or(""))
}
