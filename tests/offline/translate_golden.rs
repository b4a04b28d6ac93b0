//! Golden tests: every case under tests/testdata/translate translates to its `expected.yaml`.
//! `make golden` (`UPDATE_GOLDEN=1 cargo test --test offline translate_golden::`) rewrites the
//! files after a reviewed change; the assertions below pin the behaviour the goldens must keep.

use crate::support;

use gatehouse::model::{self, ModelConfig};
use gatehouse::source::files;
use gatehouse::store::Store;
use gatehouse::translate::{self, TranslateOptions};
use serde_json::Value;

fn translate_case(case: &support::Case) -> Value {
    let load = files::load_paths(&case.inputs);
    assert!(load.errors.is_empty(), "{}: {:?}", case.name, load.errors);
    let mut store = Store::new();
    for o in load.objects {
        store.apply(o);
    }
    let m = model::build(&store, &ModelConfig::default());
    let res: Vec<_> = m
        .gateways
        .iter()
        .map(|g| translate::translate_gateway(g, &TranslateOptions::default()))
        .collect();
    gatehouse::render::translate_json(&res, &m.status).expect("renders")
}

#[test]
fn goldens_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for case in support::cases() {
        let got = yaml_serde::to_string(&translate_case(&case)).expect("yaml");
        let path = case.dir.join("expected.yaml");
        if update {
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            stale.push(case.name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "output differs from expected.yaml for {stale:?}; review with UPDATE_GOLDEN=1 and git diff"
    );
}

fn case(name: &str) -> Value {
    let case = support::cases()
        .into_iter()
        .find(|c| c.name == name)
        .expect("case exists");
    translate_case(&case)
}

/// The route `name` of the Gateway's first route config, in the virtual host `host`.
fn route<'a>(doc: &'a Value, host: &str, name: &str) -> &'a Value {
    doc["gateways"][0]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rc| rc["virtualHosts"].as_array().into_iter().flatten())
        .filter(|vh| vh["name"] == host)
        .flat_map(|vh| vh["routes"].as_array().into_iter().flatten())
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("route {name} on {host}"))
}

/// The HTTP filters of a listener after the chain guard, which the guard test checks.
fn http_filters(doc: &Value, listener: usize) -> Vec<&Value> {
    let all = chain(doc, listener);
    assert_eq!(
        all[0]["name"], "gatehouse.chain_guard",
        "the guard is first"
    );
    all[1..].iter().collect()
}

fn chain(doc: &Value, listener: usize) -> &Vec<Value> {
    doc["gateways"][0]["listeners"][listener]["filterChains"][0]["filters"][0]["typedConfig"]["httpFilters"]
        .as_array()
        .expect("http filters")
}

const SEED_FILTER: &str = "envoy.filters.http.ext_authz/kgateway-system/basic-ext-auth";
const SEED_ROUTE: &str = "httproute/httpbin/httpbin/rule/0/match/0";

