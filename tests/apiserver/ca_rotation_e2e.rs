//! The xDS CA is rotated in three steps (`gatehouse ca rotate begin|promote|finish`) while a
//! real Envoy stays connected: after every step the connected proxy still receives updates,
//! and a proxy started with the credentials of that step (as a rolled pod would be) connects.
//! A step is refused while the provisioned Deployment has not rolled onto the previous one.
//! After `finish`, the new proxy trusts only the new CA, so its connecting shows the server's
//! certificate comes from the new CA.

use crate::support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use support::cluster::{ClusterWorld, HOST};
use support::procs::gatehouse;

const NS: &str = "kgateway-system";

fn rotate(w: &ClusterWorld, step: &str) -> std::process::Output {
    Command::new(gatehouse())
        .args(["ca", "rotate", step, "--namespace", "default"])
        .arg("--kubeconfig")
        .arg(w.api.kubeconfig_path())
        .output()
        .expect("run gatehouse ca rotate")
}

/// The proxies' Secret once `check` holds for it.
async fn wait_proxy_secret(
    w: &ClusterWorld,
    what: &str,
    check: impl Fn(&Secret) -> bool,
) -> Secret {
    let api: Api<Secret> = Api::namespaced(w.client.clone(), NS);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(s)) = api.get_opt("gatehouse-http-xds-tls").await
            && check(&s)
        {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "proxy Secret: {what}\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn field(s: &Secret, key: &str) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

fn trusted(s: &Secret) -> usize {
    field(s, "ca.crt").matches("BEGIN CERTIFICATE").count()
}

/// The connected Envoy still follows configuration changes.
async fn updates_still_flow(w: &ClusterWorld, when: &str) {
    w.apply_step("01-gateway-policy.yaml").await;
    w.wait_for_code(&format!("403 {when}"), HOST, 403).await;
    w.delete_step("01-gateway-policy.yaml").await;
    w.wait_for_code(&format!("200 again {when}"), HOST, 200)
        .await;
}

/// The proxies roll onto the step: the next step is refused until the Deployment's rollout
/// is complete (reported here as its controller would), then a new Envoy with the step's
/// credentials connects.
async fn roll(w: &mut ClusterWorld, r: usize, next: &str) {
    // The Deployment's pod template now names the new credentials; its pods are old.
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(w.client.clone(), NS);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = api.get("gatehouse-http").await.expect("Deployment");
        let observed = d.status.as_ref().and_then(|s| s.observed_generation);
        if observed < d.metadata.generation {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Deployment did not change\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = rotate(w, next);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{next} before the rollout is refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kgateway-system/gatehouse-http"),
        "{stderr}"
    );
    w.stop_envoy();
    w.start_envoy(r).await; // also reports the rollout complete
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_rotates_without_dropping_a_proxy() {
    let mut w = ClusterWorld::start().await;
    let r = w.start_replica("solo");
    w.start_envoy(r).await;
    let first = wait_proxy_secret(&w, "provisioned", |s| trusted(s) == 1).await;

    let out = rotate(&w, "promote");
    assert_eq!(
        out.status.code(),
        Some(1),
        "promote before begin is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `begin` first"));

    // begin: both CAs trusted; the proxies roll onto the bundle.
    let out = rotate(&w, "begin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let begun = wait_proxy_secret(&w, "trusts both CAs", |s| trusted(s) == 2).await;
    assert_eq!(
        field(&begun, "tls.crt"),
        field(&first, "tls.crt"),
        "still the old signer"
    );
    updates_still_flow(&w, "after begin").await;
    roll(&mut w, r, "promote").await;

    // promote: certificates from the new CA; the old one still trusted.
    let out = rotate(&w, "promote");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let promoted = wait_proxy_secret(&w, "a certificate of the new CA", |s| {
        field(s, "tls.crt") != field(&first, "tls.crt")
    })
    .await;
    assert_eq!(trusted(&promoted), 2);
    updates_still_flow(&w, "after promote").await;
    roll(&mut w, r, "finish").await;

    // finish: only the new CA; a proxy trusting only it connects.
    let out = rotate(&w, "finish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finished = wait_proxy_secret(&w, "trusts the new CA only", |s| trusted(s) == 1).await;
    assert_ne!(field(&finished, "ca.crt"), field(&first, "ca.crt"));
    updates_still_flow(&w, "after finish").await;
    w.stop_envoy();
    w.start_envoy(r).await;
    let log = std::fs::read_to_string(&w.replicas[r].proc.log).unwrap_or_default();
    assert!(
        log.matches("the xDS CA changed").count() >= 3,
        "every step reached the xDS server\n{log}"
    );
}
