//! Gateway API's `ExternalAuth` HTTPRoute filter (GEP-1494, experimental channel), served by the
//! same engine as GatewayExtensions: the filter becomes an inline provider of its rule.
//!
//! The filter is part of the route itself, so it decides the rule's auth ahead of any
//! TrafficPolicy. `forwardBody.maxSize` truncates larger bodies, as the GEP specifies.

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRules, HttpRouteRulesFiltersExternalAuth,
    HttpRouteRulesFiltersExternalAuthProtocol as Protocol, HttpRouteRulesFiltersType,
};

use super::extensions::ProviderResult;
use super::refs::{self, RefError};
use super::types::{ProviderService, UpstreamProtocol};
use super::{validate, validate_auth};
use crate::api::{
    AuthorizationResponse, BackendRef, ExtAuthBufferSettings, ExtAuthProvider, ExtGrpcService,
    ExtHttpService,
};
use crate::store::{ObjKey, Store};

/// The provider key of rule `rule_index`'s inline filter: `ROUTE:ruleN:externalauth` in the
/// route's namespace. `:` cannot appear in a Kubernetes name, so no GatewayExtension can take
/// this key over (the names were `ROUTE.ruleN.externalauth` before, which one could).
pub fn inline_key(route: &ObjKey, rule_index: usize) -> ObjKey {
    ObjKey::new(
        route.namespace.clone(),
        format!("{}:rule{rule_index}:externalauth", route.name),
    )
}

/// The inline provider of a rule's `ExternalAuth` filter, if it has one.
pub fn resolve(
    store: &Store,
    route: &ObjKey,
    rule: &HttpRouteRules,
    rule_index: usize,
) -> Option<(ObjKey, ProviderResult)> {
    let filter = rule
        .filters
        .iter()
        .flatten()
        .find(|f| f.r#type == HttpRouteRulesFiltersType::ExternalAuth)?;
    let key = inline_key(route, rule_index);
    let result = match &filter.external_auth {
        None => Err(RefError::new(
            "InvalidFilter",
            "an ExternalAuth filter needs externalAuth settings",
        )),
        Some(ea) => match validate_auth::inline_filter(rule_index, ea) {
            problems if problems.is_empty() => provider(store, route, &key, ea),
            problems => Err(RefError::new("InvalidFilter", validate::summary(&problems))),
        },
    };
    Some((key, result))
}

fn provider(
    store: &Store,
    route: &ObjKey,
    key: &ObjKey,
    ea: &HttpRouteRulesFiltersExternalAuth,
) -> ProviderResult {
    let b = &ea.backend_ref;
    let service = refs::resolve_route_backend(
        store,
        route,
        b.group.as_deref(),
        b.kind.as_deref(),
        b.namespace.as_deref(),
        &b.name,
        b.port,
    )?;
    let backend_ref = BackendRef {
        group: b.group.clone(),
        kind: b.kind.clone(),
        name: b.name.clone(),
        namespace: b.namespace.clone(),
        port: b.port,
    };
    let (service_spec, headers, protocol) = match ea.protocol {
        Protocol::Grpc => (
            ProviderService::Grpc(ExtGrpcService {
                backend_ref,
                ..Default::default()
            }),
            ea.grpc.as_ref().and_then(|g| g.allowed_headers.clone()),
            UpstreamProtocol::H2c,
        ),
        Protocol::Http => (
            ProviderService::Http(ExtHttpService {
                backend_ref,
                path_prefix: ea.http.as_ref().and_then(|h| h.path.clone()),
                authorization_response: ea
                    .http
                    .as_ref()
                    .and_then(|h| h.allowed_response_headers.clone())
                    .map(|headers| AuthorizationResponse {
                        headers_to_backend: Some(headers),
                        ..Default::default()
                    }),
                ..Default::default()
            }),
            ea.http.as_ref().and_then(|h| h.allowed_headers.clone()),
            service.protocol,
        ),
    };
    let spec = ExtAuthProvider {
        headers_to_forward: headers,
        with_request_body: ea
            .forward_body
            .as_ref()
            .and_then(|f| f.max_size)
            .map(|max| ExtAuthBufferSettings {
                max_request_bytes: i32::try_from(max).unwrap_or(i32::MAX).max(1),
                allow_partial_message: Some(true),
                pack_as_bytes: None,
            }),
        ..Default::default()
    };
    Ok(super::extensions::assemble(
        key,
        spec,
        service_spec,
        service,
        protocol,
    ))
}
