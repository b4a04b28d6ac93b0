//! Gateway API manifests the tests write again and again, as builders of readable YAML.

/// The walkthrough's GatewayClass and Gateway `kgateway-system/http` with these listeners
/// (YAML flow mappings, one per line item).
pub fn gateway_manifest(listeners: &[String]) -> String {
    format!(
        "{}---\n{}",
        gateway_class("gatehouse", "gatehouse.dev/gatehouse"),
        gateway("kgateway-system", "http", "gatehouse", listeners)
    )
}

/// GatewayClass `name` of the controller `controller`.
pub fn gateway_class(name: &str, controller: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {name}}}
spec: {{controllerName: {controller}}}
"
    )
}

/// Gateway `namespace/name` of class `class` with these listeners (YAML flow mappings, one per
/// line item).
pub fn gateway(namespace: &str, name: &str, class: &str, listeners: &[String]) -> String {
    let items: String = listeners.iter().map(|l| format!("  - {l}\n")).collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  gatewayClassName: {class}
  listeners:
{items}"
    )
}

/// An HTTP listener of `port` admitting routes from every namespace.
pub fn http_listener(name: &str, hostname: Option<&str>, port: u16) -> String {
    let host = hostname.map_or(String::new(), |h| format!(", hostname: \"{h}\""));
    format!(
        "{{name: {name}{host}, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}"
    )
}

/// Gateway `namespace/http` with one HTTP listener on `port`, of a class another controller
/// (`example.com/other`) owns: not Gatehouse's to serve or provision.
pub fn foreign_gateway(namespace: &str, port: impl std::fmt::Display) -> String {
    format!(
        "{}---\n{}",
        gateway_class("theirs", "example.com/other"),
        gateway(
            namespace,
            "http",
            "theirs",
            &[format!("{{name: http, protocol: HTTP, port: {port}}}")]
        )
    )
}

/// ReferenceGrant `namespace/name` letting TrafficPolicies in `httpbin` name GatewayExtensions
/// in `namespace`; `policy_grant("kgateway-system", "policies-use-auth")` lets them use the
/// walkthrough's `basic-ext-auth`.
pub fn policy_grant(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  from: [{{group: gateway.kgateway.dev, kind: TrafficPolicy, namespace: httpbin}}]
  to: [{{group: gateway.kgateway.dev, kind: GatewayExtension}}]
"
    )
}

/// The walkthrough's HTTPRoute shape without labels: `httpbin/name` for `host` on Gateway
/// `kgateway-system/http`, with `rules` (YAML list items indented by two spaces).
pub fn route(name: &str, host: &str, rules: &str) -> String {
    http_route(name, host, "", rules)
}

/// One rule sending everything to `httpbin:8000`.
pub const TO_HTTPBIN: &str = "  - backendRefs: [{name: httpbin, port: 8000}]\n";

/// Two rules `a` and `b` on the paths `/a` and `/b`, both to `httpbin:8000`.
pub const RULES_A_B: &str = "  - name: a
    matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: httpbin, port: 8000}]
  - name: b
    matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs: [{name: httpbin, port: 8000}]
";

/// HTTPRoute `httpbin/NAME` on the walkthrough's Gateway for `host`, with `labels` (a YAML
/// flow mapping's body) and `rules` (YAML list items indented by two spaces).
pub fn http_route(name: &str, host: &str, labels: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: httpbin, labels: {{{labels}}}}}
spec:
  parentRefs: [{{name: http, namespace: kgateway-system}}]
  hostnames: [{host}]
  rules:
{rules}"
    )
}
