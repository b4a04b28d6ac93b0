//! HTTPS in controller mode: certificates from Secrets in the API server reach a real Envoy
//! over SDS, a rotation is served to new connections, listener status follows the Secrets,
//! and Secrets that are not `kubernetes.io/tls` are never read.

use std::time::{Duration, Instant};

use crate::support;

use support::cluster::ClusterWorld;
use support::procs::free_port;
use support::tls::{self, Leaf, TestCa};
use support::walkthrough::{GW, condition};

fn gateway(http_port: u16, port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: http, namespace: kgateway-system}}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {{name: http, protocol: HTTP, port: {http_port}, allowedRoutes: {{namespaces: {{from: All}}}}}}
  - name: https-a
    protocol: HTTPS
    port: {port}
    hostname: a.example.com
    tls: {{certificateRefs: [{{name: a}}]}}
    allowedRoutes: {{namespaces: {{from: All}}}}
  - name: https-opaque
    protocol: HTTPS
    port: {port}
    hostname: o.example.com
    tls: {{certificateRefs: [{{name: opaque}}]}}
    allowedRoutes: {{namespaces: {{from: All}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: tls-hosts, namespace: httpbin}}
spec:
  parentRefs: [{{name: http, namespace: kgateway-system}}]
  hostnames: [a.example.com, o.example.com]
  rules:
  - backendRefs: [{{name: httpbin, port: 8000}}]
"#
    )
}

/// An Opaque Secret with a valid certificate in it: Gatehouse must not read it.
fn opaque(leaf: &Leaf) -> String {
    tls::secret("kgateway-system", "opaque", leaf).replace("kubernetes.io/tls", "Opaque")
}

async fn wait_for_cert(w: &ClusterWorld, port: u16, ca: &TestCa, want: &Leaf) {
    let client = tls::client(&[&ca.cert_pem]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match tls::get(
            &client,
            port,
            "a.example.com",
            "a.example.com",
            "/headers",
            &[],
        ) {
            Ok((r, peer)) if r.status == 200 && peer == want.der() => return,
            Ok((r, _)) => last = format!("{} (not the expected certificate)", r.status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "a.example.com never served the expected certificate: {last}\n{}",
        w.logs()
    );
}

fn listener<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["listeners"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_secrets_reach_envoy_and_rotate() {
    let mut w = ClusterWorld::start().await;
    let r = w.start_replica("solo");
    w.start_envoy(r).await;
    let port = free_port();
    let ca = TestCa::new("test CA");
    let (a1, a2) = (ca.leaf(&["a.example.com"]), ca.leaf(&["a.example.com"]));

    w.apply_yaml(&tls::secret("kgateway-system", "a", &a1))
        .await;
    w.apply_yaml(&opaque(&ca.leaf(&["o.example.com"]))).await;
    w.apply_yaml(&gateway(w.listener_port, port)).await;
    wait_for_cert(&w, port, &ca, &a1).await;

    let status = w
        .wait_status(
            "listener status",
            GW,
            "Gateway",
            "kgateway-system",
            "http",
            |s| listener(s, "https-opaque").is_some(),
        )
        .await;
    let a = listener(&status, "https-a").expect("https-a");
    assert_eq!(
        condition(&a["conditions"], "Programmed").map(|c| c["status"].clone()),
        Some("True".into())
    );
    let o = listener(&status, "https-opaque").expect("https-opaque");
    let refs = condition(&o["conditions"], "ResolvedRefs").expect("ResolvedRefs");
    assert_eq!(refs["reason"], "InvalidCertificateRef", "{o:#}");
    assert_eq!(
        condition(&o["conditions"], "Programmed").map(|c| c["status"].clone()),
        Some("False".into())
    );

    // Rotation: the Secret is updated in place; new connections get the new certificate.
    w.apply_yaml(&tls::secret("kgateway-system", "a", &a2))
        .await;
    wait_for_cert(&w, port, &ca, &a2).await;
}

/// BackendTLSPolicy in controller mode: the ConfigMap CA is read, the policy's status written
/// through `backendtlspolicies/status`, and a missing CA reported there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_policy_status_is_written() {
    let mut w = ClusterWorld::start().await;
    let r = w.start_replica("solo");
    w.start_envoy(r).await;
    let ca = TestCa::new("backend CA");
    let q = serde_json::to_string(&ca.cert_pem).expect("string");
    let policy = r#"apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: httpbin-tls, namespace: httpbin}
spec:
  targetRefs: [{group: "", kind: Service, name: httpbin}]
  validation:
    caCertificateRefs: [{group: "", kind: ConfigMap, name: httpbin-ca}]
    hostname: httpbin.internal
"#;
    w.apply_yaml(policy).await;
    let accepted = |reason: &'static str| {
        move |s: &serde_json::Value| {
            s["ancestors"].as_array().is_some_and(|a| {
                a.iter().any(|e| {
                    e["ancestorRef"]["name"] == "http"
                        && condition(&e["conditions"], "Accepted")
                            .is_some_and(|c| c["reason"] == reason)
                })
            })
        }
    };
    w.wait_status(
        "the missing CA reported",
        GW,
        "BackendTLSPolicy",
        "httpbin",
        "httpbin-tls",
        accepted("NoValidCACertificate"),
    )
    .await;
    // The route's backend is not reached in plaintext meanwhile.
    w.wait_for_code(
        "the backend refused without its CA",
        support::cluster::HOST,
        500,
    )
    .await;
    w.apply_yaml(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: httpbin-ca, namespace: httpbin}}\ndata:\n  ca.crt: {q}\n"
    ))
    .await;
    w.wait_status(
        "the policy accepted",
        GW,
        "BackendTLSPolicy",
        "httpbin",
        "httpbin-tls",
        accepted("Accepted"),
    )
    .await;
}
