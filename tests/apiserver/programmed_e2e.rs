//! A Gateway is `Programmed` only while its proxies run: the provisioned Deployment has an
//! available replica and a connected Envoy has accepted what it was sent. Each transition is
//! a Kubernetes Event; the per-Gateway xDS state and the leader show in /metrics.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::cluster::ClusterWorld;
use support::walkthrough::GW;

const NS: &str = "kgateway-system";

fn programmed(s: &Value) -> Option<(String, String, String)> {
    let c = s["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Programmed")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

async fn wait_programmed(w: &ClusterWorld, what: &str, check: impl Fn(&str, &str, &str) -> bool) {
    w.wait_status(what, GW, "Gateway", NS, "http", |s| {
        programmed(s).is_some_and(|(st, reason, message)| check(&st, &reason, &message))
    })
    .await;
}

/// Waits for an Event about the Gateway with `reason` and `type_`.
async fn wait_event(w: &ClusterWorld, reason: &str, type_: &str) -> Event {
    let api: Api<Event> = Api::namespaced(w.client.clone(), NS);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = api.list(&ListParams::default()).await.expect("list events");
        let found = events.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some(type_)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("http")
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Gateway")
        });
        if let Some(e) = found {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {type_} Event {reason} for Gateway {NS}/http\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programmed_follows_the_deployment_and_the_proxies() {
    let mut w = ClusterWorld::start().await;
    let r = w.start_replica("solo");

    // Provisioned, but no pod is available (no kubelet here until the test says so).
    wait_programmed(&w, "Pending on the Deployment", |st, reason, message| {
        st == "False" && reason == "Pending" && message.contains("0 of 1 replicas available")
    })
    .await;
    assert_eq!(w.metric(r, "gatehouse_leader"), 1.0);
    assert_eq!(w.metric(r, "gatehouse_xds_connected_proxies"), 0.0);

    // A real Envoy connects and accepts its configuration; its pod is reported available.
    w.start_envoy(r).await;
    wait_programmed(&w, "Programmed", |st, _, _| st == "True").await;
    let gateway = format!("{NS}/http");
    assert_eq!(
        w.metric(
            r,
            &format!("gatehouse_xds_connected_proxies{{gateway=\"{gateway}\"}}")
        ),
        1.0
    );
    assert_eq!(
        w.metric(
            r,
            &format!("gatehouse_xds_proxies_current{{gateway=\"{gateway}\"}}")
        ),
        1.0
    );
    assert!(w.metric(r, "gatehouse_status_writes_total{kind=\"Gateway\"}") >= 1.0);
    assert!(w.metric(r, "gatehouse_status_write_seconds_count{kind=\"Gateway\"}") >= 1.0);
    let build = format!(
        "gatehouse_build_info{{version=\"{}\",commit=\"{}\"}}",
        gatehouse::build_info::VERSION,
        gatehouse::build_info::COMMIT
    );
    assert_eq!(w.metric(r, &build), 1.0);
    wait_event(&w, "Programmed", "Normal").await;

    // The pods go away: Pending again, with a Warning Event.
    w.set_proxy_replicas(NS, "http", 0).await;
    wait_programmed(&w, "Pending after the pods went", |st, reason, _| {
        st == "False" && reason == "Pending"
    })
    .await;
    let e = wait_event(&w, "Pending", "Warning").await;
    assert!(
        e.note
            .as_deref()
            .unwrap_or_default()
            .contains("Programmed:"),
        "{e:?}"
    );
    assert!(w.metric(r, "gatehouse_events_total{reason=\"Pending\"}") >= 1.0);

    w.set_proxy_replicas(NS, "http", 1).await;
    wait_programmed(&w, "Programmed again", |st, _, _| st == "True").await;
}

/// Without provisioning (your own Envoys), the proxies connected to the leader decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_provisioning_programmed_follows_the_connected_proxies() {
    let mut w = ClusterWorld::start().await;
    let kubeconfig = w.api.kubeconfig_path().to_path_buf();
    let r = w.start_replica_with("solo", &kubeconfig, "default", &["--provision", "false"]);
    wait_programmed(&w, "Pending without a proxy", |st, reason, message| {
        st == "False" && reason == "Pending" && message.contains("no proxy")
    })
    .await;
    w.start_envoy_without_provisioning(r).await;
    wait_programmed(&w, "Programmed with Envoy connected", |st, _, _| {
        st == "True"
    })
    .await;
    w.stop_envoy();
    wait_programmed(&w, "Pending once Envoy is gone", |st, reason, message| {
        st == "False" && reason == "Pending" && message.contains("no proxy")
    })
    .await;
}
