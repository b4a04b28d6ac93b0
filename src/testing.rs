//! Helpers for unit tests: stores from YAML text.

use std::path::Path;

use crate::source::files::load_str;
use crate::store::Store;

/// A store holding the objects of `yaml`; panics on load errors so tests fail loudly.
pub fn store(yaml: &str) -> Store {
    let out = load_str(Path::new("test.yaml"), yaml);
    assert!(
        out.errors.is_empty(),
        "fixture does not load: {:?}",
        out.errors
    );
    let mut store = Store::new();
    for o in out.objects {
        store.apply(o);
    }
    store
}

/// A Gateway `infra/gw` (one HTTP listener on 8080, routes from every namespace) and a Service
/// `app/web:80`: what model tests of one route build on.
pub const GATEWAY_AND_WEB: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec: {ports: [{name: http, port: 80}]}
"#;

// Builders for one object each. Every one returns a YAML document starting with `---`, so they
// concatenate with each other and with the constants above in any order.

/// One YAML document: `apiVersion`, `kind`, `metadata: {METADATA}`, then `rest` (block lines,
/// each ending in a newline; empty for none).
fn object(api_version: &str, kind: &str, metadata: &str, rest: &str) -> String {
    format!(
        r"---
apiVersion: {api_version}
kind: {kind}
metadata: {{{metadata}}}
{rest}"
    )
}

/// [`object`] named `ns/name` whose `spec` is the YAML flow mapping body `spec`.
fn namespaced(api_version: &str, kind: &str, ns: &str, name: &str, spec: &str) -> String {
    object(
        api_version,
        kind,
        &format!("name: {name}, namespace: {ns}"),
        &format!("spec: {{{spec}}}\n"),
    )
}

const KGATEWAY: &str = "gateway.kgateway.dev/v1alpha1";
const GATEWAY_API: &str = "gateway.networking.k8s.io/v1";

/// A reference to `kind`/`name` in `gateway.networking.k8s.io`, optionally to one section:
/// `{group: gateway.networking.k8s.io, kind: KIND, name: NAME[, sectionName: SECTION]}`.
pub fn target_ref(kind: &str, name: &str, section: Option<&str>) -> String {
    let section = section
        .map(|s| format!(", sectionName: {s}"))
        .unwrap_or_default();
    format!("{{group: gateway.networking.k8s.io, kind: {kind}, name: {name}{section}}}")
}

/// A TrafficPolicy `ns/name` targeting one `target_kind` `target` (or one of its sections) with
/// `extAuth: ext_auth` (a YAML flow value such as `{disable: {}}`).
pub fn traffic_policy(
    ns: &str,
    name: &str,
    target_kind: &str,
    target: &str,
    section: Option<&str>,
    ext_auth: &str,
) -> String {
    let target = target_ref(target_kind, target, section);
    object(
        KGATEWAY,
        "TrafficPolicy",
        &format!("name: {name}, namespace: {ns}"),
        &format!("spec:\n  targetRefs: [{target}]\n  extAuth: {ext_auth}\n"),
    )
}

/// A TrafficPolicy `ns/name` whose `spec` is the YAML flow mapping body `spec` (without braces).
pub fn traffic_policy_spec(ns: &str, name: &str, spec: &str) -> String {
    namespaced(KGATEWAY, "TrafficPolicy", ns, name, spec)
}

/// A ReferenceGrant `to_ns/g` letting `from_kind` objects of `from_ns` refer to every `to_kind`
/// object of `to_ns` (both kinds in `gateway.kgateway.dev`).
pub fn reference_grant(from_kind: &str, from_ns: &str, to_kind: &str, to_ns: &str) -> String {
    grant(from_kind, from_ns, to_kind, to_ns, "")
}

/// [`reference_grant`] narrowed to the one `to_kind` object `to_name`.
pub fn reference_grant_to(
    from_kind: &str,
    from_ns: &str,
    to_kind: &str,
    to_ns: &str,
    to_name: &str,
) -> String {
    grant(
        from_kind,
        from_ns,
        to_kind,
        to_ns,
        &format!(", name: {to_name}"),
    )
}

/// A ReferenceGrant `to_ns/g` with one `from` and one `to`, each a YAML flow mapping.
pub fn reference_grant_raw(to_ns: &str, from: &str, to: &str) -> String {
    object(
        "gateway.networking.k8s.io/v1beta1",
        "ReferenceGrant",
        &format!("name: g, namespace: {to_ns}"),
        &format!("spec:\n  from: [{from}]\n  to: [{to}]\n"),
    )
}

