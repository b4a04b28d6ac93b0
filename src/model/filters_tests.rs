use std::time::Duration;

use super::*;
use crate::testing::{http_route, store};

const MIRROR: &str = "apiVersion: v1
kind: Service
metadata: {name: mirror, namespace: app}
spec: {ports: [{name: http, port: 80}]}
";

fn routes(route: &str) -> Vec<RouteModel> {
    let m = build(
        &store(&format!(
            "{}---\n{MIRROR}---\n{route}",
            crate::testing::GATEWAY_AND_WEB
        )),
        &ModelConfig::default(),
    );
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    gw.ports[0]
        .virtual_hosts
        .iter()
        .flat_map(|v| v.routes.iter().map(|r| (**r).clone()))
        .collect()
}

fn route_with(rule: &str) -> RouteModel {
    let text = http_route("app", "r", "infra/gw", &[], &format!("  - {rule}\n"));
    routes(&text).into_iter().next().expect("one route")
}

#[test]
fn unresolved_backends_keep_their_weight_as_an_invalid_share() {
    let r = route_with(
        "backendRefs: [{name: web, port: 80, weight: 3}, {name: missing, port: 80, weight: 1}]",
    );
    let RouteAction::Forward(b) = &r.action else {
        panic!("{:?}", r.action)
    };
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].cluster, ClusterKey::Invalid);
    assert_eq!((b[0].weight, b[1].weight), (3, 1));
    // Only unresolved backends: everything answers 500.
    let r = route_with("backendRefs: [{name: missing, port: 80}]");
    assert!(
        matches!(r.action, RouteAction::Respond { status: 500, .. }),
        "{:?}",
        r.action
    );
}

#[test]
fn header_modifiers_rewrites_and_mirrors_are_read() {
    let r = route_with(
        "filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Set, value: a}], add: [{name: X-Add, value: b}], remove: [X-Gone]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: X-Resp, value: c}]}
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example.com, path: {type: ReplaceFullPath, replaceFullPath: /new}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 80}, percent: 25}
    backendRefs: [{name: web, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Backend, value: web}]}}]}]",
    );
    let f = &r.filters;
    assert_eq!(f.request_headers.set, [("x-set".into(), "a".into())]);
    assert_eq!(f.request_headers.add, [("x-add".into(), "b".into())]);
    assert_eq!(f.request_headers.remove, ["x-gone"]);
    assert_eq!(f.response_headers.add, [("x-resp".into(), "c".into())]);
    let rw = f.rewrite.clone().expect("rewrite");
    assert_eq!(rw.hostname.as_deref(), Some("rewritten.example.com"));
    assert_eq!(rw.path, Some(PathRewrite::Full("/new".into())));
    assert_eq!(f.mirrors.len(), 1);
    assert_eq!(
        (f.mirrors[0].numerator, f.mirrors[0].denominator),
        (25, 100)
    );
    let RouteAction::Forward(b) = &r.action else {
        panic!()
    };
    assert_eq!(
        b[0].request_headers.set,
        [("x-backend".into(), "web".into())]
    );
}

#[test]
fn redirect_wins_over_backends() {
    let r = route_with(
        "filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
    backendRefs: [{name: web, port: 80}]",
    );
    let RouteAction::Redirect(rd) = &r.action else {
        panic!("{:?}", r.action)
    };
    assert_eq!(rd.scheme.as_deref(), Some("https"));
    assert_eq!(rd.status, 301);
    assert_eq!(rd.path, Some(PathRewrite::Prefix("/new".into())));
}

#[test]
fn timeouts_and_retries_are_parsed() {
    let r = route_with(
        "timeouts: {request: 2s, backendRequest: 500ms}
    retry: {codes: [503], attempts: 3, backoff: 100ms}
    backendRefs: [{name: web, port: 80}]",
    );
    assert_eq!(r.filters.request_timeout, Some(Duration::from_secs(2)));
    assert_eq!(r.filters.backend_timeout, Some(Duration::from_millis(500)));
    let retry = r.filters.retry.expect("retry");
    assert_eq!((retry.codes, retry.attempts), (vec![503], 3));
    assert_eq!(retry.backoff, Some(Duration::from_millis(100)));
}

#[test]
fn an_unresolved_mirror_is_dropped_and_reported() {
    let text = http_route(
        "app",
        "r",
        "infra/gw",
        &[],
        r"  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: nowhere, port: 80}}}]
    backendRefs: [{name: web, port: 80}]
",
    );
    let m = build(
        &store(&format!(
            "{}---\n{MIRROR}---\n{text}",
            crate::testing::GATEWAY_AND_WEB
        )),
        &ModelConfig::default(),
    );
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let r = &gw.ports[0].virtual_hosts[0].routes[0];
    assert!(r.filters.mirrors.is_empty());
    assert!(
        matches!(r.action, RouteAction::Forward(_)),
        "the route still serves"
    );
    let parents = &m.status.http_routes[&ObjKey::new("app", "r")];
    let refs = parents[0]
        .conditions
        .iter()
        .find(|c| c.type_ == "ResolvedRefs")
        .expect("ResolvedRefs");
    assert_eq!(refs.reason, "BackendNotFound");
}
