//! GRPCRoute as the HTTPRoute it routes like: a gRPC call is an HTTP/2 POST to
//! `/{service}/{method}`, so a GRPCRoute's method matches become path matches and its rules go
//! through the HTTPRoute machinery (attachment, hostnames, filters, backends, policies).
//! What only a GRPCRoute has is checked here, with the GRPCRoute's own field names.
//!
//! Method matches become paths as kgateway and Envoy Gateway make them (Gateway API GEP-1016):
//! service and method → exact `/{service}/{method}`; service only → prefix `/{service}`
//! (element-wise, so `/svc` does not take `/svcX/…`); method only → regex
//! `/[^/]+/{method}`; `RegularExpression` → regex `/(?:{service})/(?:{method})`, an omitted
//! part matching any valid name. Each regex part must be valid RE2 on its own (so no part can
//! escape its group), and a leading `^` or trailing `$` is dropped: the path match is whole
//! already, and inside the group an anchor would make the rule match nothing, leaving its calls
//! to broader rules. Precedence is GRPCRoute's (service, then method characters, then headers):
//! [`AsHttp::ranks`].

use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::standard::grpcroutes::{
    GrpcRoute, GrpcRouteRulesMatches, GrpcRouteRulesMatchesMethod, GrpcRouteRulesMatchesMethodType,
};
use serde_json::{Value, json};

use super::routes::RuleResolution;
use super::types::{ClusterKey, GrpcRank, RouteAction, UpstreamProtocol};
use super::validate::Problem;

/// What a GRPCRoute answers when none of a rule's backends resolves: 503, which a gRPC client
/// reads as `UNAVAILABLE`, as the spec requires (Envoy maps a 500 to `UNKNOWN`).
const NO_BACKEND_STATUS: u32 = 503;

/// Makes a GRPCRoute rule's resolution speak gRPC: its backends and mirrors over HTTP/2 in
/// clusters of their own, and no backend answered `UNAVAILABLE`.
pub fn over_http2(resolution: &mut RuleResolution) {
    let grpc = |key: &mut ClusterKey| {
        if let ClusterKey::Backend { service, port } = key {
            *key = ClusterKey::GrpcBackend {
                service: std::mem::take(service),
                port: *port,
            };
        }
    };
    for c in &mut resolution.clusters {
        grpc(&mut c.key);
        c.protocol = UpstreamProtocol::H2c;
    }
    for m in &mut resolution.filters.mirrors {
        grpc(&mut m.cluster);
    }
    match &mut resolution.action {
        RouteAction::Forward(backends) => {
            for b in backends {
                grpc(&mut b.cluster);
            }
        }
        RouteAction::Respond { status, .. } if *status == 500 => *status = NO_BACKEND_STATUS,
        _ => {}
    }
}

/// Any service name a `RegularExpression` match leaves out (the CRD's pattern for one; its
/// case-insensitivity scoped to the group, not to the method after it).
const ANY_SERVICE: &str = r"(?i:\.?[a-z_][a-z_0-9]*(?:\.[a-z_][a-z_0-9]*)*)";
/// Any method name a `RegularExpression` match leaves out.
const ANY_METHOD: &str = r"[A-Za-z_][A-Za-z_0-9]*";

/// The HTTPRoute a GRPCRoute routes like, and the problems of its gRPC-only fields by rule.
pub struct AsHttp {
    pub route: HttpRoute,
    /// Problems of each rule's method matches (same indices as the rules).
    pub problems: Vec<Vec<Problem>>,
    /// The precedence of each rule's matches, in the converted route's match order (one entry
    /// for a rule without matches, which matches every call).
    pub ranks: Vec<Vec<GrpcRank>>,
}

