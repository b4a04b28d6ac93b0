//! The fail-closed invariant as a property: for any generated configuration, a route that an
//! ext auth policy covers (Gateway, listener, route or rule level) and that no `disable`
//! covers is never forwarded to its backend unchecked — the generated Envoy config either
//! enables an ext_authz filter on it (present on its listener) or answers directly (fail
//! closed). Routes are HTTPRoutes and GRPCRoutes, sharing names, so a policy on one kind
//! must neither miss nor leak onto the other. Checked on the translated protos, 10,000 cases
//! (`PROPTEST_CASES` overrides).

use std::path::Path;

use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::route::v3::{Route, route};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    ExtAuthzPerRoute, ext_authz_per_route,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use gatehouse::model::{ModelConfig, build};
use gatehouse::source::files::load_str;
use gatehouse::store::Store;
use gatehouse::translate::{GatewayResources, TranslateOptions, translate_gateway};
use proptest::prelude::*;
use prost::Message;

#[derive(Clone, Debug)]
enum Target {
    Gateway {
        gw: usize,
        listener: Option<usize>,
    },
    /// Route `r{route}` of kind GRPCRoute when `grpc`, else HTTPRoute.
    Route {
        route: usize,
        grpc: bool,
        rule: Option<usize>,
    },
}

#[derive(Clone, Debug)]
enum Action {
    /// extensionRef to extension `ext` (2 = one that does not exist), cross-namespace or not.
    Ref {
        ext: usize,
        cross_ns: bool,
    },
    Disable,
}

#[derive(Clone, Debug)]
struct Policy {
    target: Target,
    action: Action,
}

#[derive(Clone, Debug)]
struct RouteSpec {
    /// Named `r{name}`; an HTTPRoute and a GRPCRoute may share a name.
    name: usize,
    grpc: bool,
    gw: usize,
    section: Option<usize>,
    rules: usize,
}

#[derive(Clone, Debug)]
struct Config {
    gateways: usize,
    listeners: usize,
    routes: Vec<RouteSpec>,
    policies: Vec<Policy>,
    /// The auth Service exists (else extensions do not resolve).
    auth_service: bool,
    /// A ReferenceGrant lets `app` policies use `auth` extensions.
    grant: bool,
    fail_open: [bool; 2],
}

fn config() -> impl Strategy<Value = Config> {
    (1usize..=2, 1usize..=2).prop_flat_map(|(gateways, listeners)| {
        let route = (
            0usize..3,
            any::<bool>(),
            0..gateways,
            prop::option::of(0..listeners),
            1usize..=2,
        )
            .prop_map(|(name, grpc, gw, section, rules)| RouteSpec {
                name,
                grpc,
                gw,
                section,
                rules,
            });
        let target = prop_oneof![
            (0..gateways, prop::option::of(0..listeners))
                .prop_map(|(gw, listener)| Target::Gateway { gw, listener }),
            (0usize..3, any::<bool>(), prop::option::of(0usize..2))
                .prop_map(|(route, grpc, rule)| Target::Route { route, grpc, rule }),
        ];
        let action = prop_oneof![
            3 => (0usize..3, any::<bool>()).prop_map(|(ext, cross_ns)| Action::Ref { ext, cross_ns }),
            1 => Just(Action::Disable),
        ];
        let policy = (target, action).prop_map(|(target, action)| Policy { target, action });
        (
            // One route per (name, kind): a second one would replace the first.
            prop::collection::vec(route, 1..=4).prop_map(|mut routes| {
                let mut seen = std::collections::BTreeSet::new();
                routes.retain(|r| seen.insert((r.name, r.grpc)));
                routes
            }),
            prop::collection::vec(policy, 0..=5),
            any::<bool>(),
            any::<bool>(),
            any::<[bool; 2]>(),
        )
            .prop_map(move |(routes, policies, auth_service, grant, fail_open)| Config {
                gateways,
                listeners,
                routes,
                policies,
                auth_service,
                grant,
                fail_open,
            })
    })
}

const PORTS: [u16; 2] = [8080, 8081];

