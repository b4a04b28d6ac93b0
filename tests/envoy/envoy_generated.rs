//! Whatever a tenant writes, Envoy accepts what Gatehouse makes of it: generated HTTPRoutes,
//! GRPCRoutes, GatewayExtensions and TrafficPolicies — valid ones and adversarial ones (regexes around
//! Envoy's RE2 size limit and in RE2-only syntax, `%` everywhere, `host`/`:path` headers,
//! CR/LF/NUL, unicode, long values, odd hostnames, redirects, rewrites, timeouts) — are
//! translated, and the real Envoy validates the result (`envoy --mode validate`).
//!
//! Envoy's start-up is the cost, so many cases share one bootstrap (one namespace and
//! hostname each, all on one port: a single refused value fails the batch); a failing batch
//! is bisected down to the one case that breaks it. `GATEHOUSE_VALIDATE_CASES` sets the number
//! of cases (default 300; `make envoy-generated` runs 10,000), `GATEHOUSE_VALIDATE_SEED` the
//! seed; `GATEHOUSE_VALIDATE_DUMP=1` prints the status of every route validation rejected.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use gatehouse::model::{FORMAT_COMMANDS, FormatArgument, ModelConfig, build, find};
use gatehouse::source::files::load_str;
use gatehouse::store::Store;
use gatehouse::translate::{TranslateOptions, translate_gateway};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const BATCH: usize = 250;

fn pick<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> BoxedStrategy<T> {
    prop::sample::select(items).boxed()
}

/// `good` values, and in adversarial cases (`adv` > 0) one `bad` value in five.
fn mixed<T: Clone + std::fmt::Debug + 'static>(
    good: Vec<T>,
    bad: Vec<T>,
    adv: u32,
) -> BoxedStrategy<T> {
    prop_oneof![4 => pick(good), adv => pick(bad)].boxed()
}

fn long(c: &str, n: usize) -> String {
    c.repeat(n)
}

fn path(adv: u32) -> BoxedStrategy<String> {
    prop_oneof![
        24 => pick(vec!["/", "/a", "/a/", "/a/b", "/100%25", "/x.y~z!$&'()*+,;=:@", "/api/v1/"])
            .prop_map(String::from),
        adv => pick(vec!["/a b", "/a?b", "/a#b", "a", "/ü", "/a\nb", "//", "/a\\1", "/%", ""])
            .prop_map(String::from),
        2 => (0usize..1000 + 100 * adv as usize).prop_map(|n| format!("/{}", long("p", n))),
    ]
    .boxed()
}

