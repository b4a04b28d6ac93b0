//! The Grafana dashboard shipped with the chart (dashboards/gatehouse.json in a ConfigMap for
//! Grafana's sidecar): it renders, parses, and queries only metrics Gatehouse exports and
//! docs/metrics.md lists.

use super::{kinds, one};
use crate::support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::helm::render;

/// Every metric the dashboard may query: (name as exported, type). prometheus_client appends
/// `_total` to counters (listed with it) and `_bucket`/`_sum`/`_count` to histograms.
const METRICS: &[(&str, &str)] = &[
    ("gatehouse_build_info", "gauge"),
    ("gatehouse_leader", "gauge"),
    ("gatehouse_snapshot_builds_total", "counter"),
    ("gatehouse_snapshot_build_seconds", "histogram"),
    ("gatehouse_build_panics_total", "counter"),
    ("gatehouse_degraded", "gauge"),
    ("gatehouse_crd_missing_fields", "gauge"),
    ("gatehouse_unhealthy_objects", "gauge"),
    ("gatehouse_load_errors", "gauge"),
    ("gatehouse_status_writes_total", "counter"),
    ("gatehouse_status_write_errors_total", "counter"),
    ("gatehouse_status_write_seconds", "histogram"),
    ("gatehouse_provision_applies_total", "counter"),
    ("gatehouse_provision_errors_total", "counter"),
    ("gatehouse_provision_conflicts", "gauge"),
    ("gatehouse_xds_connected_proxies", "gauge"),
    ("gatehouse_xds_proxies_current", "gauge"),
    ("gatehouse_xds_acked_version", "gauge"),
    ("gatehouse_xds_nacks_total", "counter"),
    ("gatehouse_xds_rejected", "gauge"),
    ("gatehouse_xds_pushes_total", "counter"),
    ("gatehouse_events_total", "counter"),
];

/// Series names a query may use: histograms only through their three series.
fn series() -> BTreeSet<String> {
    METRICS
        .iter()
        .flat_map(|(name, kind)| match *kind {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect::<Vec<_>>(),
            _ => vec![name.to_string()],
        })
        .collect()
}

/// `gatehouse_…` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("gatehouse_") {
        let boundary = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if boundary {
            out.push(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    out
}

/// Every panel, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

fn dashboard_of(objects: &[Value]) -> Value {
    let map = one(objects, "ConfigMap");
    let text = map["data"]["gatehouse.json"]
        .as_str()
        .expect("data gatehouse.json");
    serde_json::from_str(text).expect("the dashboard is JSON")
}

#[test]
fn dashboard_config_map_is_opt_in_and_labelled_for_the_sidecar() {
    let objects = render(&[]);
    assert!(!kinds(&objects).contains(&"ConfigMap"));

    let dir = tempfile::tempdir().expect("tempdir");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "grafanaDashboard: {enabled: true}\n").expect("write values");
    let objects = render(&[values.to_str().expect("utf-8 path")]);
    let map = one(&objects, "ConfigMap");
    assert_eq!(map["metadata"]["namespace"], "gatehouse-system");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(map["metadata"].get("annotations").is_none());
    let shipped =
        std::fs::read_to_string(support::repo().join("charts/gatehouse/dashboards/gatehouse.json"))
            .expect("dashboards/gatehouse.json");
    assert_eq!(
        map["data"]["gatehouse.json"].as_str().map(str::trim),
        Some(shipped.trim()),
        "the ConfigMap carries the file as it is"
    );

    let objects = render(&["tests/helm/values-all.yaml"]);
    let map = one(&objects, "ConfigMap");
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(
        map["metadata"]["labels"]["example.com/dashboards"],
        "gatehouse"
    );
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        map["metadata"]["annotations"],
        json!({"grafana_folder": "Gateways"})
    );
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let objects = render(&["tests/helm/values-all.yaml"]);
    let dashboard = dashboard_of(&objects);
    assert_eq!(dashboard["uid"], "gatehouse-controller");
    let allowed = series();

    let mut exprs: Vec<String> = Vec::new();
    let mut ids = BTreeSet::new();
    for p in panels(&dashboard) {
        let id = p["id"].as_u64().expect("numeric panel id");
        assert!(ids.insert(id), "panel id {id} repeats");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} must use the datasource variable",
            p["title"]
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(q) = v["definition"].as_str() {
            exprs.push(q.to_string());
        }
    }

    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr:?} queries no Gatehouse metric");
        for name in names {
            assert!(
                allowed.contains(&name),
                "{expr:?} queries {name}, which Gatehouse does not export (allowed: {allowed:?})"
            );
            used.insert(name);
        }
    }
    // The dashboard covers every metric of the list.
    for (name, kind) in METRICS {
        let series = if *kind == "histogram" {
            format!("{name}_bucket")
        } else {
            name.to_string()
        };
        assert!(used.contains(&series), "no panel shows {name}");
    }
}

