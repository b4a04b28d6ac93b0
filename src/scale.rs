//! Manifests at a scale, for benchmarks (`benches/`, `bench/`): Gateways, HTTPRoutes (one hostname each), backend
//! Services with EndpointSlices, one ext auth provider and TrafficPolicies on some routes.

use std::fmt::Write as _;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub gateways: usize,
    pub routes: usize,
    /// TrafficPolicies, each protecting one route with the provider.
    pub policies: usize,
    /// Backend Services the routes spread over.
    pub services: usize,
}

impl Scale {
    /// The shape: 10 Gateways, 100 policies per 1,000 routes, a Service per 10 routes.
    pub fn routes(routes: usize) -> Scale {
        Scale {
            gateways: 10,
            routes,
            policies: (routes / 10).max(1),
            services: (routes / 10).max(1),
        }
    }
}

/// Where the generated objects point.
#[derive(Clone, Debug)]
pub struct Targets {
    pub listener_port: u16,
    pub backend_ip: String,
    pub backend_port: u16,
    pub authz_ip: String,
    pub authz_port: u16,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            listener_port: 8080,
            backend_ip: "10.0.0.1".into(),
            backend_port: 3000,
            authz_ip: "10.0.0.2".into(),
            authz_port: 9000,
        }
    }
}

pub const NAMESPACE: &str = "bench";

/// Hostname of route `i`.
pub fn host(i: usize) -> String {
    format!("r{i}.bench.example.com")
}

/// Route `i` (attached to Gateway `i % gateways`, backend `i % services`); `version` changes
/// its path so a rewrite is a real change.
pub fn route(i: usize, scale: &Scale, version: usize) -> String {
    let gw = i % scale.gateways;
    let svc = i % scale.services;
    let host = host(i);
    let path = if version == 0 {
        "/".to_string()
    } else {
        format!("/v{version}")
    };
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}, namespace: {NAMESPACE}}}\nspec:\n  parentRefs: [{{name: gw-{gw}}}]\n  hostnames: [{host}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backendRefs: [{{name: svc-{svc}, port: 80}}]\n"
    )
}

/// Every object of `scale`.
pub fn manifests(scale: &Scale, t: &Targets) -> String {
    let mut out = String::with_capacity(scale.routes * 400);
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: gatehouse}}\nspec: {{controllerName: gatehouse.dev/gatehouse}}\n"
    );
    for g in 0..scale.gateways {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw-{g}, namespace: {NAMESPACE}}}\nspec:\n  gatewayClassName: gatehouse\n  listeners: [{{name: http, protocol: HTTP, port: {}}}]\n",
            t.listener_port
        );
    }
    for s in 0..scale.services {
        out.push_str(&service(s, t));
    }
    let _ = write!(
        out,
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: authz, namespace: {NAMESPACE}}}\nspec: {{ports: [{{name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: authz, namespace: {NAMESPACE}, labels: {{kubernetes.io/service-name: authz}}}}\naddressType: IPv4\nports: [{{name: grpc, port: {}}}]\nendpoints: [{{addresses: [{}]}}]\n---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: GatewayExtension\nmetadata: {{name: authz, namespace: {NAMESPACE}}}\nspec: {{type: ExtAuth, extAuth: {{grpcService: {{backendRef: {{name: authz, port: 9000}}}}}}}}\n",
        t.authz_port, t.authz_ip
    );
    for i in 0..scale.routes {
        out.push_str(&route(i, scale, 0));
    }
    for p in 0..scale.policies {
        out.push_str(&policy(p, scale));
    }
    out
}

/// Backend Service `s` and its EndpointSlice.
pub fn service(s: usize, t: &Targets) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: {NAMESPACE}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: svc-{s}, namespace: {NAMESPACE}, labels: {{kubernetes.io/service-name: svc-{s}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [{}]}}]\n",
        t.backend_port, t.backend_ip
    )
}

/// Policy `p`: ext auth on the route `p * routes / policies` (spread over the Gateways).
pub fn policy(p: usize, scale: &Scale) -> String {
    let target = p * scale.routes / scale.policies.max(1);
    format!(
        "---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: p{p}, namespace: {NAMESPACE}}}\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r{target}}}]\n  extAuth: {{extensionRef: {{name: authz}}}}\n"
    )
}

/// The route index policy `p` protects.
pub fn protected_route(p: usize, scale: &Scale) -> usize {
    p * scale.routes / scale.policies.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_manifests_load_and_serve_every_route() {
        let scale = Scale::routes(100);
        let store = crate::testing::store(&manifests(&scale, &Targets::default()));
        assert_eq!(store.http_routes.len(), 100);
        assert_eq!(store.traffic_policies.len(), 10);
        let model = crate::model::build(&store, &crate::model::ModelConfig::default());
        assert_eq!(model.gateways.len(), 10);
        let routes: usize = model
            .gateways
            .iter()
            .flat_map(|g| &g.ports)
            .flat_map(|p| &p.virtual_hosts)
            .map(|v| v.routes.len())
            .sum();
        assert_eq!(routes, 100);
        let protected = model
            .gateways
            .iter()
            .flat_map(|g| &g.ports)
            .flat_map(|p| &p.virtual_hosts)
            .flat_map(|v| &v.routes)
            .filter(|r| matches!(r.auth, crate::model::RouteAuth::Enabled { .. }))
            .count();
        assert_eq!(protected, 10);
    }
}
