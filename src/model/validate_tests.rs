//! Each value Envoy 1.40 refuses (measured with `envoy --mode validate`) costs only its own rule,
//! provider or policy, with a status that names the field.

use super::validate_auth::format_string;
use super::*;
use crate::testing::store;

const BASE: &str = crate::testing::GATEWAY_AND_WEB;

fn route(rules: &str) -> String {
    crate::testing::http_route("app", "r", "infra/gw", &["r.example.com"], rules)
}

fn model(extra: &str) -> Model {
    build(
        &store(&format!("{BASE}---\n{extra}")),
        &ModelConfig::default(),
    )
}

fn served(m: &Model) -> Vec<RouteModel> {
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    gw.ports
        .iter()
        .flat_map(|p| p.virtual_hosts.iter())
        .flat_map(|v| v.routes.iter().map(|r| (**r).clone()))
        .collect()
}

fn route_conditions(m: &Model) -> Vec<Condition> {
    let key = ObjKey::new("app", "r");
    m.status
        .http_routes
        .get(&key)
        .map(|s| s[0].conditions.clone())
        .unwrap_or_default()
}

/// One rule with `rule` (YAML of the rule's fields, indented for `  - `) plus a valid rule.
fn check_rule(rule: &str, field: &str, match_dropped: bool) {
    let rules = format!(
        "  - {rule}\n    backendRefs: [{{name: web, port: 80}}]\n  - matches: [{{path: {{type: PathPrefix, value: /ok}}}}]\n    backendRefs: [{{name: web, port: 80}}]\n"
    );
    let m = model(&route(&rules));
    let conditions = route_conditions(&m);
    let accepted = find(&conditions, "Accepted").expect("Accepted");
    assert!(accepted.is_true(), "{rule}: {conditions:?}");
    let partial = find(&conditions, "PartiallyInvalid")
        .unwrap_or_else(|| panic!("{rule}: no PartiallyInvalid in {conditions:?}"));
    assert_eq!(
        (partial.status, partial.reason.as_str()),
        ("True", "UnsupportedValue"),
        "{rule}"
    );
    assert!(
        partial.message.starts_with("Dropped Rule 0") && partial.message.contains(field),
        "{rule}: {}",
        partial.message
    );
    let routes = served(&m);
    let bad: Vec<_> = routes.iter().filter(|r| r.rule_index == 0).collect();
    if match_dropped && rule.contains("PathPrefix") {
        // A prefix no request path can have matches nothing: left out.
        assert!(bad.is_empty(), "{rule}: {bad:?}");
    } else {
        // A match Envoy cannot take stays as its broader, fail-closed stand-in, so none of its
        // requests falls through to another rule.
        assert!(!bad.is_empty(), "{rule}: the rule's matches stay");
    }
    for r in &bad {
        // What is served is valid as it is: the stand-in of a valid match is itself.
        assert_eq!(
            crate::model::validate_route::fail_closed_stand_in(&r.matches).as_ref(),
            Some(&r.matches),
            "{rule}"
        );
    }
    for r in bad {
        assert!(
            matches!(r.action, RouteAction::Respond { status: 500, .. }),
            "{rule}: {:?}",
            r.action
        );
        assert_eq!(r.filters, RouteFilters::default(), "{rule}");
    }
    let ok = routes
        .iter()
        .find(|r| r.rule_index == 1)
        .expect("valid rule");
    assert!(matches!(ok.action, RouteAction::Forward(_)), "{rule}");
}

