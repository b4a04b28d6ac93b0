use super::*;
use crate::testing::{
    gateway, gateway_class, gateway_extension, http_route, reference_grant, reference_grant_to,
    service, store, traffic_policy,
};

/// Gateway `infra/gw` (listener `http` :8080 from all namespaces, `admin` :9090 from the same
/// namespace), Service `app/web`, routes `app/a` (rules `secure` and `public`) and `app/b`;
/// [`base`] adds the providers `auth/ext` (needs a grant from `app`) and `app/local`.
const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: All}}}
  - {name: admin, protocol: HTTP, port: 9090, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: app, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: false}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: app}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: http}]
  hostnames: [a.example.com]
  rules:
  - name: secure
    matches: [{path: {type: PathPrefix, value: /secure}}]
    backendRefs: [{name: web, port: 80}]
  - name: public
    matches: [{path: {type: PathPrefix, value: /public}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: app}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [b.example.com]
  rules:
  - backendRefs: [{name: web, port: 80}]
"#;

/// [`BASE`] with its providers: `auth/ext` and `app/local`, each a gRPC GatewayExtension on
/// the Service `authz:9000` of its namespace.
pub(super) fn base() -> String {
    let mut out = BASE.to_string();
    for (ns, name) in [("auth", "ext"), ("app", "local")] {
        out += &service(ns, "authz", 9000);
        out += &gateway_extension(
            ns,
            name,
            "grpcService: {backendRef: {name: authz, port: 9000}}",
        );
    }
    out
}

pub(super) fn model(extra: &str) -> Model {
    build(&store(&(base() + extra)), &ModelConfig::default())
}

/// Auth of every route on a port, as `(route name, decision)` with decisions shortened to
/// `none`, `on:<provider>`, `off:<policy>` and `closed:<policy>`.
pub(super) fn auth_on(m: &Model, port: u16) -> Vec<(String, String)> {
    let gw = m
        .gateway(&ObjKey::new("infra", "gw"))
        .expect("gateway is served");
    let port = gw
        .ports
        .iter()
        .find(|p| p.port == port)
        .expect("port is served");
    let mut out = Vec::new();
    for vh in &port.virtual_hosts {
        for r in &vh.routes {
            let d = match &r.auth {
                RouteAuth::None => "none".to_string(),
                RouteAuth::Enabled { provider, .. } => format!("on:{provider}"),
                RouteAuth::Disabled { policy } => format!("off:{policy}"),
                RouteAuth::FailClosed { policy, .. } => format!("closed:{policy}"),
            };
            out.push((
                format!(
                    "{}/{}",
                    r.route.key.name,
                    r.rule_name.clone().unwrap_or_default()
                ),
                d,
            ));
        }
    }
    out
}

pub(super) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub(super) fn cond<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    find(conditions, type_).unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

pub(super) const USE_LOCAL: &str = "{extensionRef: {name: local}}";
pub(super) const DISABLE: &str = "{disable: {}}";

/// (case name, extra manifests, port, expected auth per route)
type MatrixCase = (&'static str, String, u16, Vec<(&'static str, &'static str)>);

#[test]
fn precedence_matrix() {
    let cases: Vec<MatrixCase> = vec![
        (
            "no policy",
            String::new(),
            8080,
            vec![("a/secure", "none"), ("a/public", "none"), ("b/", "none")],
        ),
        (
            "gateway level",
            traffic_policy(
                "infra",
                "gw-auth",
                "Gateway",
                "gw",
                None,
                "{extensionRef: {name: local, namespace: app}}",
            ) + &reference_grant("TrafficPolicy", "infra", "GatewayExtension", "app"),
            8080,
            vec![
                ("a/secure", "on:app/local"),
                ("a/public", "on:app/local"),
                ("b/", "on:app/local"),
            ],
        ),
        (
            "listener level covers only its listener",
            traffic_policy(
                "infra",
                "l",
                "Gateway",
                "gw",
                Some("admin"),
                "{extensionRef: {name: ext, namespace: auth}}",
            ) + &reference_grant("TrafficPolicy", "infra", "GatewayExtension", "auth"),
            9090,
            vec![("b/", "on:auth/ext")],
        ),
        (
            "route level disable beats gateway level",
            traffic_policy(
                "infra",
                "gw-auth",
                "Gateway",
                "gw",
                None,
                "{extensionRef: {name: local, namespace: app}}",
            ) + &reference_grant("TrafficPolicy", "infra", "GatewayExtension", "app")
                + &traffic_policy("app", "off", "HTTPRoute", "a", None, DISABLE),
            8080,
            vec![
                ("a/secure", "off:app/off"),
                ("a/public", "off:app/off"),
                ("b/", "on:app/local"),
            ],
        ),
        (
            "rule level turns auth back on",
            traffic_policy("app", "off", "HTTPRoute", "a", None, DISABLE)
                + &traffic_policy("app", "rule", "HTTPRoute", "a", Some("secure"), USE_LOCAL),
            8080,
            vec![
                ("a/secure", "on:app/local"),
                ("a/public", "off:app/off"),
                ("b/", "none"),
            ],
        ),
    ];
    for (name, extra, port, want) in cases {
        let m = model(&extra);
        let mut got = auth_on(&m, port);
        got.sort();
        let mut want = pairs(&want);
        want.sort();
        assert_eq!(got, want, "case: {name}");
    }
}

#[test]
fn listener_policy_leaves_other_listener_alone() {
    let m = model(&traffic_policy(
        "infra",
        "l",
        "Gateway",
        "gw",
        Some("admin"),
        DISABLE,
    ));
    assert!(auth_on(&m, 8080).iter().all(|(_, d)| d == "none"));
    assert_eq!(auth_on(&m, 9090), pairs(&[("b/", "off:infra/l")]));
}

#[test]
fn oldest_policy_wins_at_one_level_and_the_loser_is_overridden() {
    let newer = traffic_policy("app", "newer", "HTTPRoute", "b", None, DISABLE).replace(
        "namespace: app}",
        "namespace: app, creationTimestamp: '2026-01-02T00:00:00Z'}",
    );
    let older = traffic_policy("app", "older", "HTTPRoute", "b", None, USE_LOCAL).replace(
        "namespace: app}",
        "namespace: app, creationTimestamp: '2026-01-01T00:00:00Z'}",
    );
    let m = model(&(newer + &older));
    assert!(auth_on(&m, 8080).contains(&("b/".into(), "on:app/local".into())));
    let loser = &m.status.traffic_policies[&ObjKey::new("app", "newer")][0];
    let attached = cond(&loser.conditions, "Attached");
    assert_eq!(
        (attached.status, attached.reason.as_str()),
        ("False", "Overridden")
    );
    let winner = &m.status.traffic_policies[&ObjKey::new("app", "older")][0];
    assert!(cond(&winner.conditions, "Attached").is_true());
}

#[test]
fn missing_extension_fails_closed_for_its_targets_only() {
    let m = model(&traffic_policy(
        "app",
        "broken",
        "HTTPRoute",
        "a",
        None,
        "{extensionRef: {name: nope}}",
    ));
    let got = auth_on(&m, 8080);
    assert!(
        got.contains(&("a/secure".into(), "closed:app/broken".into())),
        "{got:?}"
    );
    assert!(got.contains(&("b/".into(), "none".into())), "{got:?}");
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let a = gw.ports[0]
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .find(|r| r.route.key.name == "a")
        .expect("route a");
    assert_eq!(
        a.action,
        RouteAction::Respond {
            status: FAIL_CLOSED_STATUS,
            body: "external authorization is misconfigured for this route\n".into()
        }
    );
    let b = gw.ports[0]
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .find(|r| r.route.key.name == "b")
        .expect("route b");
    assert!(matches!(b.action, RouteAction::Forward(_)));
    let st = &m.status.traffic_policies[&ObjKey::new("app", "broken")][0];
    let accepted = cond(&st.conditions, "Accepted");
    assert_eq!(
        (accepted.status, accepted.reason.as_str()),
        ("False", "ExtensionNotFound")
    );
}

#[test]
fn cross_namespace_extension_needs_a_reference_grant() {
    let p = traffic_policy(
        "app",
        "x",
        "HTTPRoute",
        "b",
        None,
        "{extensionRef: {name: ext, namespace: auth}}",
    );
    let without = model(&p);
    assert!(auth_on(&without, 8080).contains(&("b/".into(), "closed:app/x".into())));
    let st = &without.status.traffic_policies[&ObjKey::new("app", "x")][0];
    assert_eq!(cond(&st.conditions, "Accepted").reason, "RefNotPermitted");

    let grant = reference_grant_to("TrafficPolicy", "app", "GatewayExtension", "auth", "ext");
    let with = model(&(p + &grant));
    assert!(auth_on(&with, 8080).contains(&("b/".into(), "on:auth/ext".into())));
}

#[test]
fn extension_with_missing_service_reports_on_itself_and_fails_closed() {
    let ext = gateway_extension(
        "app",
        "gone",
        "httpService: {backendRef: {name: missing, port: 80}}",
    );
    let m = model(
        &(ext
            + &traffic_policy(
                "app",
                "p",
                "HTTPRoute",
                "b",
                None,
                "{extensionRef: {name: gone}}",
            )),
    );
    let ext_status = &m.status.gateway_extensions[&ObjKey::new("app", "gone")];
    assert!(cond(ext_status, "Accepted").is_true());
    let refs = cond(ext_status, "ResolvedRefs");
    assert_eq!(
        (refs.status, refs.reason.as_str()),
        ("False", "BackendNotFound")
    );
    assert!(auth_on(&m, 8080).contains(&("b/".into(), "closed:app/p".into())));
    let st = &m.status.traffic_policies[&ObjKey::new("app", "p")][0];
    assert_eq!(cond(&st.conditions, "Accepted").reason, "InvalidExtension");
}

#[test]
fn gateway_policy_installs_its_filter_even_where_routes_disable_it() {
    let m = model(
        &(traffic_policy(
            "infra",
            "gw-auth",
            "Gateway",
            "gw",
            None,
            "{extensionRef: {name: ext, namespace: auth}}",
        ) + &reference_grant("TrafficPolicy", "infra", "GatewayExtension", "auth")
            + &traffic_policy("app", "off-a", "HTTPRoute", "a", None, DISABLE)
            + &traffic_policy("app", "off-b", "HTTPRoute", "b", None, DISABLE)),
    );
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let port = &gw.ports[0];
    assert_eq!(
        port.providers.iter().cloned().collect::<Vec<_>>(),
        vec![ObjKey::new("auth", "ext")]
    );
    assert!(gw.clusters.contains_key(&ClusterKey::Auth {
        extension: ObjKey::new("auth", "ext")
    }));
}

#[test]
fn route_status_reasons() {
    let routes = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-section, namespace: app}
spec: {parentRefs: [{name: gw, namespace: infra, sectionName: nope}], rules: [{backendRefs: [{name: web, port: 80}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same, namespace: infra}
spec: {gatewayClassName: gatehouse, listeners: [{name: http, protocol: HTTP, port: 8081, hostname: only.example.com}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-ns, namespace: app}
spec: {parentRefs: [{name: same, namespace: infra}], rules: [{backendRefs: [{name: web, port: 80}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-host, namespace: infra}
spec: {parentRefs: [{name: same}], hostnames: [else.example.com], rules: [{backendRefs: [{name: web, namespace: app, port: 80}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-backend, namespace: app}
spec: {parentRefs: [{name: gw, namespace: infra}], hostnames: [nb.example.com], rules: [{backendRefs: [{name: missing, port: 80}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-kind, namespace: app}
spec: {parentRefs: [{name: gw, namespace: infra}], hostnames: [bk.example.com], rules: [{backendRefs: [{group: example.com, kind: Thing, name: web, port: 80}]}]}
"#;
    let m = model(routes);
    let reason = |route: &str, type_: &str| {
        let parents = &m.status.http_routes[&ObjKey::new(
            if route == "wrong-host" {
                "infra"
            } else {
                "app"
            },
            route,
        )];
        cond(&parents[0].conditions, type_).reason.clone()
    };
    assert_eq!(reason("wrong-section", "Accepted"), "NoMatchingParent");
    assert_eq!(reason("other-ns", "Accepted"), "NotAllowedByListeners");
    assert_eq!(
        reason("wrong-host", "Accepted"),
        "NoMatchingListenerHostname"
    );
    assert_eq!(reason("wrong-host", "ResolvedRefs"), "RefNotPermitted");
    assert_eq!(reason("no-backend", "Accepted"), "Accepted");
    assert_eq!(reason("no-backend", "ResolvedRefs"), "BackendNotFound");
    assert_eq!(reason("bad-kind", "ResolvedRefs"), "InvalidKind");
    assert_eq!(reason("a", "ResolvedRefs"), "ResolvedRefs");

    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let nb = gw.ports[0]
        .virtual_hosts
        .iter()
        .find(|v| v.hostname == "nb.example.com")
        .expect("vhost");
    assert_eq!(
        nb.routes[0].action,
        RouteAction::Respond {
            status: 500,
            body: String::new()
        }
    );
}

#[test]
fn gateway_and_listener_status() {
    let conflict = gateway(
        "infra",
        "c",
        "gatehouse",
        "listeners: [{name: one, protocol: HTTP, port: 80}, {name: two, protocol: HTTP, port: 80}, {name: tls, protocol: TLS, port: 443}]",
    );
    let m = model(&conflict);
    let gw = &m.status.gateways[&ObjKey::new("infra", "gw")];
    assert!(cond(&gw.conditions, "Accepted").is_true());
    assert!(cond(&gw.conditions, "Programmed").is_true());
    let attached: Vec<_> = gw
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.attached_routes))
        .collect();
    assert_eq!(attached, [("http", 2), ("admin", 1)]);

    let c = &m.status.gateways[&ObjKey::new("infra", "c")];
    let two = c
        .listeners
        .iter()
        .find(|l| l.name == "two")
        .expect("listener two");
    assert_eq!(
        cond(&two.conditions, "Conflicted").reason,
        "HostnameConflict"
    );
    let tls = c
        .listeners
        .iter()
        .find(|l| l.name == "tls")
        .expect("listener tls");
    assert_eq!(
        cond(&tls.conditions, "Accepted").reason,
        "UnsupportedProtocol"
    );
}

#[test]
fn gateways_of_other_controllers_are_ignored() {
    let other = gateway_class("theirs", "example.com/other", "")
        + &gateway(
            "infra",
            "foreign",
            "theirs",
            "listeners: [{name: http, protocol: HTTP, port: 80}]",
        );
    let m = model(&other);
    assert!(m.gateway(&ObjKey::new("infra", "foreign")).is_none());
    assert!(
        !m.status
            .gateways
            .contains_key(&ObjKey::new("infra", "foreign"))
    );
    assert!(
        !m.status
            .gateway_classes
            .contains_key(&ObjKey::cluster("theirs"))
    );
}

#[test]
fn endpoints_follow_the_service_port_name_and_readiness() {
    let m = model("");
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let web = &gw.clusters[&ClusterKey::Backend {
        service: ObjKey::new("app", "web"),
        port: 80,
    }];
    assert_eq!(
        *web.endpoints,
        vec![Endpoint {
            address: "10.0.0.1".into(),
            port: 8080
        }]
    );
}

#[test]
fn routes_follow_gateway_api_precedence() {
    let route = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: order, namespace: app}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [order.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: X-A, value: "1"}, {name: x-b, value: "2"}]}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: Exact, value: /api}}]
    backendRefs: [{name: web, port: 80}]
"#;
    let m = model(route);
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let vh = gw.ports[0]
        .virtual_hosts
        .iter()
        .find(|v| v.hostname == "order.example.com")
        .expect("vhost");
    let order: Vec<usize> = vh.routes.iter().map(|r| r.rule_index).collect();
    assert_eq!(order, [4, 2, 3, 1, 0]);
    assert_eq!(vh.routes[2].matches.headers[0].name, "x-a");
}

/// Limits: 10,000 policies on one route (all but the oldest overridden) and a route with 500
/// rules, 4 KiB header matches and a 253-character hostname build completely, each policy
/// with its own clear status.
#[test]
fn many_policies_on_one_route_and_large_routes_build_with_clear_status() {
    let mut extra = String::new();
    for i in 0..10_000 {
        let p = traffic_policy(
            "app",
            &format!("p{i:05}"),
            "HTTPRoute",
            "b",
            None,
            USE_LOCAL,
        )
        .replace(
            "namespace: app}",
            &format!(
                "namespace: app, creationTimestamp: '2026-01-01T{:02}:{:02}:{:02}Z'}}",
                i / 3600,
                (i / 60) % 60,
                i % 60
            ),
        );
        extra.push_str(&p);
    }
    let long_value = "v".repeat(4_096);
    // 121 labels, 253 characters: the longest name DNS allows.
    let deep = format!("{}example.com", "a.".repeat(121));
    assert_eq!(deep.len(), 253);
    extra.push_str(&http_route(
        "app",
        "big",
        "infra/gw",
        &["big.example.com", &deep],
        "",
    ));
    for r in 0..500 {
        extra.push_str(&format!(
            "  - matches: [{{path: {{type: PathPrefix, value: /r{r}}}, headers: [{{name: x-long, value: {long_value}}}]}}]\n    backendRefs: [{{name: web, port: 80}}]\n"
        ));
    }
    let m = model(&extra);
    assert!(auth_on(&m, 8080).contains(&("b/".into(), "on:app/local".into())));
    let winner = &m.status.traffic_policies[&ObjKey::new("app", "p00000")][0];
    assert!(cond(&winner.conditions, "Attached").is_true());
    let overridden = (1..10_000)
        .filter(|i| {
            let s = &m.status.traffic_policies[&ObjKey::new("app", format!("p{i:05}"))][0];
            cond(&s.conditions, "Attached").reason == "Overridden"
        })
        .count();
    assert_eq!(overridden, 9_999);
    let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
    let big = gw
        .ports
        .iter()
        .flat_map(|p| &p.virtual_hosts)
        .find(|v| v.hostname == "big.example.com")
        .expect("vhost");
    assert_eq!(big.routes.len(), 500);
    let deep_host = gw
        .ports
        .iter()
        .flat_map(|p| &p.virtual_hosts)
        .find(|v| v.hostname == deep)
        .expect("vhost of the deep hostname");
    assert_eq!(deep_host.routes.len(), 500);
    let res = crate::translate::translate_gateway(gw, &Default::default());
    let domains: Vec<String> = res
        .routes
        .iter()
        .flat_map(|r| &r.virtual_hosts)
        .flat_map(|v| v.proto().domains)
        .collect();
    assert!(domains.contains(&deep), "translated: {}", domains.len());
}
