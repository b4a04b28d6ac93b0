use std::path::Path;

use super::load_str;
use crate::store::{Kind, Object};
use crate::testing::{
    bare, gateway_extension, gateway_extension_spec, http_route, traffic_policy_spec,
};

fn load(text: &str) -> super::FileLoad {
    load_str(Path::new("m.yaml"), text)
}

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: app}
spec:
  parentRefs: [{name: gw}]
";

#[test]
fn malformed_document_does_not_stop_the_others() {
    let text = format!("{ROUTE}---\nkind: [unclosed\n---\n{ROUTE}");
    let out = load(&text);
    assert_eq!(
        out.objects.len(),
        2,
        "both valid routes load: {:?}",
        out.errors
    );
    assert_eq!(out.errors.len(), 1);
    let e = &out.errors[0];
    assert_eq!(e.document, 2);
    let shown = e.to_string();
    assert!(
        shown.starts_with("m.yaml document 2: invalid YAML (document starts at line 7)"),
        "{shown}"
    );
}

#[test]
fn wrong_field_type_names_object_and_field() {
    let text = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {name: http, protocol: HTTP, port: eighty}
";
    let out = load(text);
    assert!(out.objects.is_empty());
    let shown = out.errors[0].to_string();
    assert!(shown.contains("(Gateway infra/gw)"), "{shown}");
    assert!(shown.contains("field `spec.listeners[0].port`"), "{shown}");
}

#[test]
fn unknown_kind_is_a_warning_not_an_error() {
    let text = format!("{}---\n{ROUTE}", bare("apps/v1", "Deployment", None, "d"));
    let out = load(&text);
    assert!(out.errors.is_empty());
    assert_eq!(out.objects.len(), 1);
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("apps/v1 Deployment d"),
        "{}",
        out.warnings[0]
    );
}

/// A field no schema has is an error naming it, in every kind (as `kubectl apply` reports it);
/// kgateway fields Gatehouse keeps but does not serve load, and so do values under them.
#[test]
fn unknown_fields_are_errors_naming_the_field() {
    let cases = [
        (
            traffic_policy_spec(
                "a",
                "p",
                "targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}], extAuth: {disable: {}}, jwtAuth2: {}",
            ),
            Some("unknown field `spec.jwtAuth2`"),
        ),
        (
            traffic_policy_spec(
                "a",
                "p",
                "targetSelectors: [{group: gateway.networking.k8s.io, kind: HTTPRoute, matchLabels: {a: b}, selector: x}]",
            ),
            Some("unknown field `spec.targetSelectors[0].selector`"),
        ),
        (
            http_route(
                "a",
                "r",
                "",
                &[],
                "  - {backendRefs: [{name: s, port: 80, wieght: 1}]}\n",
            ),
            Some("unknown field `spec.rules[0].backendRefs[0].wieght`"),
        ),
        (
            traffic_policy_spec(
                "a",
                "p",
                "targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}], jwtAuth: {anything: [1]}, cors: {x: y}",
            ),
            None,
        ),
    ];
    for (text, want) in cases {
        let out = load(&text);
        match want {
            Some(want) => {
                assert_eq!(out.errors.len(), 1, "{text}");
                assert!(
                    out.errors[0].message.contains(want),
                    "{}",
                    out.errors[0].message
                );
                // A refused route or policy stays, marked, so the model fails it closed.
                let refused: Vec<_> = out
                    .objects
                    .iter()
                    .map(|o| {
                        let meta = match o {
                            Object::TrafficPolicy(p) => &p.metadata,
                            Object::HttpRoute(r) => &r.metadata,
                            other => panic!("{other:?} kept"),
                        };
                        let annotations = meta.annotations.as_ref();
                        annotations
                            .and_then(|a| a.get(crate::api::REFUSED_ANNOTATION))
                            .cloned()
                    })
                    .collect();
                assert_eq!(refused.len(), 1, "{text}");
                assert!(
                    refused[0].as_deref().is_some_and(|m| m.contains(want)),
                    "{refused:?}"
                );
            }
            None => assert!(
                out.errors.is_empty() && out.objects.len() == 1,
                "{:?}",
                out.errors
            ),
        }
    }
}

#[test]
fn policy_with_extension_ref_and_disable_is_rejected_by_cel() {
    let text = "apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: both, namespace: app}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  extAuth:
    extensionRef: {name: ext}
    disable: {}
";
    let out = load(text);
    // Kept, marked refused: the model fails its targets closed (a dropped policy would leave
    // them unprotected).
    let [Object::TrafficPolicy(p)] = out.objects.as_slice() else {
        panic!("{:?}", out.objects)
    };
    let refused = p
        .metadata
        .annotations
        .as_ref()
        .map(|a| a.contains_key(crate::api::REFUSED_ANNOTATION));
    assert_eq!(refused, Some(true));
    let shown = out.errors[0].to_string();
    assert!(shown.contains("(TrafficPolicy app/both)"), "{shown}");
    assert!(
        shown.contains("exactly one of extensionRef or disable must be set"),
        "{shown}"
    );
}