#[test]
fn each_value_envoy_refuses_costs_only_its_rule() {
    let cases: Vec<(String, &str, bool)> = vec![
        // Filters Gatehouse does not serve are never skipped: the rule answers 500.
        (
            "filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Filter, name: f}}]".into(),
            "spec.rules[0].filters[0].type: ExtensionRef to example.com/Filter \"f\" is not supported",
            false,
        ),
        // A TrafficPolicy named by a rule attaches to it; one that does not exist fails it.
        (
            "filters: [{type: ExtensionRef, extensionRef: {group: gateway.kgateway.dev, kind: TrafficPolicy, name: p}}]".into(),
            "spec.rules[0].filters[0].extensionRef: ExtensionRef names TrafficPolicy app/p, which does not exist",
            false,
        ),
        (
            "filters: [{type: CORS, cors: {allowOrigins: ['https://a.example']}}]".into(),
            "spec.rules[0].filters[0].type: CORS is not supported",
            false,
        ),
        // RE2 program too large for Envoy (size 1005 > 100), and RE2-only syntax errors.
        (
            "matches: [{path: {type: RegularExpression, value: '/a{1000}'}}]".into(),
            "spec.rules[0].matches[0].path.value: the regular expression compiles to an RE2 program of size 1005",
            true,
        ),
        (
            "matches: [{path: {type: RegularExpression, value: '/(ab|cd|ef|gh|ij|kl|mn|op){3,10}'}}]".into(),
            "larger than the 100 Envoy allows",
            true,
        ),
        (
            "matches: [{path: {type: RegularExpression, value: 'a**'}}]".into(),
            "not a valid RE2 regular expression: bad repetition operator: **",
            true,
        ),
        (
            "matches: [{path: {type: RegularExpression, value: '\\Z'}}]".into(),
            "invalid escape sequence",
            true,
        ),
        (
            "matches: [{headers: [{type: RegularExpression, name: x, value: '(a'}]}]".into(),
            "spec.rules[0].matches[0].headers[0].value",
            true,
        ),
        (
            "matches: [{queryParams: [{type: RegularExpression, name: q, value: 'x{2000}'}]}]"
                .into(),
            "spec.rules[0].matches[0].queryParams[0].value",
            true,
        ),
        (
            "matches: [{path: {type: PathPrefix, value: '/a?b'}}]".into(),
            "must not contain '?' or '#'",
            true,
        ),
        // Header mutations Envoy refuses: Host and pseudo-headers, CR/LF/NUL.
        (
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: evil}]}}]".into(),
            "spec.rules[0].filters[0].requestHeaderModifier.set[0].name: \"Host\" cannot be set or removed",
            false,
        ),
        (
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [host]}}]"
                .into(),
            "requestHeaderModifier.remove[0]",
            false,
        ),
        (
            "filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x, value: \"a\\r\\nb\"}]}}]".into(),
            "responseHeaderModifier.add[0].value: must not contain CR, LF or NUL",
            false,
        ),
        (
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: 'a b', value: v}]}}]".into(),
            "is not a valid header name",
            false,
        ),
        (
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: \"nul\\0\"}]}}]".into(),
            "set[0].value",
            false,
        ),
        // Redirects and rewrites.
        (
            "filters: [{type: RequestRedirect, requestRedirect: {hostname: \"a\\nb\"}}]".into(),
            "requestRedirect.hostname",
            false,
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: \"/a\\r\"}}}]".into(),
            "urlRewrite.path.replaceFullPath",
            false,
        ),
        (
            "filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]".into(),
            "requestRedirect.statusCode",
            false,
        ),
        // Envoy refuses a zero retry back-off.
        (
            "retry: {attempts: 2, backoff: 0s}".into(),
            "spec.rules[0].retry.backoff: must be at least 1ms",
            false,
        ),
        (
            "timeouts: {backendRequest: 99999h99999h}".into(),
            "spec.rules[0].timeouts.backendRequest: \"99999h99999h\" is not a Gateway API duration: Duration exceeds GEP-2257 maximum",
            false,
        ),
        (
            "timeouts: {request: soon}".into(),
            "spec.rules[0].timeouts.request",
            false,
        ),
    ];
    for (rule, field, dropped) in &cases {
        check_rule(rule, field, *dropped);
    }
}

#[test]
fn backend_level_header_filters_are_checked_too() {
    let rules = "  - backendRefs: [{name: web, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: ':path', value: /x}]}}]}]\n";
    let m = model(&route(rules));
    let c = route_conditions(&m);
    let accepted = find(&c, "Accepted").expect("Accepted");
    assert_eq!(accepted.reason, "UnsupportedValue", "{c:?}");
    assert!(!accepted.is_true());
    assert!(
        accepted
            .message
            .contains("spec.rules[0].backendRefs[0].filters[0].requestHeaderModifier.set[0].name"),
        "{}",
        accepted.message
    );
    // Still served: its match answers 500 instead of falling through to another route.
    let r = served(&m);
    assert!(matches!(
        r[0].action,
        RouteAction::Respond { status: 500, .. }
    ));
}

#[test]
fn literal_percent_and_valid_values_are_accepted() {
    let rules = "  - matches: [{path: {type: RegularExpression, value: '/(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p){3,10}'}}]\n    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-pct, value: '100%'}], add: [{name: x-fmt, value: '%REQ(x)%'}]}}]\n    backendRefs: [{name: web, port: 80}]\n";
    let m = model(&route(rules));
    let c = route_conditions(&m);
    assert!(
        find(&c, "Accepted").is_some_and(Condition::is_true),
        "{c:?}"
    );
    assert!(find(&c, "PartiallyInvalid").is_none(), "{c:?}");
    let r = served(&m);
    assert_eq!(r[0].filters.request_headers.set[0].1, "100%");
}