fn manifests(c: &Config) -> String {
    let mut y = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gatehouse}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web, namespace: app, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 3000}]\nendpoints: [{addresses: [10.0.0.1]}]\n",
    );
    for g in 0..c.gateways {
        y.push_str(&format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw{g}, namespace: infra}}\nspec:\n  gatewayClassName: gatehouse\n  listeners:\n"));
        for (l, port) in PORTS.iter().enumerate().take(c.listeners) {
            y.push_str(&format!("  - {{name: l{l}, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}\n"));
        }
    }
    if c.auth_service {
        for ns in ["auth", "app"] {
            y.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: authz, namespace: {ns}}}\nspec: {{ports: [{{port: 9000}}]}}\n"));
        }
    }
    // ext0 lives in `auth` (needs a grant from `app` policies), ext1 in `app`.
    for (i, ns) in ["auth", "app"].iter().enumerate() {
        let fail_open = c.fail_open[i];
        y.push_str(&format!("---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: GatewayExtension\nmetadata: {{name: ext{i}, namespace: {ns}}}\nspec: {{type: ExtAuth, extAuth: {{failOpen: {fail_open}, grpcService: {{backendRef: {{name: authz, port: 9000}}}}}}}}\n"));
    }
    if c.grant {
        y.push_str("---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: policies, namespace: auth}\nspec:\n  from: [{group: gateway.kgateway.dev, kind: TrafficPolicy, namespace: app}, {group: gateway.kgateway.dev, kind: TrafficPolicy, namespace: infra}]\n  to: [{group: gateway.kgateway.dev, kind: GatewayExtension}]\n");
    }
    for r in &c.routes {
        let section = r
            .section
            .map(|l| format!(", sectionName: l{l}"))
            .unwrap_or_default();
        let (i, kind) = (r.name, if r.grpc { "GRPCRoute" } else { "HTTPRoute" });
        y.push_str(&format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\nmetadata: {{name: r{i}, namespace: app}}\nspec:\n  parentRefs: [{{name: gw{}, namespace: infra{section}}}]\n  hostnames: [r{i}.example.com]\n  rules:\n", r.gw));
        for k in 0..r.rules {
            let m = if r.grpc {
                format!("{{method: {{service: pkg.S{k}}}}}")
            } else {
                format!("{{path: {{type: PathPrefix, value: /p{k}}}}}")
            };
            y.push_str(&format!(
                "  - name: rule{k}\n    matches: [{m}]\n    backendRefs: [{{name: web, port: 80}}]\n"
            ));
        }
    }
    for (i, p) in c.policies.iter().enumerate() {
        let (ns, kind, name, section) = match &p.target {
            Target::Gateway { gw, listener } => (
                "infra",
                "Gateway",
                format!("gw{gw}"),
                listener.map(|l| format!("l{l}")),
            ),
            Target::Route { route, grpc, rule } => (
                "app",
                if *grpc { "GRPCRoute" } else { "HTTPRoute" },
                format!("r{route}"),
                rule.map(|k| format!("rule{k}")),
            ),
        };
        let section = section
            .map(|s| format!(", sectionName: {s}"))
            .unwrap_or_default();
        let ext_auth = match &p.action {
            Action::Disable => "{disable: {}}".to_string(),
            Action::Ref { ext, cross_ns } => {
                let ext_ns = match ext {
                    0 => "auth",
                    1 => "app",
                    _ => {
                        if *cross_ns {
                            "auth"
                        } else {
                            ns
                        }
                    }
                };
                if ext_ns == ns && !*cross_ns {
                    format!("{{extensionRef: {{name: ext{ext}}}}}")
                } else {
                    format!("{{extensionRef: {{name: ext{ext}, namespace: {ext_ns}}}}}")
                }
            }
        };
        y.push_str(&format!("---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: p{i}, namespace: {ns}}}\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: {kind}, name: {name}{section}}}]\n  extAuth: {ext_auth}\n"));
    }
    y
}

/// (covered by an extensionRef policy, covered by a disable) for route `route` (a GRPCRoute
/// when `grpc`), rule `rule`, served by Gateway `gw` on listener `listener`.
fn coverage(
    c: &Config,
    gw: usize,
    listener: usize,
    (route, grpc): (usize, bool),
    rule: usize,
) -> (bool, bool) {
    let mut by_ref = false;
    let mut disabled = false;
    for p in &c.policies {
        let covers = match &p.target {
            Target::Gateway { gw: g, listener: l } => *g == gw && l.is_none_or(|l| l == listener),
            Target::Route {
                route: r,
                grpc: g,
                rule: k,
            } => *r == route && *g == grpc && k.is_none_or(|k| k == rule),
        };
        if covers {
            match p.action {
                Action::Ref { .. } => by_ref = true,
                Action::Disable => disabled = true,
            }
        }
    }
    (by_ref, disabled)
}