fn grant(from_kind: &str, from_ns: &str, to_kind: &str, to_ns: &str, to_name: &str) -> String {
    object(
        "gateway.networking.k8s.io/v1beta1",
        "ReferenceGrant",
        &format!("name: g, namespace: {to_ns}"),
        &format!(
            r"spec:
  from: [{{group: gateway.kgateway.dev, kind: {from_kind}, namespace: {from_ns}}}]
  to: [{{group: gateway.kgateway.dev, kind: {to_kind}{to_name}}}]
"
        ),
    )
}

/// A GatewayExtension `ns/name` with `extAuth` the YAML flow mapping body `ext_auth` (without
/// braces), e.g. `grpcService: {backendRef: {name: authz, port: 9000}}`.
pub fn gateway_extension(ns: &str, name: &str, ext_auth: &str) -> String {
    gateway_extension_spec(ns, name, &format!("extAuth: {{{ext_auth}}}"))
}

/// A GatewayExtension `ns/name` whose `spec` is the YAML flow mapping body `spec`.
pub fn gateway_extension_spec(ns: &str, name: &str, spec: &str) -> String {
    namespaced(KGATEWAY, "GatewayExtension", ns, name, spec)
}

/// A GatewayParameters `ns/name` whose `spec` is the YAML flow mapping body `spec`.
pub fn gateway_parameters(ns: &str, name: &str, spec: &str) -> String {
    namespaced(KGATEWAY, "GatewayParameters", ns, name, spec)
}

/// A GatewayClass `name` of the controller `controller` (with `extra` appended to its spec
/// mapping body, e.g. `, parametersRef: {...}`, or empty).
pub fn gateway_class(name: &str, controller: &str, extra: &str) -> String {
    object(
        GATEWAY_API,
        "GatewayClass",
        &format!("name: {name}"),
        &format!("spec: {{controllerName: {controller}{extra}}}\n"),
    )
}

/// A Gateway `ns/name` of class `class` whose `spec` continues with the YAML flow mapping
/// entries `rest`, e.g. `listeners: [{name: http, protocol: HTTP, port: 80}]`.
pub fn gateway(ns: &str, name: &str, class: &str, rest: &str) -> String {
    namespaced(
        GATEWAY_API,
        "Gateway",
        ns,
        name,
        &format!("gatewayClassName: {class}, {rest}"),
    )
}

/// An HTTPRoute `ns/name`. `parent` is a Gateway `ns/name` or a bare `name` (same namespace),
/// or empty for no parentRefs; `hosts` may be empty; `rules` are the block sequence items under
/// `rules:`, each line indented by two spaces (`  - backendRefs: [...]\n`).
pub fn http_route(ns: &str, name: &str, parent: &str, hosts: &[&str], rules: &str) -> String {
    let parent = match parent.split_once('/') {
        _ if parent.is_empty() => String::new(),
        Some((gw_ns, gw)) => format!("  parentRefs: [{{name: {gw}, namespace: {gw_ns}}}]\n"),
        None => format!("  parentRefs: [{{name: {parent}}}]\n"),
    };
    let hosts = if hosts.is_empty() {
        String::new()
    } else {
        format!("  hostnames: [{}]\n", hosts.join(", "))
    };
    object(
        GATEWAY_API,
        "HTTPRoute",
        &format!("name: {name}, namespace: {ns}"),
        &format!("spec:\n{parent}{hosts}  rules:\n{rules}"),
    )
}

/// A Service `ns/name` with the one unnamed port `port`.
pub fn service(ns: &str, name: &str, port: u16) -> String {
    namespaced(
        "v1",
        "Service",
        ns,
        name,
        &format!("ports: [{{port: {port}}}]"),
    )
}

/// A Namespace `name`.
pub fn namespace(name: &str) -> String {
    bare("v1", "Namespace", None, name)
}

/// An object of `kind` with nothing but its name (and namespace, if any): no spec.
pub fn bare(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> String {
    let ns = ns
        .map(|ns| format!(", namespace: {ns}"))
        .unwrap_or_default();
    object(api_version, kind, &format!("name: {name}{ns}"), "")
}

/// An EndpointSlice `ns/name` of the Service `service`; `rest` is the block after its metadata
/// (`addressType`, `ports`, `endpoints`).
pub fn endpoint_slice(ns: &str, name: &str, service: &str, rest: &str) -> String {
    let metadata =
        format!("name: {name}, namespace: {ns}, labels: {{kubernetes.io/service-name: {service}}}");
    object("discovery.k8s.io/v1", "EndpointSlice", &metadata, rest)
}