#[test]
fn extension_cel_rules_are_enforced() {
    let ext = |body: &str| gateway_extension("auth", "e", body);
    let cases = [
        (
            "grpcService: {backendRef: {name: a, port: 1}}, httpService: {backendRef: {name: a, port: 1}}",
            "exactly one of grpcService or httpService",
        ),
        (
            "grpcService: {backendRef: {name: a, port: 1}}, statusOnError: 600",
            "statusOnError must be between 100 and 511",
        ),
        (
            "grpcService: {backendRef: {name: a, port: 1}, requestTimeout: 5 seconds}",
            "invalid timeout value",
        ),
        (
            "grpcService: {backendRef: {name: a, port: 1}, retry: {backoff: {baseInterval: 2s, maxInterval: 1s}}}",
            "maxInterval must be greater than or equal to baseInterval",
        ),
    ];
    for (body, want) in cases {
        let out = load(&ext(body));
        assert!(out.objects.is_empty(), "{body} should be rejected");
        let shown = out.errors[0].to_string();
        assert!(shown.contains(want), "{body}: {shown}");
    }
    let ok = load(&ext(
        "grpcService: {backendRef: {name: a, port: 1}, requestTimeout: 1s500ms}, statusOnError: 503",
    ));
    assert!(ok.errors.is_empty(), "{:?}", ok.errors);
    assert_eq!(ok.objects.len(), 1);
}

#[test]
fn namespaced_objects_without_namespace_land_in_default() {
    let out = load(&(bare("v1", "Service", None, "s") + "spec: {ports: [{port: 80}]}\n"));
    let [Object::Service(svc)] = out.objects.as_slice() else {
        panic!("{:?}", out.errors)
    };
    assert_eq!(svc.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(out.objects[0].kind(), Kind::Service);
}

#[test]
fn missing_kind_and_non_mapping_documents_are_errors() {
    let out = load("metadata: {name: x}\n---\n- a\n- b\n");
    let messages: Vec<_> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        ["missing apiVersion or kind", "document is not a mapping"]
    );
}

#[test]
fn list_items_are_loaded() {
    let out = load(
        r"apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: a}}
- {apiVersion: v1, kind: Namespace, metadata: {name: b}}
",
    );
    assert_eq!(out.objects.len(), 2);
}

/// A watched file replaced by a directory drops the file's objects (no endless rescan), and
/// an unchanged file is not parsed again.
#[test]
fn a_file_turned_directory_is_dropped_and_unchanged_files_are_not_reread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, ROUTE).expect("write");
    let mut src = super::DirSource::new(dir.path());
    assert!(src.rescan());
    assert_eq!(src.store().http_routes.len(), 1);
    assert!(!src.reload(&file), "unchanged file is not news");
    assert!(!src.rescan(), "nothing changed");
    std::fs::remove_file(&file).expect("rm");
    std::fs::create_dir(&file).expect("mkdir");
    assert!(src.reload(&file), "the file's objects are gone");
    assert!(src.store().http_routes.is_empty());
    assert!(!src.rescan());
}

#[test]
fn names_the_api_server_would_refuse_are_load_errors() {
    // Quoted: some of the names are not plain YAML scalars.
    let ext = |name: &str, ns: &str| {
        gateway_extension_spec(
            &format!("'{ns}'"),
            &format!("'{name}'"),
            "type: ExtAuth, extAuth: {grpcService: {backendRef: {name: a, port: 1}}}",
        )
    };
    // The key of an inline ExternalAuth provider is out of reach of every object.
    for (name, ns) in [
        ("filtered:rule0:externalauth", "app"),
        ("Upper", "app"),
        ("a/b", "app"),
        ("-a", "app"),
        ("ok", "Bad_NS"),
        ("ok", "a.b"),
    ] {
        let out = load(&ext(name, ns));
        assert!(out.objects.is_empty(), "{name} in {ns} loaded");
        assert!(
            out.errors[0].to_string().contains("RFC 1123"),
            "{}",
            out.errors[0]
        );
    }
    assert_eq!(
        load(&ext("filtered.rule0.externalauth", "app"))
            .objects
            .len(),
        1
    );
}

/// A Secret that does not decode is reported without the value serde could not take: it may
/// be a private key.
#[test]
fn a_secret_that_does_not_decode_is_reported_without_its_values() {
    let out = load(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: a}\ntype: kubernetes.io/tls\nstringData: \"-----BEGIN PRIVATE KEY-----\\nMIIEvQ-secret-bytes\"\n",
    );
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let text = format!("{:?}", out.errors[0]);
    assert!(text.contains("stringData"), "{text}");
    assert!(
        !text.contains("PRIVATE") && !text.contains("secret-bytes"),
        "{text}"
    );
}