#[test]
fn invalid_hostnames_keep_the_route_off_the_gateway() {
    let text = route("  - backendRefs: [{name: web, port: 80}]\n")
        .replace("[r.example.com]", "[r.example.com, R.Example.com]");
    let m = model(&text);
    let c = route_conditions(&m);
    let accepted = find(&c, "Accepted").expect("Accepted");
    assert_eq!(
        (accepted.status, accepted.reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert!(
        accepted.message.contains("spec.hostnames[1]"),
        "{accepted:?}"
    );
    assert!(served(&m).is_empty());
}

const EXTENSION: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: app}
spec: {ports: [{port: 9000}]}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: p, namespace: app}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  extAuth: {extensionRef: {name: ext}}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {name: ext, namespace: app}
spec:
  type: ExtAuth
  extAuth:
"#;

#[test]
fn provider_values_envoy_refuses_fail_its_policies_closed() {
    let cases = [
        (
            "    statusOnError: 199\n    grpcService: {backendRef: {name: authz, port: 9000}}",
            "spec.extAuth.statusOnError: Envoy has no HTTP status 199",
        ),
        (
            "    grpcService: {backendRef: {name: authz, port: 9000}, authority: \"a\\nb\"}",
            "spec.extAuth.grpcService.authority",
        ),
        (
            "    grpcService: {backendRef: {name: authz, port: 9000}, retry: {backoff: {baseInterval: 0s}}}",
            "spec.extAuth.grpcService.retry.backoff.baseInterval: must be at least 1ms",
        ),
        (
            "    httpService: {backendRef: {name: authz, port: 9000}, pathPrefix: check}",
            "spec.extAuth.httpService.pathPrefix",
        ),
        (
            "    httpService: {backendRef: {name: authz, port: 9000}, authorizationRequest: {headersToAdd: {x-rate: '100%'}}}",
            "never closed (write %% for a literal %)",
        ),
        (
            "    httpService: {backendRef: {name: authz, port: 9000}, authorizationRequest: {headersToAdd: {host: a}}}",
            "cannot be set or removed",
        ),
    ];
    let rules = "  - backendRefs: [{name: web, port: 80}]\n";
    for (spec, field) in cases {
        let m = model(&format!("{}---{EXTENSION}{spec}\n", route(rules)));
        let ext = &m.status.gateway_extensions[&ObjKey::new("app", "ext")];
        let accepted = find(ext, "Accepted").expect("Accepted");
        assert_eq!(accepted.reason, "InvalidSpec", "{spec}");
        assert!(
            accepted.message.contains(field),
            "{spec}: {}",
            accepted.message
        );
        let r = served(&m);
        assert!(
            matches!(r[0].auth, RouteAuth::FailClosed { .. })
                && matches!(r[0].action, RouteAction::Respond { status: 500, .. }),
            "{spec}: {:?}",
            r[0]
        );
        // No provider of it reaches the listener.
        let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
        assert!(gw.providers.is_empty(), "{spec}");
    }
}

/// The CRD's CEL rule refuses this at load; the model refuses it too, for stores filled some
/// other way.
#[test]
fn policy_values_envoy_refuses_are_problems() {
    let policy: crate::api::ExtAuthPolicy = serde_json::from_value(serde_json::json!({
        "extensionRef": {"name": "ext"},
        "withRequestBody": {"maxRequestBytes": 0}
    }))
    .expect("policy");
    let problems = super::validate_auth::policy(&policy);
    assert_eq!(
        problems[0].to_string(),
        "spec.extAuth.withRequestBody.maxRequestBytes: must be at least 1"
    );
}

