//! BackendTLSPolicy to a TLS-only gRPC auth service, through a real Envoy: checks travel over
//! TLS validated against the policy's CA and hostname; a wrong CA, or a policy that cannot be
//! honoured, fails the protected route closed and never sends a check in plaintext.

use std::process::Command;
use std::time::Duration;

use crate::support::procs::{Proc, free_port, wait_for_port, workspace_bin};
use crate::support::standalone::World;
use crate::support::tls::{Leaf, TestCa};

const ALLOW: (&str, &str) = ("x-ext-authz", "allow");
const AUTHZ_HOST: &str = "authz.auth.internal";

/// The TLS auth service, its CA in a ConfigMap, the BackendTLSPolicy, the GatewayExtension and
/// a Gateway policy using it. `ca` is the ConfigMap's bundle.
fn manifests(port: u16, ca: &str) -> String {
    let q = serde_json::to_string(ca).expect("string");
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: tls-authz, namespace: kgateway-system}}
spec: {{ports: [{{name: grpc, port: 4443, appProtocol: kubernetes.io/h2c}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: tls-authz-1, namespace: kgateway-system, labels: {{kubernetes.io/service-name: tls-authz}}}}
addressType: IPv4
ports: [{{name: grpc, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: authz-ca, namespace: kgateway-system}}
data:
  ca.crt: {q}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: tls-authz, namespace: kgateway-system}}
spec:
  targetRefs: [{{group: "", kind: Service, name: tls-authz}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: authz-ca}}]
    hostname: {AUTHZ_HOST}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {{name: tls-ext-auth, namespace: kgateway-system}}
spec:
  type: ExtAuth
  extAuth:
    grpcService:
      backendRef: {{name: tls-authz, port: 4443}}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: gateway-tls-ext-auth, namespace: kgateway-system}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: http}}]
  extAuth:
    extensionRef: {{name: tls-ext-auth}}
"#
    )
}

/// Starts the demo auth server serving gRPC over TLS only with `leaf`, requiring client
/// certificates `client_ca` signed when given; returns its port.
fn start_tls_authz(w: &mut World, leaf: &Leaf, client_ca: Option<&str>) -> u16 {
    let dir = w.path().to_path_buf();
    std::fs::write(dir.join("authz.crt"), &leaf.cert_pem).expect("cert");
    std::fs::write(dir.join("authz.key"), &leaf.key_pem).expect("key");
    let port = free_port();
    let mut authz = Command::new(workspace_bin("gatehouse-ext-authz"));
    authz
        .args([
            "--grpc-addr",
            &format!("127.0.0.1:{port}"),
            "--http-addr",
            "off",
        ])
        .args(["--name", "tls-authz", "--tls-cert"])
        .arg(dir.join("authz.crt"))
        .arg("--tls-key")
        .arg(dir.join("authz.key"));
    if let Some(ca) = client_ca {
        std::fs::write(dir.join("clients.crt"), ca).expect("client CA");
        authz.arg("--tls-client-ca").arg(dir.join("clients.crt"));
    }
    w.procs.push(Proc::spawn("tls-authz", authz, &dir));
    wait_for_port(port, Duration::from_secs(10), "tls-authz");
    port
}

#[test]
fn checks_go_to_a_tls_auth_service_as_its_backend_tls_policy_says_or_fail_closed() {
    scenario(false);
}

/// SotW too: Envoy re-asks for a changed cluster's endpoints by name.
#[test]
fn backend_tls_over_sotw() {
    scenario(true);
}