#[test]
fn seed_gateway_policy_protects_headers_with_grpc_ext_authz_over_http2() {
    let doc = case("seed-gateway-policy");
    let filters = http_filters(&doc, 0);
    assert_eq!(filters[0]["name"], SEED_FILTER);
    assert_eq!(filters[0]["disabled"], true);
    let grpc = &filters[0]["typedConfig"]["grpcService"]["envoyGrpc"];
    assert_eq!(
        grpc["clusterName"],
        "extauth/kgateway-system/basic-ext-auth"
    );
    assert_eq!(
        filters.last().expect("router")["name"],
        "envoy.filters.http.router"
    );

    let r = route(&doc, "www.example.com", SEED_ROUTE);
    assert_eq!(r["match"]["prefix"], "/");
    let per_route = &r["typedPerFilterConfig"][SEED_FILTER];
    assert_eq!(
        per_route["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
    );
    assert!(per_route.get("checkSettings").is_some(), "{per_route}");
    assert!(per_route.get("disabled").is_none());

    let clusters = doc["gateways"][0]["clusters"].as_array().expect("clusters");
    let auth = clusters
        .iter()
        .find(|c| c["name"] == "extauth/kgateway-system/basic-ext-auth")
        .expect("auth cluster");
    let h2 = &auth["typedExtensionProtocolOptions"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert!(
        h2["explicitHttpConfig"]
            .get("http2ProtocolOptions")
            .is_some(),
        "{auth}"
    );
    let endpoints = doc["gateways"][0]["endpoints"]
        .as_array()
        .expect("endpoints");
    let auth_eps = endpoints
        .iter()
        .find(|e| e["clusterName"] == auth["name"])
        .expect("auth endpoints");
    let addr = &auth_eps["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"];
    assert_eq!(
        (addr["address"].as_str(), addr["portValue"].as_u64()),
        (Some("127.0.0.1"), Some(9000))
    );
}

#[test]
fn seed_route_disable_marks_the_route_disabled() {
    let doc = case("seed-route-disable");
    let r = route(&doc, "www.example.com", SEED_ROUTE);
    assert_eq!(r["typedPerFilterConfig"][SEED_FILTER]["disabled"], true);
    assert_eq!(r["route"]["cluster"], "service/httpbin/httpbin/8000");
    let policy =
        &doc["status"]["trafficPolicies"]["httpbin/route-ext-auth-policy"][0]["conditions"];
    assert_eq!(policy[1]["type"], "Attached");
    assert_eq!(policy[1]["status"], "True");
}

#[test]
fn missing_references_fail_closed_for_their_routes_only() {
    for name in [
        "missing-extension",
        "missing-service",
        "cross-namespace-without-grant",
    ] {
        let doc = case(name);
        for host in ["shop.example.com", "api.internal.example.com"] {
            let r = route(&doc, host, "httproute/app/shop/rule/0/match/0");
            assert_eq!(r["directResponse"]["status"], 500, "{name}: {r}");
            assert!(
                r.get("route").is_none(),
                "{name}: a failed-closed route must not forward"
            );
        }
        let health = route(
            &doc,
            "shop.example.com",
            "httproute/app/health/rule/0/match/0",
        );
        assert_eq!(
            health["route"]["cluster"], "service/app/web/80",
            "{name}: neighbour route keeps working"
        );
        assert!(
            doc["status"]["trafficPolicies"]["app/shop-auth"][0]["conditions"][0]["status"]
                == "False",
            "{name}"
        );
    }
}

/// Identities the guard of a listener lets through, from its config.
fn guard_allows(doc: &Value, listener: usize) -> Vec<String> {
    let policy =
        &chain(doc, listener)[0]["typedConfig"]["rules"]["policies"]["provider-not-on-this-chain"];
    let rules = &policy["permissions"][0]["andRules"]["rules"];
    rules[1]["notRule"]["orRules"]["rules"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|p| {
                    p["sourcedMetadata"]["metadataMatcher"]["value"]["stringMatch"]["exact"]
                        .as_str()
                        .expect("exact identity")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_protected_route_names_an_identity_its_guard_allows() {
    for name in [
        "seed-gateway-policy",
        "all-options",
        "listener-level",
        "rule-level",
    ] {
        let doc = case(name);
        let listeners = doc["gateways"][0]["listeners"]
            .as_array()
            .expect("listeners");
        for (i, l) in listeners.iter().enumerate() {
            let allowed = guard_allows(&doc, i);
            let table = l["name"].as_str().expect("name");
            let routes = doc["gateways"][0]["routes"]
                .as_array()
                .expect("routes")
                .iter()
                .find(|r| r["name"] == table)
                .expect("table of the listener");
            let mut protected = 0;
            for vh in routes["virtualHosts"].as_array().expect("hosts") {
                for r in vh["routes"].as_array().into_iter().flatten() {
                    let enabled = r["typedPerFilterConfig"]
                        .as_object()
                        .is_some_and(|m| m.values().any(|c| c.get("checkSettings").is_some()));
                    let id = r["metadata"]["filterMetadata"]["gatehouse"]["ext_authz"].as_str();
                    assert_eq!(enabled, id.is_some(), "{name}: {r}");
                    if let Some(id) = id {
                        protected += 1;
                        assert!(
                            allowed.iter().any(|a| a == id),
                            "{name}: {id} not in {allowed:?}"
                        );
                    }
                }
            }
            assert_eq!(allowed.is_empty(), protected == 0, "{name} {table}");
        }
    }
    let doc = case("all-options");
    assert_eq!(guard_allows(&doc, 0), ["auth/full;fail-open"]);
}

#[test]
fn all_options_reach_the_filter_and_the_route() {
    let doc = case("all-options");
    let filter = &http_filters(&doc, 0)[0]["typedConfig"];
    assert_eq!(
        filter["grpcService"]["envoyGrpc"]["authority"],
        "authz.example.internal"
    );
    assert_eq!(filter["grpcService"]["retryPolicy"]["numRetries"], 3);
    assert_eq!(
        filter["grpcService"]["retryPolicy"]["retryBackOff"]["maxInterval"],
        "0.100s"
    );
    assert_eq!(
        filter["grpcService"]["retryPolicy"]["retryOn"],
        "connect-failure,refused-stream,reset,unavailable"
    );
    assert!(
        filter["grpcService"]["envoyGrpc"]
            .get("retryPolicy")
            .is_none(),
        "EnvoyGrpc.retry_policy is for xDS only"
    );
    assert_eq!(filter["grpcService"]["timeout"], "1.500s");
    assert_eq!(filter["failureModeAllow"], true);
    assert_eq!(filter["clearRouteCache"], true);
    assert_eq!(filter["statusOnError"]["code"], "ServiceUnavailable");
    assert_eq!(filter["statPrefix"], "full_authz");
    assert_eq!(filter["withRequestBody"]["maxRequestBytes"], 8192);
    assert_eq!(filter["withRequestBody"]["packAsBytes"], true);
    assert_eq!(filter["allowedHeaders"]["patterns"][1]["exact"], "x-tenant");
    assert_eq!(
        filter["metadataContextNamespaces"][0],
        "envoy.filters.http.jwt_authn"
    );
    assert_eq!(filter["includePeerCertificate"], true);
    assert_eq!(filter["includeTlsSession"], true);
    assert_eq!(filter["emitFilterStateStats"], true);
    let r = route(
        &doc,
        "shop.example.com",
        "httproute/app/shop/rule/1/match/0",
    );
    let settings =
        &r["typedPerFilterConfig"]["envoy.filters.http.ext_authz/auth/full"]["checkSettings"];
    assert_eq!(settings["contextExtensions"]["tier"], "gold");
    assert_eq!(settings["withRequestBody"]["maxRequestBytes"], 1024);
}

#[test]
fn http_service_variant() {
    let doc = case("http-service");
    let svc = &http_filters(&doc, 0)[0]["typedConfig"]["httpService"];
    assert_eq!(svc["serverUri"]["cluster"], "extauth/auth/http-authz");
    assert_eq!(svc["serverUri"]["timeout"], "0.750s");
    assert_eq!(svc["pathPrefix"], "/verify");
    assert_eq!(
        svc["authorizationRequest"]["headersToAdd"][0]["key"],
        "x-gateway"
    );
    assert_eq!(
        svc["authorizationResponse"]["allowedClientHeaders"]["patterns"][0]["exact"],
        "location"
    );
    assert_eq!(
        svc["authorizationResponse"]["allowedUpstreamHeaders"]["patterns"][0]["exact"],
        "x-current-user"
    );
    let clusters = doc["gateways"][0]["clusters"].as_array().expect("clusters");
    let auth = clusters
        .iter()
        .find(|c| c["name"] == "extauth/auth/http-authz")
        .expect("auth cluster");
    assert!(
        auth.get("typedExtensionProtocolOptions").is_none(),
        "HTTP/1.1 service: {auth}"
    );
}

#[test]
fn listener_level_policy_only_installs_on_its_port() {
    let doc = case("listener-level");
    let ports: Vec<_> = doc["gateways"][0]["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|l| l["name"].clone())
        .collect();
    assert_eq!(ports, ["http-8080", "http-8081"]);
    assert_eq!(
        http_filters(&doc, 0).len(),
        1,
        "port 8080 has only the router"
    );
    assert_eq!(
        http_filters(&doc, 1)[0]["name"],
        "envoy.filters.http.ext_authz/infra/authz"
    );
}

#[test]
fn rule_level_policy_reenables_one_rule() {
    let doc = case("rule-level");
    let checkout = route(
        &doc,
        "shop.example.com",
        "httproute/app/shop/rule/0/match/0",
    );
    let catalog = route(
        &doc,
        "shop.example.com",
        "httproute/app/shop/rule/1/match/0",
    );
    let filter = "envoy.filters.http.ext_authz/infra/authz";
    assert_eq!(
        checkout["typedPerFilterConfig"][filter]["checkSettings"]["contextExtensions"]["rule"],
        "checkout"
    );
    assert_eq!(catalog["typedPerFilterConfig"][filter]["disabled"], true);
    let health = route(
        &doc,
        "shop.example.com",
        "httproute/app/health/rule/0/match/0",
    );
    assert!(
        health["typedPerFilterConfig"][filter]
            .get("checkSettings")
            .is_some(),
        "gateway-level still applies"
    );
}

#[test]
fn external_auth_filter_becomes_an_inline_provider_of_its_rule() {
    let doc = case("external-auth-filter");
    let grpc_filter = "envoy.filters.http.ext_authz/app/filtered:rule0:externalauth";
    let http_filter = "envoy.filters.http.ext_authz/app/filtered:rule1:externalauth";
    let filters = http_filters(&doc, 0);
    let find = |name: &str| {
        filters
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("filter {name}"))
    };
    let grpc = &find(grpc_filter)["typedConfig"];
    assert_eq!(grpc["allowedHeaders"]["patterns"][1]["exact"], "x-tenant");
    assert_eq!(grpc["withRequestBody"]["maxRequestBytes"], 4096);
    assert_eq!(
        grpc["withRequestBody"]["allowPartialMessage"], true,
        "GEP-1494 truncates larger bodies"
    );
    let http = &find(http_filter)["typedConfig"]["httpService"];
    assert_eq!(http["pathPrefix"], "/check");
    assert_eq!(
        http["authorizationResponse"]["allowedUpstreamHeaders"]["patterns"][0]["exact"],
        "x-user"
    );

    let on = |rule: usize, filter: &str| {
        route(
            &doc,
            "filtered.example.com",
            &format!("httproute/app/filtered/rule/{rule}/match/0"),
        )["typedPerFilterConfig"][filter]
            .get("checkSettings")
            .is_some()
    };
    assert!(
        on(0, grpc_filter) && !on(0, "envoy.filters.http.ext_authz/infra/authz"),
        "the filter beats the gateway policy"
    );
    assert!(on(1, http_filter));
    assert!(
        on(2, "envoy.filters.http.ext_authz/infra/authz"),
        "rules without a filter keep the policy"
    );

    // GEP-1494's defaults: `maxSize: 0` forwards no body, so nothing is buffered, and no
    // `allowedResponseHeaders` copies every header of the answer, Host and framing excepted.
    let defaults_filter = "envoy.filters.http.ext_authz/app/filtered:rule3:externalauth";
    assert!(on(3, defaults_filter));
    let defaults = &find(defaults_filter)["typedConfig"];
    assert!(defaults.get("withRequestBody").is_none(), "{defaults}");
    assert_eq!(
        defaults["httpService"]["authorizationResponse"]["allowedUpstreamHeaders"]["patterns"][0]["safeRegex"]
            ["regex"],
        ".*"
    );
    let rules = &defaults["decoderHeaderMutationRules"];
    assert_eq!(rules["disallowSystem"], true);
    assert!(rules.get("allowAllRouting").is_none(), "host stays refused");
    let disallowed = rules["disallowExpression"]["regex"]
        .as_str()
        .unwrap_or_default();
    assert!(
        disallowed.split('|').any(|h| h == "content-length"),
        "{disallowed}"
    );
    assert!(
        find(http_filter)["typedConfig"]
            .get("decoderHeaderMutationRules")
            .is_none(),
        "a listed allowedResponseHeaders is used as is"
    );
}

/// Translating the same model twice gives byte-identical protos. The fuzzer found that a route
/// with several context extensions did not (map fields encoded in HashMap order).
#[test]
fn translation_is_deterministic() {
    let path = support::repo().join("tests/testdata/regressions/context-extensions-order.yaml");
    let text = std::fs::read_to_string(&path).expect("regression input");
    let out = gatehouse::source::files::load_str(&path, &text);
    let mut store = gatehouse::store::Store::new();
    for o in out.objects {
        store.apply(o);
    }
    let model = gatehouse::model::build(&store, &gatehouse::model::ModelConfig::default());
    assert!(!model.gateways.is_empty());
    for gw in &model.gateways {
        let options = gatehouse::translate::TranslateOptions::default();
        let a =
            gatehouse::snapshot::snapshot(&gatehouse::translate::translate_gateway(gw, &options));
        let b =
            gatehouse::snapshot::snapshot(&gatehouse::translate::translate_gateway(gw, &options));
        assert!(
            a.same_versions(&b),
            "{}: versions differ between two translations",
            gw.key
        );
    }
}
