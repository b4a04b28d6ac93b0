//! The controller renews its own xDS server certificate before it expires, without a restart:
//! with a 6-second certificate, an Envoy that connects long after the first one expired is
//! still served (it would refuse an expired certificate), and the replica logged renewals.

use crate::support;

use std::time::Duration;

use support::cluster::{ClusterWorld, HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_renews_itself() {
    let mut w = ClusterWorld::start().await;
    let kubeconfig = w.api.kubeconfig_path().to_path_buf();
    let r = w.start_replica_with(
        "solo",
        &kubeconfig,
        "default",
        &["--xds-server-certificate-validity", "6"],
    );
    w.start_envoy(r).await;
    // Three lifetimes later the first certificate is long expired.
    tokio::time::sleep(Duration::from_secs(18)).await;
    w.stop_envoy();
    w.start_envoy(r).await;
    assert_eq!(w.get(HOST, &[]).expect("request").status, 200);
    let log = std::fs::read_to_string(&w.replicas[r].proc.log).unwrap_or_default();
    let renewals = log.matches("renewed the xDS server certificate").count();
    assert!(renewals >= 3, "{renewals} renewals in 18 s\n{log}");
    assert!(
        !log.contains("renewing the xDS server certificate failed"),
        "{log}"
    );
}