fn scenario(sotw: bool) {
    let mut w = World::start(sotw);
    let ca = TestCa::new("auth CA");
    let port = start_tls_authz(&mut w, &ca.leaf(&[AUTHZ_HOST]), None);

    // The right CA: the TLS-only server answers the checks.
    w.write("tls-authz.yaml", &manifests(port, &ca.cert_pem));
    let denied = w.wait_for_response(
        "a check answered by the TLS auth server",
        || w.get(&[]),
        |r| r.status == 403 && r.header("x-ext-authz-provider") == Some("tls-authz"),
    );
    assert_eq!(denied.header("x-ext-authz-check-result"), Some("denied"));
    let allowed = w.get(&[ALLOW]).expect("request");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(
        allowed.echoed_header("x-ext-authz-check-result").as_deref(),
        Some("allowed")
    );

    // A CA that did not sign the server's certificate: the check fails, the route refuses
    // (statusOnError 403), and the server never sees a request.
    let other = TestCa::new("someone else");
    w.write("tls-authz.yaml", &manifests(port, &other.cert_pem));
    w.wait_for_response(
        "fail closed with the wrong CA",
        || w.get(&[ALLOW]),
        |r| r.status == 403 && r.header("x-ext-authz-provider").is_none(),
    );
    for _ in 0..5 {
        let r = w.get(&[ALLOW]).expect("request");
        assert_eq!(r.status, 403, "{r:?}");
    }

    // A policy that cannot be honoured (its ConfigMap is gone) does not turn into plaintext:
    // the provider fails closed, its policy's routes answer without reaching the backend.
    let without_ca: String = manifests(port, &ca.cert_pem)
        .split("---\n")
        .filter(|d| !d.contains("\nkind: ConfigMap\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    w.write("tls-authz.yaml", &without_ca);
    w.wait_until(
        "the policy reported invalid",
        Duration::from_secs(10),
        |w| {
            let status = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
            status.contains("InvalidCACertificateRef") && status.contains("NoValidCACertificate")
        },
    );
    let status = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
    assert!(
        status.contains("InvalidBackendTLSPolicy"),
        "the provider does not say why: {status}"
    );
    for _ in 0..5 {
        let r = w.get(&[ALLOW]).expect("request");
        assert!(
            r.status >= 400 && r.header("x-ext-authz-provider").is_none(),
            "{r:?}"
        );
    }
}

/// mTLS to a backend: an auth server that requires a client certificate refuses Envoy until
/// the Gateway's `spec.tls.backend.clientCertificateRef` names one its CA signed.
#[test]
fn the_gateway_presents_its_backend_client_certificate() {
    let mut w = World::start(false);
    let (server_ca, client_ca) = (TestCa::new("auth CA"), TestCa::new("gateway clients"));
    let port = start_tls_authz(
        &mut w,
        &server_ca.leaf(&[AUTHZ_HOST]),
        Some(&client_ca.cert_pem),
    );
    w.write("tls-authz.yaml", &manifests(port, &server_ca.cert_pem));
    w.write(
        "gateway-client.yaml",
        &crate::support::tls::secret(
            "kgateway-system",
            "gateway-client",
            &client_ca.leaf(&["gateway"]),
        ),
    );
    // No client certificate yet: the server refuses the handshake, checks fail closed.
    w.wait_for_response(
        "fail closed without a client certificate",
        || w.get(&[ALLOW]),
        |r| r.status == 403 && r.header("x-ext-authz-provider").is_none(),
    );
    let gateway = std::fs::read_to_string(w.manifests.join("gateway.yaml")).expect("gateway");
    let with_client = gateway.replace(
        "  gatewayClassName: gatehouse\n",
        "  gatewayClassName: gatehouse\n  tls:\n    backend:\n      clientCertificateRef: {name: gateway-client}\n",
    );
    assert_ne!(with_client, gateway);
    w.write("gateway.yaml", &with_client);
    w.wait_for_response(
        "checks answered over mTLS",
        || w.get(&[ALLOW]),
        |r| r.status == 200,
    );
    let denied = w.get(&[]).expect("request");
    assert_eq!(denied.header("x-ext-authz-provider"), Some("tls-authz"));
    let status = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
    assert!(
        status.contains("the backend client certificate is presented"),
        "{status}"
    );
}