#[test]
fn format_strings_take_only_known_commands() {
    for ok in [
        "",
        "plain",
        "100%%",
        "%%%%",
        "%REQ(x-user)%",
        "a%REQ(:path):10%b",
        "%REQ(x?y)%",
        "%DOWNSTREAM_REMOTE_ADDRESS%-%START_TIME%",
        "%DYNAMIC_METADATA(ns:key)%",
    ] {
        assert_eq!(format_string(ok), Ok(()), "{ok}");
    }
    for bad in [
        "100%",
        "%",
        "%a%",
        "%FOO%",
        "%REQ()%",
        "%REQ%",
        "%UPSTREAM_HOST:5%",
        "%HOSTNAME(x)%",
        "%REQ(a b)%",
        "%REQ(x):%",
    ] {
        assert!(format_string(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_external_auth_filter_envoy_would_refuse_fails_its_rule_closed() {
    let service = crate::testing::service("app", "authz", 9000);
    for (settings, field) in [
        (
            "protocol: HTTP, backendRef: {name: authz, port: 9000}, http: {path: check}",
            "spec.rules[0].filters.externalAuth.http.path: \"check\" must start with '/'",
        ),
        (
            "protocol: HTTP, backendRef: {name: authz, port: 9000}, http: {path: \"/a\\nb\"}",
            "spec.rules[0].filters.externalAuth.http.path",
        ),
    ] {
        let rules = format!(
            "  - filters: [{{type: ExternalAuth, externalAuth: {{{settings}}}}}]\n    backendRefs: [{{name: web, port: 80}}]\n"
        );
        let m = model(&format!("{service}{}", route(&rules)));
        let r = served(&m);
        let RouteAuth::FailClosed { reason, .. } = &r[0].auth else {
            panic!("{settings}: {:?}", r[0].auth)
        };
        assert!(reason.contains(field), "{reason}");
        let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
        assert!(gw.providers.is_empty(), "{settings}");
    }
}

#[test]
fn an_invalid_regex_path_becomes_a_broader_fail_closed_match() {
    use crate::model::validate_route::fail_closed_stand_in;
    let stand_in = |pattern: &str| {
        let m = MatchModel {
            path: PathMatch::Regex(pattern.into()),
            method: None,
            headers: vec![],
            query: vec![],
        };
        match fail_closed_stand_in(&m).map(|m| m.path) {
            Some(PathMatch::Regex(r)) => r,
            other => panic!("{pattern}: {other:?}"),
        }
    };
    // Literal prefix, then anything; a quantified last literal is not part of the prefix.
    assert_eq!(stand_in("/admin/x{1000}"), "/admin/.*");
    assert_eq!(
        stand_in("/admin/secret-(ab|cd|ef|gh|ij|kl|mn|op){3,10}"),
        "/admin/secret\\-.*"
    );
    assert_eq!(stand_in("/a(b|c)|/d{1000}"), ".*", "top-level alternation");
    assert_eq!(stand_in("^/admin/x{1000}"), "/admin/.*", "leading ^");
    assert_eq!(stand_in("/[a|b]x{1000}"), "/.*", "| in a class");
    // A literal too long for Envoy is shortened until the stand-in fits.
    let long = format!("/{}b{{1000}}", "a".repeat(300));
    let fitted = stand_in(&long);
    assert!(fitted.starts_with("/aaa") && fitted.len() < 300, "{fitted}");
    assert_eq!(stand_in("/api/v1/a**"), "/api/v1/.*");
    assert_eq!(stand_in("^/admin\\Z"), "/admin.*");
    assert_eq!(stand_in("/a-b~c{2000}"), "/a\\-b\\~.*");
    // Every stand-in is a regex Envoy takes.
    for p in [
        "/admin/x{1000}",
        "/a-b~c{2000}",
        "/%41:b@c{2000}",
        long.as_str(),
    ] {
        let mut problems = validate::Problems::default();
        validate::regex(&mut problems, "", &stand_in(p));
        assert!(problems.0.is_empty(), "{p}: {problems:?}");
    }
}

/// The stand-in keeps the place of the match it replaces: a shorter, valid regex rule that came
/// after the original does not move ahead of it (and serve its requests unchecked).
#[test]
fn a_stand_in_is_ordered_where_its_original_stood() {
    let rules = "  - matches: [{path: {type: RegularExpression, value: '/admin/(ab|cd|ef|gh|ij|kl|mn|op){3,10}'}}]\n    backendRefs: [{name: web, port: 80}]\n  - matches: [{path: {type: RegularExpression, value: '/admin/[a-z]+'}}]\n    backendRefs: [{name: web, port: 80}]\n";
    let m = model(&route(rules));
    let order: Vec<usize> = served(&m).iter().map(|r| r.rule_index).collect();
    assert_eq!(order, [0, 1], "the stand-in of rule 0 comes first");
    let first = &served(&m)[0];
    assert!(matches!(
        first.action,
        RouteAction::Respond { status: 500, .. }
    ));
    assert!(
        matches!(&first.matches.path, PathMatch::Regex(r) if r == "/admin/.*"),
        "{:?}",
        first.matches
    );
}
