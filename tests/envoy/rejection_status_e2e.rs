//! When Envoy rejects an update anyway (NACK), the Gateway says so within a second: its
//! `Programmed` condition turns False with Envoy's message (`/debug/status`), and the
//! `gatehouse_xds_rejected{gateway,type}` gauge counts its rejecting proxies; both clear once
//! a later update is accepted.
//!
//! Values Envoy would refuse never reach it (src/model/validate*.rs, listener hostnames in
//! src/model/gateways.rs), so the NACK is forced the way `standalone_e2e` forces it: a Gateway
//! listener on a port another process holds, which Envoy cannot bind.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::standalone::World;

const REJECTED: &str = "gatehouse_xds_rejected{gateway=\"kgateway-system/http\",type=\"listener\"}";

/// The Gateway's `Programmed` condition in `/debug/status`, and `/debug/status` itself.
fn programmed(w: &World) -> (Option<Value>, Value) {
    let body = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
    let doc: Value = serde_json::from_str(&body).unwrap_or_default();
    let condition = doc["status"]["gateways"]["kgateway-system/http"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Programmed").cloned());
    (condition, doc)
}

fn metric_or_zero(w: &World, sample: &str) -> f64 {
    let body = w.admin("/metrics").map(|r| r.body).unwrap_or_default();
    support::metrics::sample(&body, sample).unwrap_or(0.0)
}

#[test]
fn a_rejected_update_shows_on_the_gateway_within_a_second_and_clears_when_fixed() {
    let w = World::start(false);
    let (ok, _) = programmed(&w);
    assert_eq!(
        ok.as_ref().map(|c| c["status"].clone()),
        Some("True".into())
    );

    let gateway = std::fs::read_to_string(w.manifests.join("gateway.yaml")).expect("read");
    w.write(
        "gateway.yaml",
        &format!(
            "{gateway}  - {{name: taken, protocol: HTTP, port: {}, allowedRoutes: {{namespaces: {{from: All}}}}}}\n",
            w.echo_port
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let nacked_at = loop {
        if metric_or_zero(&w, "gatehouse_xds_nacks_total") >= 1.0 {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "no NACK\n{}", w.logs());
        std::thread::sleep(Duration::from_millis(10));
    };
    // Within a second of the NACK reaching Gatehouse (the metric is read after it counted).
    let (condition, doc) = loop {
        let (c, doc) = programmed(&w);
        if c.as_ref().is_some_and(|c| c["status"] == "False") {
            break (c, doc);
        }
        assert!(
            nacked_at.elapsed() < Duration::from_secs(1),
            "no Programmed=False within a second of the NACK: {doc:#}\n{}",
            w.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let condition = condition.unwrap_or_default();
    assert_eq!(condition["reason"], "Invalid", "{condition:#}");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Listener") && message.contains(&w.echo_port.to_string()),
        "Envoy's message is not in the condition: {message}"
    );
    assert_eq!(
        doc["rejected"]["kgateway-system/http"][0]["type"],
        "type.googleapis.com/envoy.config.listener.v3.Listener",
        "{doc:#}"
    );
    assert_eq!(metric_or_zero(&w, REJECTED), 1.0);
    // explain says the Gateway's rows are not what its proxies serve.
    let table = w
        .admin("/debug/explain?format=table")
        .map(|r| r.body)
        .unwrap_or_default();
    assert!(
        table.contains(
            "NOTE kgateway-system/http: not in effect, its proxies rejected the last update"
        ),
        "{table}"
    );
    let rows: Value = w
        .admin("/debug/explain")
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default();
    assert!(
        rows[0]["proxiesRejected"]
            .as_str()
            .is_some_and(|m| m.contains("Listener")),
        "{rows:#}"
    );
    // /readyz stays a process probe, and names the Gateway whose proxies rejected.
    let ready = w.admin("/readyz").expect("readyz");
    assert_eq!(ready.status, 200);
    assert!(
        ready.body.contains("gateway kgateway-system/http: proxy")
            && ready.body.contains("Listener"),
        "{}",
        ready.body
    );
    let log = std::fs::read_to_string(w.path().join("gatehouse.log")).unwrap_or_default();
    assert!(
        log.contains("Gateway status changed"),
        "status change not logged\n{}",
        w.logs()
    );

    // Fixed: the next update is accepted and the Gateway is Programmed again.
    w.write("gateway.yaml", &gateway);
    w.wait_until("Programmed=True again", Duration::from_secs(30), |w| {
        programmed(w).0.is_some_and(|c| c["status"] == "True")
    });
    assert_eq!(metric_or_zero(&w, REJECTED), 0.0);
    let table = w
        .admin("/debug/explain?format=table")
        .map(|r| r.body)
        .unwrap_or_default();
    assert!(!table.contains("NOTE"), "{table}");
    assert_eq!(
        w.admin("/readyz").map(|r| r.body).as_deref(),
        Some("ready\n")
    );
}