fn regex(adv: u32) -> BoxedStrategy<String> {
    let soup = prop::collection::vec(
        pick("ab/.*+?()[]{}|^$\\-:dwsDpLP<>&=!,019Z".chars().collect()),
        1..24,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    prop_oneof![
        2 => (1usize..95 + 45 * adv as usize).prop_map(|n| format!("/a{{{n}}}")),
        2 => (1usize..8 + 6 * adv as usize).prop_map(|m| format!("/(ab|cd|ef|gh|ij|kl|mn|op){{1,{m}}}")),
        1 => (80usize..96 + 14 * adv as usize).prop_map(|n| long("a", n)),
        8 => pick(vec![
            "/v[0-9]+", "/users/[a-z]+/?", ".*", "/(foo|bar)/.*", "[[:alpha:]]+", "\\p{Greek}",
            "(?P<v>[0-9]+)", "/\\Q(x)\\E", "(?i)/ABC", "^/exact$", "[^/]+",
        ])
        .prop_map(String::from),
        adv => pick(vec![
            "/(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p){3,10}", "[[:alpha:]]+", "\\pL+", "(?<n>x)",
            "(?P<n>x)", "[a&&b]", "\\<x", "\\Z", "a**", "(?i)/ABC", "\\C", "\\Q.*\\E", "x{1001}",
            "/v[0-9]+/.*", "^/exact$", "(", "[z-a]", "\\8", "", "/ü+", ".*",
        ])
        .prop_map(String::from),
        adv => soup,
    ]
    .boxed()
}

fn header_name(adv: u32) -> BoxedStrategy<String> {
    prop_oneof![
        30 => pick(vec!["x-a", "X-Up", "x_y", "te", "connection", "content-length", "x-envoy-foo", "%"])
            .prop_map(String::from),
        2 * adv => pick(vec!["host", "Host", "HOST", ":path", ":authority", "a b", "ü", "", "x\r"])
            .prop_map(String::from),
        adv => Just(long("h", 257)),
    ]
    .boxed()
}

fn header_value(adv: u32) -> BoxedStrategy<String> {
    prop_oneof![
        30 => pick(vec!["v", "100%", "%", "%%", "%REQ(x)%", "a%b%c", "%FOO%", "50% off", "%%%",
            "tab\tx", "ü€", " lead", "trail ", "\\1"])
            .prop_map(String::from),
        adv => pick(vec!["a\r\nb", "nul\0", "cr\r", "lf\n"]).prop_map(String::from),
        1 => pick(vec![long("x", 4096), long("%", 4096)]),
        adv => Just(long("y", 17000)),
    ]
    .boxed()
}

fn hostname(adv: u32) -> BoxedStrategy<String> {
    prop_oneof![
        6 => pick(vec!["ok.example.com", "b.example.org", "x-y.z"]),
        adv => pick(vec!["*.w.example.com", "Upper.Example.com", "a b", "ü.example", "*", "a..b", "-a.com", "x:80"]),
    ]
    .prop_map(String::from)
    .boxed()
}

fn duration(adv: u32) -> BoxedStrategy<String> {
    prop_oneof![
        8 => pick(vec!["1ms", "10s", "1h2m3s4ms", "99999h59m59s999ms", "250ms"]),
        adv => pick(vec!["0s", "0ms", "soon", "-1s", "1.5s", "99999h99999h99999h99999h"]),
    ]
    .prop_map(String::from)
    .boxed()
}

fn regex_or_exact(adv: u32) -> BoxedStrategy<(bool, String)> {
    prop_oneof![(Just(false), header_value(adv)), (Just(true), regex(adv)),].boxed()
}

fn one_match(adv: u32) -> BoxedStrategy<Value> {
    let path = prop_oneof![
        (pick(vec!["Exact", "PathPrefix"]), path(adv))
            .prop_map(|(t, v)| json!({"type": t, "value": v})),
        regex(adv).prop_map(|v| json!({"type": "RegularExpression", "value": v})),
    ];
    let headers = prop::collection::vec((header_name(adv), regex_or_exact(adv)), 0..3);
    let query = prop::collection::vec((header_name(adv), regex_or_exact(adv)), 0..2);
    let method = prop::option::of(pick(vec!["GET", "POST", "DELETE"]));
    (prop::option::of(path), headers, query, method)
        .prop_map(|(path, headers, query, method)| {
            let kv = |(name, (re, value)): (String, (bool, String))| {
                let t = if re { "RegularExpression" } else { "Exact" };
                json!({"name": name, "value": value, "type": t})
            };
            let mut m = json!({
                "headers": headers.into_iter().map(kv).collect::<Vec<_>>(),
                "queryParams": query.into_iter().map(kv).collect::<Vec<_>>(),
            });
            if let Some(p) = path {
                m["path"] = p;
            }
            if let Some(method) = method {
                m["method"] = json!(method);
            }
            m
        })
        .boxed()
}

fn header_modifier(adv: u32) -> BoxedStrategy<Value> {
    let pairs = || {
        prop::collection::vec(
            (header_name(adv), header_value(adv)).prop_map(|(n, v)| json!({"name": n, "value": v})),
            0..3,
        )
    };
    (
        pairs(),
        pairs(),
        prop::collection::vec(header_name(adv), 0..2),
    )
        .prop_map(|(set, add, remove)| json!({"set": set, "add": add, "remove": remove}))
        .boxed()
}

fn path_modifier(adv: u32) -> BoxedStrategy<Value> {
    prop_oneof![
        path(adv).prop_map(|p| json!({"type": "ReplaceFullPath", "replaceFullPath": p})),
        path(adv).prop_map(|p| json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": p})),
    ]
    .boxed()
}

fn filter(adv: u32) -> BoxedStrategy<Value> {
    prop_oneof![
        3 => header_modifier(adv)
            .prop_map(|m| json!({"type": "RequestHeaderModifier", "requestHeaderModifier": m})),
        2 => header_modifier(adv)
            .prop_map(|m| json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": m})),
        1 => (
            prop::option::of(hostname(adv)),
            prop::option::of(path_modifier(adv)),
            prop::option::of(mixed(vec![80i64, 8443, 65535], vec![0, 70000], adv)),
            mixed(vec![301i64, 302, 303, 307, 308], vec![305, 200], adv),
            prop::option::of(pick(vec!["http", "https"])),
        )
            .prop_map(|(hostname, path, port, code, scheme)| {
                let mut r = json!({"statusCode": code});
                if let Some(h) = hostname { r["hostname"] = json!(h); }
                if let Some(p) = path { r["path"] = p; }
                if let Some(p) = port { r["port"] = json!(p); }
                if let Some(s) = scheme { r["scheme"] = json!(s); }
                json!({"type": "RequestRedirect", "requestRedirect": r})
            }),
        1 => (prop::option::of(hostname(adv)), prop::option::of(path_modifier(adv)))
            .prop_map(|(hostname, path)| {
                let mut r = json!({});
                if let Some(h) = hostname { r["hostname"] = json!(h); }
                if let Some(p) = path { r["path"] = p; }
                json!({"type": "URLRewrite", "urlRewrite": r})
            }),
    ]
    .boxed()
}

/// A GRPCRoute method match: names the CRD takes, and (adversarial) ones it refuses, which
/// files deliver all the same; regexes like the path ones.
fn grpc_match(adv: u32) -> BoxedStrategy<Value> {
    let name = || {
        prop::option::of(mixed(
            vec!["Echo", "pkg.v1.Svc", "_x", "a.b.c", ""],
            vec!["a/b", "1x", "a b", "a\nb", "é", "a..b", "*"],
            adv,
        ))
    };
    let method = prop_oneof![
        (name(), name())
            .prop_map(|(service, method)| json!({"service": service, "method": method})),
        (prop::option::of(regex(adv)), prop::option::of(regex(adv))).prop_map(
            |(service, method)| {
                json!({"type": "RegularExpression", "service": service, "method": method})
            }
        ),
    ];
    let headers = prop::collection::vec((header_name(adv), regex_or_exact(adv)), 0..2);
    (prop::option::of(method), headers)
        .prop_map(|(method, headers)| {
            let headers: Vec<Value> = headers
                .into_iter()
                .map(|(name, (re, value))| {
                    let t = if re { "RegularExpression" } else { "Exact" };
                    json!({"name": name, "value": value, "type": t})
                })
                .collect();
            let mut m = json!({"headers": headers});
            if let Some(mut method) = method {
                strip_nulls(&mut method);
                m["method"] = method;
            }
            m
        })
        .boxed()
}

fn grpc_rule(k: usize, adv: u32) -> BoxedStrategy<Value> {
    let filter = prop_oneof![
        header_modifier(adv)
            .prop_map(|m| json!({"type": "RequestHeaderModifier", "requestHeaderModifier": m})),
        header_modifier(adv)
            .prop_map(|m| json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": m})),
        (0i64..=100).prop_map(|p| json!({"type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "web", "port": 80}, "percent": p}})),
    ];
    (
        prop::collection::vec(grpc_match(adv), 0..3),
        prop::collection::vec(filter, 0..2),
        prop::collection::vec(mixed(vec![0i64, 1, 100], vec![2_147_483_647], adv), 1..3),
    )
        .prop_map(move |(matches, filters, weights)| {
            let backends: Vec<Value> = weights
                .into_iter()
                .map(|w| json!({"name": "web", "port": 80, "weight": w}))
                .collect();
            json!({"name": format!("grpc{k}"), "matches": matches, "filters": filters, "backendRefs": backends})
        })
        .boxed()
}

fn rule(k: usize, adv: u32) -> BoxedStrategy<Value> {
    let backend = (
        mixed(vec![0i64, 1, 100, 1_000_000], vec![2_147_483_647], adv),
        prop::collection::vec(header_modifier(adv), 0..2),
    )
        .prop_map(|(weight, mods)| {
            let filters: Vec<Value> = mods
                .into_iter()
                .map(|m| json!({"type": "RequestHeaderModifier", "requestHeaderModifier": m}))
                .collect();
            json!({"name": "web", "port": 80, "weight": weight, "filters": filters})
        });
    (
        prop::collection::vec(one_match(adv), 0..3),
        prop::collection::vec(filter(adv), 0..3),
        prop::collection::vec(backend, 1..4),
        prop::option::of((prop::option::of(duration(adv)), prop::option::of(duration(adv)))),
        prop::option::of((0i64..4, prop::option::of(duration(adv)))),
    )
        .prop_map(move |(matches, filters, backends, timeouts, retry)| {
            let mut r = json!({"name": format!("rule{k}"), "matches": matches, "filters": filters, "backendRefs": backends});
            if let Some((request, backend)) = timeouts {
                r["timeouts"] = json!({"request": request, "backendRequest": backend});
            }
            if let Some((attempts, backoff)) = retry {
                r["retry"] = json!({"attempts": attempts, "backoff": backoff, "codes": [500, 503]});
            }
            r
        })
        .boxed()
}

fn format_value(adv: u32) -> BoxedStrategy<String> {
    let commands: Vec<String> = FORMAT_COMMANDS
        .iter()
        .map(|(name, arg)| match arg {
            FormatArgument::None => format!("%{name}%"),
            FormatArgument::Required if *name == "REQ" => "%REQ(x-user?:path):12%".to_string(),
            FormatArgument::Required => format!("%{name}(ns:key)%"),
        })
        .collect();
    prop_oneof![
        3 => pick(commands).prop_map(|c| format!("a-{c}-b")),
        2 => header_value(adv),
    ]
    .boxed()
}

/// A GatewayExtension (`ext` in the case's namespace) as JSON.
fn extension(adv: u32) -> BoxedStrategy<Value> {
    let retry = (0i64..3, duration(adv), prop::option::of(duration(adv)))
        .prop_map(|(a, base, max)| json!({"attempts": a, "backoff": {"baseInterval": base, "maxInterval": max}}));
    let service = prop_oneof![
        (
            prop::option::of(mixed(
                vec!["authz.local".to_string(), "a b".into(), "%".into()],
                vec!["a\nb".into(), long("a", 17000)],
                adv,
            )),
            prop::option::of(duration(adv)),
            prop::option::of(retry.clone()),
        )
            .prop_map(|(authority, timeout, retry)| {
                json!({"grpcService": {"backendRef": {"name": "authz", "port": 9000},
                    "authority": authority, "requestTimeout": timeout, "retry": retry}})
            }),
        (
            prop::option::of(mixed(vec!["", "/x", "/100%"], vec!["check", "/a\nb"], adv)),
            prop::collection::btree_map(header_name(adv), format_value(adv), 0..3),
            prop::option::of(retry),
        )
            .prop_map(|(prefix, headers, retry)| {
                json!({"httpService": {"backendRef": {"name": "authz", "port": 9000},
                    "pathPrefix": prefix, "retry": retry,
                    "authorizationRequest": {"headersToAdd": headers}}})
            }),
    ];
    (
        service,
        prop::option::of(mixed(
            vec![100i64, 200, 403, 418, 500, 503, 511],
            vec![199, 209, 600],
            adv,
        )),
        prop::option::of(mixed(vec!["x", "a b", "a.b.", "ü", "%"], vec![""], adv)),
        prop::option::of(mixed(vec![1i64, 1024], vec![0], adv)),
        prop::option::of(prop::collection::vec(
            header_name(adv),
            (1 - adv.min(1) as usize)..3,
        )),
    )
        .prop_map(|(mut ext, status, stat_prefix, body, forward)| {
            ext["statusOnError"] = json!(status);
            ext["statPrefix"] = json!(stat_prefix);
            ext["headersToForward"] = json!(forward);
            ext["metadataContextNamespaces"] = json!(["envoy.filters.http.jwt_authn", "a b"]);
            if let Some(b) = body {
                ext["withRequestBody"] = json!({"maxRequestBytes": b});
            }
            strip_nulls(&mut ext);
            ext
        })
        .boxed()
}

/// A TrafficPolicy's `extAuth` and target rule, as JSON.
fn policy(adv: u32) -> BoxedStrategy<(Value, Option<String>)> {
    let ctx = prop::collection::btree_map(
        pick(vec!["team", "", "a\nb", "%", "ü"]).prop_map(String::from),
        header_value(adv),
        0..3,
    );
    (
        any::<bool>(),
        ctx,
        prop::option::of(mixed(vec![1i64, 4096], vec![0], adv)),
        prop::option::of(Just("rule0".to_string())),
    )
        .prop_map(|(disable, ctx, body, section)| {
            let mut auth = if disable {
                json!({"disable": {}})
            } else {
                json!({"extensionRef": {"name": "ext"}, "contextExtensions": ctx})
            };
            if let Some(b) = body {
                auth["withRequestBody"] = json!({"maxRequestBytes": b});
            }
            (auth, section)
        })
        .boxed()
}

#[derive(Clone, Debug)]
struct Case {
    hostnames: Vec<String>,
    rules: Vec<Value>,
    /// Rules of a GRPCRoute on a hostname of its own.
    grpc_rules: Vec<Value>,
    extension: Option<Value>,
    policy: Option<(Value, Option<String>)>,
}

/// Half the cases hold only values Gatehouse should serve as written; the other half mixes
/// in values Envoy refuses.
fn case() -> BoxedStrategy<Case> {
    prop_oneof![case_of(0), case_of(1)].boxed()
}

fn case_of(adv: u32) -> BoxedStrategy<Case> {
    (
        prop::option::weighted(0.2, prop::collection::vec(hostname(adv), 1..3)),
        (1usize..4).prop_flat_map(move |n| (0..n).map(|k| rule(k, adv)).collect::<Vec<_>>()),
        (0usize..3).prop_flat_map(move |n| (0..n).map(|k| grpc_rule(k, adv)).collect::<Vec<_>>()),
        prop::option::weighted(0.4, extension(adv)),
        prop::option::weighted(0.5, policy(adv)),
    )
        .prop_map(|(hostnames, rules, grpc_rules, extension, policy)| Case {
            hostnames: hostnames.unwrap_or_default(),
            rules,
            grpc_rules,
            extension,
            policy,
        })
        .boxed()
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        m.values_mut().for_each(strip_nulls);
    }
}

/// The manifests of case `i` (namespace `n{i}`, hostname `h{i}.example.com`), as JSON
/// documents (YAML reads them; JSON escapes every odd character safely).
fn manifests(i: usize, c: &Case) -> String {
    let ns = format!("n{i}");
    let hostnames = if c.hostnames.is_empty() {
        vec![format!("h{i}.example.com")]
    } else {
        c.hostnames.clone()
    };
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "authz", "namespace": ns},
            "spec": {"ports": [{"port": 9000}]}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": ns},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                "hostnames": hostnames, "rules": c.rules}}),
    ];
    if !c.grpc_rules.is_empty() {
        docs.push(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": "g", "namespace": ns},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                "hostnames": [format!("g{i}.example.com")], "rules": c.grpc_rules}}),
        );
    }
    if let Some(ext) = &c.extension {
        docs.push(
            json!({"apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "GatewayExtension",
            "metadata": {"name": "ext", "namespace": ns},
            "spec": {"type": "ExtAuth", "extAuth": ext}}),
        );
    }
    if let Some((auth, section)) = &c.policy {
        let mut target =
            json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"});
        if let Some(s) = section {
            target["sectionName"] = json!(s);
        }
        docs.push(
            json!({"apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": "p", "namespace": ns},
            "spec": {"targetRefs": [target], "extAuth": auth}}),
        );
    }
    docs.iter()
        .map(|d| format!("---\n{d}\n"))
        .collect::<String>()
}

const BASE: &str = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: gatehouse\n  listeners: [{name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: All}}}]\n";

#[derive(Debug, Default)]
struct Tally {
    envoy_runs: usize,
    documents: usize,
    load_errors: usize,
    invalid_routes: usize,
    invalid_extensions: usize,
    escaped_percent: usize,
}

/// Translates `cases` into one bootstrap; Envoy's complaint when it refuses it.
fn validate(cases: &[(usize, &Case)], dir: &Path, tally: &mut Tally) -> Result<(), String> {
    let text: String = std::iter::once(BASE.to_string())
        .chain(cases.iter().map(|(i, c)| manifests(*i, c)))
        .collect();
    let loaded = load_str(Path::new("gen.yaml"), &text);
    tally.documents += loaded.objects.len() + loaded.errors.len();
    tally.load_errors += loaded.errors.len();
    let mut store = Store::new();
    for o in loaded.objects {
        store.apply(o);
    }
    let model = build(&store, &ModelConfig::default());
    for s in model.status.http_routes.values() {
        let c = &s[0].conditions;
        if find(c, "PartiallyInvalid").is_some()
            || find(c, "Accepted").is_some_and(|a| a.reason == "UnsupportedValue")
        {
            tally.invalid_routes += 1;
            if std::env::var_os("GATEHOUSE_VALIDATE_DUMP").is_some() {
                for x in c {
                    eprintln!("{}", x.message);
                }
            }
        }
    }
    tally.invalid_extensions += model
        .status
        .gateway_extensions
        .values()
        .filter(|c| find(c, "Accepted").is_some_and(|a| a.reason == "InvalidSpec"))
        .count();
    let gw = model.gateways.first().ok_or("the Gateway is not served")?;
    let options = TranslateOptions {
        route_scopes_from: 0,
        ..Default::default()
    };
    let res = translate_gateway(gw, &options);
    let json = gatehouse::render::bootstrap_json(&res).map_err(|e| e.to_string())?;
    let body = json.to_string();
    tally.escaped_percent += body.matches("%%").count();
    let file = dir.join("bootstrap.json");
    std::fs::write(&file, body).map_err(|e| e.to_string())?;
    tally.envoy_runs += 1;
    let out = Command::new(support::envoy())
        .args(["--mode", "validate", "-l", "critical", "-c"])
        .arg(&file)
        .output()
        .map_err(|e| format!("run envoy: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Halves a refused batch until one case is left that Envoy refuses on its own.
fn bisect(cases: &[(usize, &Case)], dir: &Path, tally: &mut Tally) -> String {
    let (mut cases, mut error) = (cases.to_vec(), String::new());
    while cases.len() > 1 {
        let (a, b) = cases.split_at(cases.len() / 2);
        match validate(a, dir, tally) {
            Err(e) => (cases, error) = (a.to_vec(), e),
            Ok(()) => cases = b.to_vec(),
        }
    }
    if error.is_empty()
        && let Err(e) = validate(&cases, dir, tally)
    {
        error = e;
    }
    let (i, c) = cases[0];
    format!(
        "Envoy refuses the translation of generated case {i}:\n{}\nEnvoy said:\n{error}",
        manifests(i, c)
    )
}

#[test]
fn envoy_accepts_every_generated_configuration() {
    let count: usize = std::env::var("GATEHOUSE_VALIDATE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("GATEHOUSE_VALIDATE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = case();
    let cases: Vec<Case> = (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .expect("the generator produces a case")
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut tally = Tally::default();
    let indexed: Vec<(usize, &Case)> = cases.iter().enumerate().collect();
    for batch in indexed.chunks(BATCH) {
        if validate(batch, dir.path(), &mut tally).is_err() {
            panic!("{}", bisect(batch, dir.path(), &mut tally));
        }
    }
    eprintln!(
        "Envoy accepted all {count} generated cases (seed {seed}) in {} runs, {:.1?}: {tally:?}",
        tally.envoy_runs,
        started.elapsed()
    );
    // The generator must reach both sides of every check, or the property says little.
    assert!(tally.invalid_routes > count / 10, "{tally:?}");
    assert!(tally.invalid_extensions > count / 100, "{tally:?}");
    assert!(tally.escaped_percent > count / 100, "{tally:?}");
    assert!(tally.load_errors < tally.documents / 4, "{tally:?}");
}