/// Converts `route`. The filter and backendRef types of the two kinds have the same fields,
/// so they carry over as they are; a GRPCRoute that will not convert (it cannot happen with
/// the types as they are) is an error the caller reports.
pub fn as_http_route(route: &GrpcRoute) -> Result<AsHttp, String> {
    let mut problems = Vec::new();
    let mut ranks = Vec::new();
    let rules: Vec<Value> = route
        .spec
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, rule)| {
            let mut rule_problems = Vec::new();
            let matches: Vec<Value> = rule
                .matches
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, m)| {
                    let field = format!("spec.rules[{i}].matches[{j}].method");
                    as_http_match(m, &field, &mut rule_problems)
                })
                .collect();
            problems.push(rule_problems);
            let mut rule_ranks: Vec<GrpcRank> = rule
                .matches
                .iter()
                .flatten()
                .map(|m| rank(m.method.as_ref()))
                .collect();
            if rule_ranks.is_empty() {
                rule_ranks.push(GrpcRank::default());
            }
            ranks.push(rule_ranks);
            let mut out = json!({
                "filters": rule.filters,
                "backendRefs": rule.backend_refs,
            });
            if !matches.is_empty() {
                out["matches"] = Value::Array(matches);
            }
            if let Some(name) = &rule.name {
                out["name"] = json!(name);
            }
            out
        })
        .collect();
    let doc = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": route.metadata,
        "spec": {
            "parentRefs": route.spec.parent_refs,
            "hostnames": route.spec.hostnames,
            "rules": rules,
        },
    });
    let route = serde_json::from_value(strip_nulls(doc)).map_err(|e| e.to_string())?;
    Ok(AsHttp {
        route,
        problems,
        ranks,
    })
}

/// A method match's [`GrpcRank`] (an empty or omitted name is none).
fn rank(method: Option<&GrpcRouteRulesMatchesMethod>) -> GrpcRank {
    let Some(m) = method else {
        return GrpcRank::default();
    };
    let kind = match m.r#type {
        Some(GrpcRouteRulesMatchesMethodType::RegularExpression) => 1,
        _ => 2,
    };
    let part = |s: &Option<String>| match s.as_deref() {
        Some(s) if !s.is_empty() => (kind, s.len()),
        _ => (0, 0),
    };
    let ((sk, sl), (mk, ml)) = (part(&m.service), part(&m.method));
    (sk, sl, mk, ml)
}

/// A `RegularExpression` part as it goes into its group: without a leading `^` or an
/// unescaped trailing `$`, checked as RE2 on its own.
fn regex_part(part: &str, field: &str, problems: &mut Vec<Problem>) -> String {
    let part = part.strip_prefix('^').unwrap_or(part);
    let part = match part.strip_suffix('$') {
        Some(rest) if !rest.ends_with('\\') => rest,
        _ => part,
    };
    let mut found = super::validate::Problems::default();
    super::validate::regex(&mut found, field, part);
    problems.extend(found.0);
    part.to_string()
}

/// JSON `null`s out: `Option` fields serialize as `null`, and an HTTPRoute field that is not
/// an `Option` would refuse one.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn as_http_match(m: &GrpcRouteRulesMatches, field: &str, problems: &mut Vec<Problem>) -> Value {
    let mut out = json!({ "path": path_match(m.method.as_ref(), field, problems) });
    if let Some(headers) = &m.headers {
        out["headers"] = json!(headers);
    }
    out
}