/// The families a running `gatehouse standalone` declares on `/metrics` (`# TYPE` lines, there
/// before any series), by name: the dashboard's list is checked against the binary, not only
/// against docs.
fn exported_families() -> std::collections::BTreeMap<String, String> {
    use support::procs::{Proc, free_port, standalone_command, wait_for_port};
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("mkdir");
    let (xds, admin, debug) = (free_port(), free_port(), free_port());
    let proc = Proc::spawn(
        "gatehouse",
        standalone_command(&manifests, xds, admin, debug),
        dir.path(),
    );
    wait_for_port(admin, std::time::Duration::from_secs(20), "admin port");
    let body = support::http::get(admin, "localhost", "/metrics", &[])
        .unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", proc.tail(40)))
        .body;
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let (name, kind) = l.split_once(' ')?;
            Some((name.to_string(), kind.trim().to_string()))
        })
        .collect()
}

/// Labelled families that prometheus_client leaves out of `/metrics` until their first series:
/// a standalone Gatehouse writes no status, records no Event and checks no CRD. The API-server
/// walkthrough (tests/apiserver/helm_apiserver.rs) sees status_write_seconds once the leader
/// writes; docs/metrics.md types them all (dashboard_metrics_are_documented).
const DECLARED_ON_FIRST_USE: &[&str] = &[
    "gatehouse_status_write_seconds",
    "gatehouse_events_total",
    "gatehouse_crd_missing_fields",
];

#[test]
fn dashboard_metrics_are_exported_by_gatehouse() {
    let families = exported_families();
    for (name, kind) in METRICS {
        if DECLARED_ON_FIRST_USE.contains(name) {
            continue;
        }
        // OpenMetrics declares a counter's family without `_total`.
        let family = match *kind {
            "counter" => name.strip_suffix("_total").expect("counters end in _total"),
            _ => name,
        };
        assert_eq!(
            families.get(family).map(String::as_str),
            Some(*kind),
            "{name}: gatehouse exports {families:?}"
        );
    }
}

/// docs/metrics.md's table (`| \`name\` | type | …`): the dashboard queries only documented
/// metrics, with the documented type.
#[test]
fn dashboard_metrics_are_documented() {
    let doc =
        std::fs::read_to_string(support::repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let documented: std::collections::BTreeMap<&str, &str> = doc
        .lines()
        .filter_map(|l| {
            let mut cols = l.strip_prefix("| `")?.split('|');
            let name = cols.next()?.trim().trim_end_matches('`');
            Some((name, cols.next()?.trim()))
        })
        .collect();
    for (name, kind) in METRICS {
        assert_eq!(
            documented.get(name).copied(),
            Some(*kind),
            "{name} ({kind}) is not in docs/metrics.md as such: {documented:?}"
        );
    }
}

#[test]
fn metric_names_finds_identifiers_only() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(gatehouse_a_bucket{x="gatehouse_b"}[5m])) / my_gatehouse_c"#
        ),
        ["gatehouse_a_bucket", "gatehouse_b"]
    );
}
