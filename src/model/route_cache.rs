//! The route-cache-clearing guard (Envoy's ext_authz security note): a provider with
//! `clearRouteCache: true` makes Envoy pick the route again after the auth service changed
//! headers. Filters that already ran do not run again, so the request can land on a route
//! whose auth differs from what was checked. Gatehouse emits no other filter that clears the
//! route cache; where a provider does, the deciding policies get a warning condition.

use std::collections::{BTreeMap, BTreeSet};

use super::conditions::{Condition, Status};
use super::types::{GatewayModel, RouteAuth};
use crate::model::condition_names as cond;
use crate::store::ObjKey;

/// Condition type of the warning; `False` means the risk exists.
pub const CONDITION: &str = cond::ROUTE_CACHE_SAFE;

/// Adds the warning to every policy that enables a route-cache-clearing provider on a port
/// where other routes are checked differently (another provider, auth off, or none).
pub fn warn(gateways: &[std::sync::Arc<GatewayModel>], status: &mut Status) {
    for gw in gateways {
        // Most Gateways have no such provider: skip walking their routes (every route of
        // every Gateway, each build).
        if !gw
            .providers
            .values()
            .any(|p| p.spec.clear_route_cache.unwrap_or(false))
        {
            continue;
        }
        let mut risky: BTreeMap<ObjKey, BTreeSet<String>> = BTreeMap::new();
        for port in &gw.ports {
            let routes: Vec<_> = port.virtual_hosts.iter().flat_map(|v| &v.routes).collect();
            for r in &routes {
                let RouteAuth::Enabled {
                    provider, policy, ..
                } = &r.auth
                else {
                    continue;
                };
                let clears = gw
                    .providers
                    .get(provider)
                    .and_then(|p| p.spec.clear_route_cache)
                    .unwrap_or(false);
                if !clears {
                    continue;
                }
                let differs = routes.iter().any(
                    |o| !matches!(&o.auth, RouteAuth::Enabled { provider: p, .. } if p == provider),
                );
                if differs {
                    risky
                        .entry(policy.clone())
                        .or_default()
                        .insert(format!("{}:{}", provider, port.port));
                }
            }
        }
        for (policy, where_) in risky {
            let Some(ancestors) = status.traffic_policies.get_mut(&policy) else {
                continue;
            };
            for a in std::sync::Arc::make_mut(ancestors).iter_mut().filter(|a| {
                a.ancestor_ref.kind == "Gateway"
                    && a.ancestor_ref.namespace == gw.key.namespace
                    && a.ancestor_ref.name == gw.key.name
            }) {
                a.conditions.push(Condition::fail(
                    CONDITION,
                    cond::CLEAR_ROUTE_CACHE,
                    format!(
                        "provider {} sets clearRouteCache on a listener whose other routes are checked differently; a header the auth service adds can re-route a request to a route whose own auth never runs. Set clearRouteCache: false or give those routes the same provider",
                        where_.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, build, find};
    use crate::testing;

    const WORLD: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec: {gatewayClassName: x, listeners: [{name: http, protocol: HTTP, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: private, namespace: ns}
spec: {parentRefs: [{name: gw}], rules: [{matches: [{path: {value: /private}}], backendRefs: [{name: svc, port: 80}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: ns}
spec: {parentRefs: [{name: gw}], rules: [{matches: [{path: {value: /public}}], backendRefs: [{name: svc, port: 80}]}]}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {name: ext, namespace: ns}
spec: {extAuth: {grpcService: {backendRef: {name: svc, port: 80}}, clearRouteCache: CLEAR}}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: protect, namespace: ns}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: private}]
  extAuth: {extensionRef: {name: ext}}
";

    fn warning(clear: bool, extra: &str) -> Option<Condition> {
        let store = testing::store(&(WORLD.replace("CLEAR", &clear.to_string()) + extra));
        let m = build(&store, &ModelConfig::default());
        let ancestors = &m.status.traffic_policies[&ObjKey::new("ns", "protect")];
        find(&ancestors[0].conditions, CONDITION).cloned()
    }

    #[test]
    fn clearing_provider_next_to_an_unprotected_route_is_flagged() {
        let w = warning(true, "").expect("warning");
        assert_eq!((w.status, w.reason.as_str()), ("False", "ClearRouteCache"));
        assert!(w.message.contains("ns/ext:80"), "{}", w.message);
        assert_eq!(warning(false, ""), None, "no clearing, no risk");
        let same = testing::traffic_policy(
            "ns",
            "protect-public",
            "HTTPRoute",
            "public",
            None,
            "{extensionRef: {name: ext}}",
        );
        assert_eq!(
            warning(true, &same),
            None,
            "every route checked by the same provider"
        );
    }
}