/// The path match of a method match.
fn path_match(
    method: Option<&GrpcRouteRulesMatchesMethod>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Value {
    let Some(m) = method else {
        return json!({"type": "PathPrefix", "value": "/"});
    };
    // "If left empty or omitted, will match any": an empty string is omitted.
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let name = m.method.as_deref().filter(|s| !s.is_empty());
    let regex = matches!(
        m.r#type,
        Some(GrpcRouteRulesMatchesMethodType::RegularExpression)
    );
    if regex {
        let service = service.map_or(ANY_SERVICE.to_string(), |s| {
            let s = regex_part(s, &format!("{field}.service"), problems);
            format!("(?:{s})")
        });
        let name = name.map_or(ANY_METHOD.to_string(), |m| {
            let m = regex_part(m, &format!("{field}.method"), problems);
            format!("(?:{m})")
        });
        // The whole regex is judged (RE2, program size) with the route's path matches.
        return json!({"type": "RegularExpression", "value": format!("/{service}/{name}")});
    }
    let mut problem = |message: String| {
        problems.push(Problem {
            field: field.to_string(),
            message,
        })
    };
    if let Some(s) = service.filter(|s| !valid_service(s)) {
        problem(format!(
            "service {} is not a gRPC service name (letters, digits, '_', separated by '.')",
            super::validate::show(s)
        ));
    }
    if let Some(n) = name.filter(|n| !valid_method(n)) {
        problem(format!(
            "method {} is not a gRPC method name (letters, digits, '_')",
            super::validate::show(n)
        ));
    }
    match (service, name) {
        (Some(s), Some(n)) => json!({"type": "Exact", "value": format!("/{s}/{n}")}),
        (Some(s), None) => json!({"type": "PathPrefix", "value": format!("/{s}")}),
        (None, Some(n)) if valid_method(n) => {
            json!({"type": "RegularExpression", "value": format!("/[^/]+/{n}")})
        }
        // Invalid: the rule answers 500, here on one narrow path rather than on every call.
        (None, Some(n)) => json!({"type": "Exact", "value": format!("/{n}")}),
        (None, None) => {
            problem("an Exact method match names a service, a method or both".into());
            json!({"type": "PathPrefix", "value": "/"})
        }
    }
}

/// The CRD's `^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`.
fn valid_service(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    !s.is_empty() && s.split('.').all(valid_method)
}

/// The CRD's `^[A-Za-z_][A-Za-z_0-9]*$`.
fn valid_method(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn route(matches: &str) -> GrpcRoute {
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g, namespace: a}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: {matches}\n    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: x, value: y}}]}}}}]\n    backendRefs: [{{name: s, port: 9000, weight: 3}}]\n"
        );
        testing::store(&yaml).grpc_routes[&crate::store::ObjKey::new("a", "g")].clone()
    }

    fn paths(matches: &str) -> (Vec<(String, String)>, Vec<String>) {
        let out = as_http_route(&route(matches)).expect("converts");
        let rule = &out.route.spec.rules.as_ref().expect("rules")[0];
        let paths = rule
            .matches
            .iter()
            .flatten()
            .map(|m| {
                let p = m.path.as_ref().expect("path");
                (
                    format!("{:?}", p.r#type.clone().expect("type")),
                    p.value.clone().expect("value"),
                )
            })
            .collect();
        let problems = out.problems[0].iter().map(|p| p.message.clone()).collect();
        (paths, problems)
    }

    #[test]
    fn method_matches_become_the_paths_grpc_calls_use() {
        let cases = [
            (
                "[{method: {service: pkg.Svc, method: Get}}]",
                ("Exact", "/pkg.Svc/Get"),
            ),
            ("[{method: {service: pkg.Svc}}]", ("PathPrefix", "/pkg.Svc")),
            (
                "[{method: {method: Get}}]",
                ("RegularExpression", "/[^/]+/Get"),
            ),
            (
                "[{method: {type: RegularExpression, service: 'a|b', method: 'G.*'}}]",
                ("RegularExpression", "/(?:a|b)/(?:G.*)"),
            ),
            (
                "[{method: {type: RegularExpression, method: 'G.*'}}]",
                (
                    "RegularExpression",
                    r"/(?i:\.?[a-z_][a-z_0-9]*(?:\.[a-z_][a-z_0-9]*)*)/(?:G.*)",
                ),
            ),
            ("[{headers: [{name: x, value: y}]}]", ("PathPrefix", "/")),
        ];
        for (matches, (kind, value)) in cases {
            let (got, problems) = paths(matches);
            assert_eq!(
                got,
                vec![(kind.to_string(), value.to_string())],
                "{matches}"
            );
            assert!(problems.is_empty(), "{matches}: {problems:?}");
        }
    }

    #[test]
    fn filters_backends_and_headers_carry_over() {
        let out = as_http_route(&route(
            "[{method: {service: S}, headers: [{name: v, value: two}]}]",
        ))
        .expect("converts");
        let rule = &out.route.spec.rules.as_ref().expect("rules")[0];
        let backend = &rule.backend_refs.as_ref().expect("backends")[0];
        assert_eq!(
            (backend.name.as_str(), backend.port, backend.weight),
            ("s", Some(9000), Some(3))
        );
        let filter = &rule.filters.as_ref().expect("filters")[0];
        let set = filter
            .request_header_modifier
            .as_ref()
            .and_then(|m| m.set.as_ref())
            .expect("set");
        assert_eq!((set[0].name.as_str(), set[0].value.as_str()), ("x", "y"));
        let headers = rule.matches.as_ref().expect("matches")[0]
            .headers
            .as_ref()
            .expect("headers");
        assert_eq!(headers[0].value, "two");
        assert_eq!(out.route.metadata.name.as_deref(), Some("g"));
    }

    /// Files are read without the CRD's rules: a name the CRD refuses is a problem here, so
    /// the rule fails closed instead of matching something else.
    #[test]
    fn names_the_crd_refuses_are_problems() {
        for bad in [
            "[{method: {service: 'a/b', method: Get}}]",
            "[{method: {service: S, method: 'G/x'}}]",
            "[{method: {method: '1x'}}]",
            "[{method: {type: Exact}}]",
        ] {
            let (_, problems) = paths(bad);
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        }
        assert!(valid_service(".a.b_c") && !valid_service("a..b") && !valid_service("."));
    }

    /// A regex part cannot leave its group, and anchors (which inside the group would make the
    /// rule match nothing) are dropped rather than leave its calls to broader rules.
    #[test]
    fn regex_parts_stay_in_their_groups() {
        let (anchored, problems) = paths(
            "[{method: {type: RegularExpression, service: '^pkg\\.Admin$', method: 'Get$'}}]",
        );
        assert_eq!(anchored[0].1, r"/(?:pkg\.Admin)/(?:Get)");
        assert!(problems.is_empty(), "{problems:?}");
        let (_, problems) =
            paths("[{method: {type: RegularExpression, service: 'a)|(?:.*', method: Get}}]");
        assert_eq!(problems.len(), 1, "{problems:?}");
        // An escaped dollar is a character, not an anchor.
        let (escaped, _) = paths("[{method: {type: RegularExpression, service: 'a\\$'}}]");
        assert!(escaped[0].1.starts_with(r"/(?:a\$)/"), "{escaped:?}");
    }

    /// GRPCRoute precedence: a service match outranks a method-only one (fewer service
    /// characters) whatever their path kinds are, so a protected service's calls are never
    /// taken by a method-only rule; an exact name outranks a regex.
    #[test]
    fn service_characters_decide_before_the_method() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gatehouse}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: a}\nspec:\n  gatewayClassName: gatehouse\n  listeners: [{name: http, protocol: HTTP, port: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\nspec: {ports: [{port: 9000}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: a}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - name: health\n    matches: [{method: {method: Check}}, {method: {type: RegularExpression, method: 'Delete.*'}}]\n    backendRefs: [{name: s, port: 9000}]\n  - name: admin\n    matches: [{method: {service: pkg.Admin}}, {method: {type: RegularExpression, service: 'pkg\\.Admin', method: 'Delete.*'}}]\n    backendRefs: [{name: s, port: 9000}]\n  - name: get\n    matches: [{method: {service: pkg.Admin, method: Get}}]\n    backendRefs: [{name: s, port: 9000}]\n";
        let model = crate::model::build(&testing::store(yaml), &Default::default());
        let order: Vec<(String, usize)> = model.gateways[0].ports[0].virtual_hosts[0]
            .routes
            .iter()
            .map(|r| (r.rule_name.clone().unwrap_or_default(), r.match_index))
            .collect();
        let names = |v: &[(&str, usize)]| -> Vec<(String, usize)> {
            v.iter().map(|(n, i)| (n.to_string(), *i)).collect()
        };
        assert_eq!(
            order,
            names(&[
                ("get", 0),
                ("admin", 0),
                ("admin", 1),
                ("health", 0),
                ("health", 1)
            ])
        );
    }
}
