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
use super::types::{BackendHeaders, ProviderService, UpstreamProtocol};
use super::{validate, validate_auth};
use crate::api::{
    AuthorizationResponse, BackendRef, ExtAuthBufferSettings, ExtAuthProvider, ExtGrpcService,
    ExtHttpService,
};
use crate::store::{ObjKey, ObjectRef, Store};

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
    route: &ObjectRef,
    rule: &HttpRouteRules,
    rule_index: usize,
) -> Option<(ObjKey, ProviderResult)> {
    let filter = rule
        .filters
        .iter()
        .flatten()
        .find(|f| f.r#type == HttpRouteRulesFiltersType::ExternalAuth)?;
    let key = inline_key(&route.key, rule_index);
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
    route: &ObjectRef,
    key: &ObjKey,
    ea: &HttpRouteRulesFiltersExternalAuth,
) -> ProviderResult {
    let b = &ea.backend_ref;
    let service = refs::resolve_route_backend(store, route, b)?;
    let backend_ref = BackendRef {
        group: b.group.clone(),
        kind: b.kind.clone(),
        name: b.name.clone(),
        namespace: b.namespace.clone(),
        port: b.port,
    };
    // GEP-1494 reads an absent list as an empty one (the Go field is `omitempty`): "If this list
    // is empty, then all headers from the authorization server except Authority or Host must be
    // copied". Envoy's HTTP service copies none unless `allowed_upstream_headers` names them,
    // so the empty case is a match-all list narrowed by mutation rules (`translate::ext_authz`).
    // A gRPC service's answer lists the headers to set and Envoy sets all of them, which is
    // what the GEP leaves it to do: the filter has no response-header list for gRPC.
    let mut backend_headers = BackendHeaders::Listed;
    let (service_spec, headers, protocol) = match ea.protocol {
        Protocol::Grpc => (
            ProviderService::Grpc(ExtGrpcService {
                backend_ref,
                ..Default::default()
            }),
            ea.grpc
                .as_ref()
                .and_then(|g| g.allowed_headers.clone())
                .filter(|h| !h.is_empty()),
            UpstreamProtocol::H2c,
        ),
        Protocol::Http => {
            let listed = ea
                .http
                .as_ref()
                .and_then(|h| h.allowed_response_headers.clone())
                .filter(|headers| !headers.is_empty());
            if listed.is_none() {
                backend_headers = BackendHeaders::AllButHost;
            }
            (
                ProviderService::Http(ExtHttpService {
                    backend_ref,
                    path_prefix: ea.http.as_ref().and_then(|h| h.path.clone()),
                    authorization_response: listed.map(|headers| AuthorizationResponse {
                        headers_to_backend: Some(headers),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ea.http
                    .as_ref()
                    .and_then(|h| h.allowed_headers.clone())
                    .filter(|h| !h.is_empty()),
                service.protocol,
            )
        }
    };
    // GEP-1494: an empty `allowedHeaders` is the default — every header for gRPC; Host,
    // Method, Path, Content-Length and Authorization for HTTP — which is what Envoy sends
    // when the list is unset (an empty Envoy list would be refused).
    let spec = ExtAuthProvider {
        headers_to_forward: headers,
        // GEP-1494: "If 0, the body will not be sent to the authorization server", so 0 is
        // the same as no `forwardBody`: nothing is buffered (Envoy has no zero-byte buffer; its
        // minimum of 1 would hold up every request for a byte the server is not meant to see).
        with_request_body: ea
            .forward_body
            .as_ref()
            .and_then(|f| f.max_size)
            .filter(|max| *max > 0)
            .map(|max| ExtAuthBufferSettings {
                max_request_bytes: i32::try_from(max).unwrap_or(i32::MAX),
                allow_partial_message: Some(true),
                pack_as_bytes: None,
            }),
        ..Default::default()
    };
    let (mut provider, cluster) =
        super::extensions::assemble(key, spec, service_spec, service, protocol);
    provider.backend_headers = backend_headers;
    Ok((provider, cluster))
}

#[cfg(test)]
mod tests {
    use crate::model::{BackendHeaders, ModelConfig, Provider, ProviderService, build};
    use crate::store::ObjKey;
    use crate::testing::{GATEWAY_AND_WEB, http_route, service, store};

    /// The one inline provider of a route whose only rule carries `settings`.
    fn provider(settings: &str) -> Provider {
        let route = http_route(
            "app",
            "r",
            "infra/gw",
            &[],
            &format!(
                "  - filters: [{{type: ExternalAuth, externalAuth: {{{settings}}}}}]\n    backendRefs: [{{name: web, port: 80}}]\n"
            ),
        );
        let yaml = format!("{GATEWAY_AND_WEB}{}{route}", service("app", "authz", 9000));
        let m = build(&store(&yaml), &ModelConfig::default());
        let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
        let mut providers = gw.providers.values();
        let p = providers
            .next()
            .unwrap_or_else(|| panic!("{settings}: no provider"));
        assert!(providers.next().is_none());
        p.clone()
    }

    #[test]
    fn a_zero_max_size_forwards_no_body_like_no_forward_body() {
        for (forward, bytes) in [
            ("", None),
            (", forwardBody: {}", None),
            (", forwardBody: {maxSize: 0}", None),
            (", forwardBody: {maxSize: 1}", Some(1)),
            (", forwardBody: {maxSize: 8192}", Some(8192)),
        ] {
            for protocol in ["GRPC", "HTTP"] {
                let p = provider(&format!(
                    "protocol: {protocol}, backendRef: {{name: authz, port: 9000}}{forward}"
                ));
                let got = p.spec.with_request_body.map(|b| b.max_request_bytes);
                assert_eq!(got, bytes, "{protocol}{forward}");
            }
        }
    }

    #[test]
    fn an_empty_or_absent_allowed_response_headers_list_copies_all_but_host() {
        let http = "protocol: HTTP, backendRef: {name: authz, port: 9000}";
        for (http_block, expected, listed) in [
            ("", BackendHeaders::AllButHost, None),
            (", http: {}", BackendHeaders::AllButHost, None),
            (
                ", http: {allowedResponseHeaders: []}",
                BackendHeaders::AllButHost,
                None,
            ),
            (
                ", http: {allowedResponseHeaders: [x-user]}",
                BackendHeaders::Listed,
                Some(vec!["x-user".to_string()]),
            ),
        ] {
            let p = provider(&format!("{http}{http_block}"));
            assert_eq!(p.backend_headers, expected, "{http_block}");
            let ProviderService::Http(h) = &p.service else {
                panic!("{http_block}: not HTTP")
            };
            let got = h
                .authorization_response
                .as_ref()
                .and_then(|r| r.headers_to_backend.clone());
            assert_eq!(got, listed, "{http_block}");
        }
    }

    #[test]
    fn an_empty_allowed_headers_list_is_the_protocols_default() {
        for protocol in ["GRPC", "HTTP"] {
            let block = protocol.to_lowercase();
            for (list, expected) in [
                ("", None),
                (&*format!(", {block}: {{allowedHeaders: []}}"), None),
                (
                    &*format!(", {block}: {{allowedHeaders: [authorization]}}"),
                    Some(vec!["authorization".to_string()]),
                ),
            ] {
                let p = provider(&format!(
                    "protocol: {protocol}, backendRef: {{name: authz, port: 9000}}{list}"
                ));
                assert_eq!(p.spec.headers_to_forward, expected, "{protocol}{list}");
            }
        }
    }
}
