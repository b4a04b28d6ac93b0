//! Controller mode against a real kube-apiserver: the walkthrough's objects are created,
//! updated and deleted through the API; a real Envoy follows; status is written back.

use crate::support;

use std::time::Duration;

use support::cluster::ClusterWorld;
use support::cluster::HOST;
use support::walkthrough::{GW, holds, seed_walkthrough};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_and_status_through_the_api_server() {
    let mut w = ClusterWorld::start().await;
    let r = w.start_replica("solo");
    w.start_envoy(r).await;
    assert_eq!(w.readyz(r), 200);

    seed_walkthrough(&w).await;

    // Steady state: an unrelated change rebuilds, and no status is written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = w.metric(r, "gatehouse_status_writes_total");
    let builds = w.metric(r, "gatehouse_snapshot_builds_total");
    w.apply_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: unrelated, labels: {team: x}}\n",
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.metric(r, "gatehouse_snapshot_builds_total") <= builds {
        assert!(
            std::time::Instant::now() < deadline,
            "no rebuild after the change\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.metric(r, "gatehouse_status_writes_total"),
        writes,
        "a steady state wrote status\n{}",
        w.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_api_server_restart_and_elects_one_leader() {
    let mut w = ClusterWorld::start().await;
    let a = w.start_replica("replica-a");
    let b = w.start_replica("replica-b");
    w.start_envoy(a).await;
    w.apply_step("01-gateway-policy.yaml").await;
    w.wait_for_code("403 after the gateway policy", HOST, 403)
        .await;
    w.wait_status(
        "Gateway Programmed",
        GW,
        "Gateway",
        "kgateway-system",
        "http",
        |s| holds(&s["conditions"], "Programmed"),
    )
    .await;

    // Exactly one replica leads and writes status.
    let writes = |w: &ClusterWorld| {
        (
            w.metric(a, "gatehouse_status_writes_total"),
            w.metric(b, "gatehouse_status_writes_total"),
        )
    };
    let (wa, wb) = writes(&w);
    assert!(
        (wa > 0.0) != (wb > 0.0),
        "exactly one replica writes status: a={wa} b={wb}\n{}",
        w.logs()
    );
    let (leader, follower) = if wa > 0.0 { (a, b) } else { (b, a) };
    assert_eq!(w.readyz(follower), 200, "the follower serves xDS too");

    // The API server goes away and comes back; a policy changes afterwards.
    w.api.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.get(HOST, &[]).expect("request").status,
        403,
        "Envoy keeps enforcing while the API is down"
    );
    w.api.restart();
    w.apply_step("02-route-disable.yaml").await;
    w.wait_for_code("the new policy after the API server restart", HOST, 200)
        .await;
    for r in [a, b] {
        assert!(
            w.replicas[r].proc.child.try_wait().expect("wait").is_none(),
            "replica {} exited\n{}",
            w.replicas[r].identity,
            w.logs()
        );
    }
    let log = std::fs::read_to_string(
        w.path()
            .join(format!("gatehouse-{}.log", w.replicas[leader].identity)),
    )
    .unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");

    // An outage longer than the lease (15 s) may move leadership; whoever holds the lease now
    // is the only writer.
    let leader = lease_holder(&w, [a, b]).await;
    let follower = if leader == a { b } else { a };
    let before = writes(&w);
    w.apply_yaml(EXTRA_POLICY).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = writes(&w);
        let (lead_delta, follow_delta) = if leader == a {
            (now.0 - before.0, now.1 - before.1)
        } else {
            (now.1 - before.1, now.0 - before.0)
        };
        assert_eq!(
            follow_delta,
            0.0,
            "a replica without the lease wrote status\n{}",
            w.logs()
        );
        if lead_delta > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease holder wrote nothing\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The leader stops; the other replica takes over (the lease is released) and writes.
    let status = w.replicas[leader]
        .proc
        .terminate(Duration::from_secs(10))
        .expect("leader exits");
    assert!(status.success(), "{status:?}");
    let before = w.metric(follower, "gatehouse_status_writes_total");
    w.delete_step("02-route-disable.yaml").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while w.metric(follower, "gatehouse_status_writes_total") == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica never took over\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const EXTRA_POLICY: &str = "apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: extra, namespace: kgateway-system}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: http, sectionName: http}]
  extAuth: {extensionRef: {name: basic-ext-auth}}
";

/// The replica (of `candidates`) that holds the Lease, once one does.
async fn lease_holder(w: &ClusterWorld, candidates: [usize; 2]) -> usize {
    use k8s_openapi::api::coordination::v1::Lease;
    let api = kube::Api::<Lease>::namespaced(w.client.clone(), "default");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let holder = api
            .get_opt("gatehouse-controller")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if let Some(i) = candidates
            .into_iter()
            .find(|&i| Some(&w.replicas[i].identity) == holder.as_ref())
        {
            return i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replica holds the lease ({holder:?})\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crds_mean_not_ready_not_a_crash() {
    let api = support::apiserver::ApiServer::start();
    // Only the Gateway API CRDs: Gatehouse's own are missing.
    api.install_crds(&[support::apiserver::gateway_api_standard_dir()])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = support::procs::free_port();
    let mut cmd = std::process::Command::new(support::procs::gatehouse());
    cmd.arg("controller")
        .args([
            "--xds-address",
            &format!("127.0.0.1:{}", support::procs::free_port()),
        ])
        .args(["--admin-address", &format!("127.0.0.1:{admin}")])
        .args([
            "--debug-address",
            &format!("127.0.0.1:{}", support::procs::free_port()),
        ])
        .args(["--leader-elect", "false"])
        .env("KUBECONFIG", api.kubeconfig_path());
    let mut proc = support::procs::Proc::spawn("gatehouse", cmd, dir.path());
    support::procs::wait_for_port(admin, Duration::from_secs(10), "admin");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        proc.child.try_wait().expect("wait").is_none(),
        "gatehouse exited\n{}",
        proc.tail(40)
    );
    let ready = support::http::get(admin, "localhost", "/readyz", &[]).expect("readyz");
    assert_eq!(ready.status, 503);
    let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
    assert!(
        log.contains("GatewayExtension")
            && log.contains("CustomResourceDefinition is not installed"),
        "{log}"
    );
    assert_eq!(
        log.matches("cannot list GatewayExtension").count(),
        1,
        "one line, not a loop:\n{log}"
    );

    // Installing them makes it ready.
    api.install_crds(&[support::repo().join("crds")]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while support::http::get(admin, "localhost", "/readyz", &[])
        .map(|r| r.status)
        .unwrap_or(0)
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the CRDs arrived\n{}",
            proc.tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
