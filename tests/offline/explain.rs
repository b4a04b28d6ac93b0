//! `gatehouse explain`: the effective ext auth of every route and what decided it.

use crate::support;

use std::process::Command;

use gatehouse::explain::{Auth, Row, explain};
use gatehouse::model::{ModelConfig, build};
use gatehouse::source::files;
use gatehouse::store::Store;

fn rows(paths: &[&str]) -> Vec<Row> {
    let paths: Vec<_> = paths.iter().map(|p| support::repo().join(p)).collect();
    let load = files::load_paths(&paths);
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    let mut store = Store::new();
    load.objects.into_iter().for_each(|o| {
        store.apply(o);
    });
    explain(&build(&store, &ModelConfig::default()))
}

const BASE: &str = "examples/ext-auth/base";
const STEP1: &str = "examples/ext-auth/steps/01-gateway-policy.yaml";
const STEP2: &str = "examples/ext-auth/steps/02-route-disable.yaml";

#[test]
fn seed_walkthrough_step_by_step() {
    let none = rows(&[BASE]);
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].auth, Auth::Unprotected);
    assert_eq!(
        (none[0].host.as_str(), none[0].route.as_str(), none[0].port),
        ("www.example.com", "httpbin/httpbin", 8080)
    );

    let gateway = rows(&[BASE, STEP1]);
    let Auth::Enabled {
        provider,
        protocol,
        service,
        timeout,
        fail_open,
        status_on_error,
        decided_by,
        ..
    } = &gateway[0].auth
    else {
        panic!("{:?}", gateway[0].auth)
    };
    assert_eq!(provider, "kgateway-system/basic-ext-auth");
    assert_eq!(
        (*protocol, service.as_str()),
        ("gRPC", "kgateway-system/ext-authz:4444")
    );
    assert_eq!(timeout, "2s (default)");
    assert_eq!((*fail_open, *status_on_error), (false, 403));
    assert_eq!(decided_by, "kgateway-system/gateway-ext-auth-policy");

    let disabled = rows(&[BASE, STEP1, STEP2]);
    assert_eq!(
        disabled[0].auth,
        Auth::Disabled {
            decided_by: "httpbin/route-ext-auth-policy".into()
        }
    );
}

#[test]
fn matrix_of_levels() {
    let r = rows(&["tests/testdata/translate/rule-level/input"]);
    let find = |port: u16, host: &str, route: &str, rule: &str| {
        r.iter()
            .find(|x| x.port == port && x.host == host && x.route == route && x.rule == rule)
            .unwrap_or_else(|| panic!("row {port} {host} {route} {rule}"))
            .auth
            .clone()
    };
    match find(8080, "shop.example.com", "app/shop", "checkout") {
        Auth::Enabled {
            decided_by,
            context,
            ..
        } => {
            assert_eq!(decided_by, "app/checkout-on");
            assert_eq!(context.get("rule").map(String::as_str), Some("checkout"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        find(8080, "shop.example.com", "app/shop", "catalog"),
        Auth::Disabled {
            decided_by: "app/shop-off".into()
        }
    );
    assert!(
        matches!(find(8080, "shop.example.com", "app/health", "0"), Auth::Enabled { decided_by, .. } if decided_by == "infra/gateway-auth")
    );

    let broken = rows(&["tests/testdata/translate/missing-extension/input"]);
    let shop = broken
        .iter()
        .find(|x| x.route == "app/shop")
        .expect("shop row");
    match &shop.auth {
        Auth::FailsClosed { decided_by, reason } => {
            assert_eq!(decided_by, "app/shop-auth");
            assert!(reason.starts_with("ExtensionNotFound"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        broken
            .iter()
            .filter(|x| x.route == "app/health")
            .all(|x| x.auth == Auth::Unprotected)
    );
}

#[test]
fn cli_formats() {
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["explain", "-o", format, "-f"])
            .args([BASE, STEP1, STEP2].map(|p| support::repo().join(p)))
            .output()
            .expect("run explain");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let table = run("table");
    assert!(table.starts_with("GATEWAY"), "{table}");
    assert!(
        table.contains("disabled by httpbin/route-ext-auth-policy"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&run("json")).expect("json");
    assert_eq!(json[0]["auth"]["state"], "disabled");
    let mermaid = run("mermaid");
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("-.->|disabled by| p_httpbin_route_ext_auth_policy"),
        "{mermaid}"
    );
}