/// Filters of the listener on `port`.
fn listener_filters(res: &GatewayResources, port: u16) -> Vec<String> {
    let Some(l) = res
        .listeners
        .iter()
        .find(|l| l.name == format!("http-{port}"))
    else {
        return Vec::new();
    };
    l.filter_chains
        .iter()
        .flat_map(|fc| &fc.filters)
        .filter_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .flat_map(|hcm| hcm.http_filters)
        .map(|f| f.name)
        .collect()
}

/// True when the route enables ext_authz on a filter its listener has.
fn checked(r: &Route, filters: &[String]) -> bool {
    r.typed_per_filter_config.iter().any(|(name, any)| {
        name.starts_with("envoy.filters.http.ext_authz/")
            && filters.contains(name)
            && ExtAuthzPerRoute::decode(any.value.as_slice())
                .ok()
                .and_then(|c| c.r#override)
                .is_some_and(|o| matches!(o, ext_authz_per_route::Override::CheckSettings(_)))
    })
}

fn check(c: &Config) -> Result<usize, String> {
    let text = manifests(c);
    let loaded = load_str(Path::new("gen.yaml"), &text);
    if !loaded.errors.is_empty() {
        return Err(format!(
            "generated manifests do not load: {:?}\n{text}",
            loaded.errors
        ));
    }
    let mut store = Store::new();
    for o in loaded.objects {
        store.apply(o);
    }
    let model = build(&store, &ModelConfig::default());
    let mut protected = 0;
    for gw in &model.gateways {
        let g: usize = gw
            .key
            .name
            .trim_start_matches("gw")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let res = translate_gateway(gw, &TranslateOptions::default());
        for rc in res.routes.iter().map(|r| r.to_proto()) {
            let port: u16 = rc
                .name
                .trim_start_matches("http-")
                .parse()
                .map_err(|e| format!("{e}"))?;
            let listener = PORTS
                .iter()
                .position(|p| *p == port)
                .ok_or("unknown port")?;
            let filters = listener_filters(&res, port);
            for r in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
                // httproute/app/rN/rule/K/match/0 (grpcroute/… for a GRPCRoute)
                let parts: Vec<&str> = r.name.split('/').collect();
                let grpc = match parts[0] {
                    "grpcroute" => true,
                    "httproute" => false,
                    other => return Err(format!("route {} of kind {other}", r.name)),
                };
                let route: usize = parts[2]
                    .trim_start_matches('r')
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                let rule: usize = parts[4].parse().map_err(|e| format!("{e}"))?;
                let (by_ref, disabled) = coverage(c, g, listener, (route, grpc), rule);
                let forwards = matches!(r.action, Some(route::Action::Route(_)));
                if by_ref && !disabled {
                    protected += 1;
                    if forwards && !checked(r, &filters) {
                        return Err(format!(
                            "route {} on {} port {port} is protected by a policy but served unchecked\n{text}",
                            r.name, gw.key
                        ));
                    }
                }
            }
        }
    }
    Ok(protected)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn protected_routes_are_never_served_unchecked(c in config()) {
        if let Err(e) = check(&c) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// The property is not vacuous: the generator does produce protected routes, including
/// broken ones that must fail closed.
#[test]
fn generator_reaches_protected_and_broken_routes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = config();
    let (mut protected, mut fail_closed) = (0, 0);
    for _ in 0..500 {
        let c = strategy.new_tree(&mut runner).expect("tree").current();
        protected += check(&c).expect("property holds");
        let text = manifests(&c);
        if text.contains("name: ext2") || !c.auth_service {
            fail_closed += 1;
        }
    }
    assert!(
        protected > 100,
        "only {protected} protected routes in 500 configs"
    );
    assert!(
        fail_closed > 50,
        "only {fail_closed} configs with broken references"
    );
}
