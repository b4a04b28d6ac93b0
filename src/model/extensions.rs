//! GatewayExtensions → resolved auth providers, with their own status.

use std::collections::BTreeMap;

use super::conditions::{Condition, Status};
use super::refs::{self, RefError, ResolvedService, ServiceRef};
use super::types::{
    BackendHeaders, ClusterKey, ClusterModel, Provider, ProviderService, UpstreamProtocol,
};
use super::{validate, validate_auth};
use crate::api::{BackendRef, ExtAuthProvider, GROUP, GatewayExtension};
use crate::model::condition_names as cond;
use crate::store::{ObjKey, Store};

/// A provider ready to use, or why it is not.
pub type ProviderResult = Result<(Provider, ClusterModel), RefError>;

/// Resolves every GatewayExtension and records `Accepted`/`ResolvedRefs` on each.
pub fn providers(store: &Store, status: &mut Status) -> BTreeMap<ObjKey, ProviderResult> {
    let mut out = BTreeMap::new();
    for (key, ext) in &store.gateway_extensions {
        let result = resolve(store, key, ext);
        let conditions = match &result {
            Ok(_) => vec![
                Condition::ok(cond::ACCEPTED, cond::ACCEPTED, "ext auth provider is valid"),
                Condition::ok(
                    cond::RESOLVED_REFS,
                    cond::RESOLVED_REFS,
                    "backendRef resolved",
                ),
            ],
            Err(e) if e.reason == cond::INVALID_SPEC => vec![
                Condition::fail(cond::ACCEPTED, cond::INVALID_SPEC, e.message.clone()),
                Condition::fail(cond::RESOLVED_REFS, cond::INVALID_SPEC, "spec is invalid"),
            ],
            Err(e) => vec![
                Condition::ok(cond::ACCEPTED, cond::ACCEPTED, "ext auth provider is valid"),
                Condition::fail(cond::RESOLVED_REFS, e.reason, e.message.clone()),
            ],
        };
        status.gateway_extensions.insert(key.clone(), conditions);
        out.insert(key.clone(), result);
    }
    out
}

fn resolve(store: &Store, key: &ObjKey, ext: &GatewayExtension) -> ProviderResult {
    let invalid = |m: &str| RefError::new(cond::INVALID_SPEC, m);
    let spec = ext
        .spec
        .ext_auth
        .as_ref()
        .ok_or_else(|| invalid("extAuth must be set"))?;
    let (backend, protocol, service_spec): (
        &BackendRef,
        Option<UpstreamProtocol>,
        ProviderService,
    ) = match (&spec.grpc_service, &spec.http_service) {
        (Some(g), None) => (
            &g.backend_ref,
            Some(UpstreamProtocol::H2c),
            ProviderService::Grpc(g.clone()),
        ),
        (None, Some(h)) => (&h.backend_ref, None, ProviderService::Http(h.clone())),
        _ => {
            return Err(invalid(
                "exactly one of grpcService or httpService must be set",
            ));
        }
    };
    let problems = validate_auth::provider(spec);
    if !problems.is_empty() {
        return Err(invalid(&validate::summary(&problems)));
    }
    let from = refs::From {
        group: GROUP,
        kind: "GatewayExtension",
        namespace: &key.namespace,
    };
    let service = refs::resolve_service(
        store,
        &from,
        &ServiceRef {
            group: backend.group.as_deref(),
            kind: backend.kind.as_deref(),
            namespace: backend.namespace.as_deref().unwrap_or(&key.namespace),
            name: &backend.name,
            port: backend.port,
        },
    )?;
    // gRPC needs HTTP/2 whatever the Service port is called.
    let protocol = protocol.unwrap_or(service.protocol);
    Ok(assemble(key, spec.clone(), service_spec, service, protocol))
}

/// A provider and its cluster, once its Service resolved.
pub fn assemble(
    key: &ObjKey,
    spec: ExtAuthProvider,
    service_spec: ProviderService,
    service: ResolvedService,
    protocol: UpstreamProtocol,
) -> (Provider, ClusterModel) {
    let cluster_key = ClusterKey::Auth {
        extension: key.clone(),
    };
    let authority = format!(
        "{}.{}.svc:{}",
        service.key.name, service.key.namespace, service.port
    );
    let cluster = ClusterModel {
        key: cluster_key.clone(),
        service: service.key,
        port: service.port,
        protocol,
        endpoints: service.endpoints,
        tls: service.tls,
    };
    let provider = Provider {
        key: key.clone(),
        spec,
        service: service_spec,
        backend_headers: BackendHeaders::Listed,
        cluster: cluster_key,
        authority,
    };
    (provider, cluster)
}
