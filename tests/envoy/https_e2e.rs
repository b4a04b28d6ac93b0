//! HTTPS listeners through a real Envoy and a real TLS client: certificates chosen by SNI,
//! delivered over SDS, a cross-namespace Secret gated by a ReferenceGrant, ext auth on HTTPS
//! as on HTTP, a rotation under load that fails no request and drains no listener, and no
//! private key in anything Gatehouse prints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::procs::free_port;
use crate::support::standalone::World;
use crate::support::tls::{self, Leaf, TestCa};

const ALLOW: (&str, &str) = ("x-ext-authz", "allow");

/// The walkthrough's Gateway with two HTTPS listeners on `port`: `a.example.com` with the
/// Secret `kgateway-system/a`, `b.example.com` with `certs/b` (another namespace).
fn gateway(http_port: u16, port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gatehouse}}
spec: {{controllerName: gatehouse.dev/gatehouse}}
---
apiVersion: gateway.networking.k8s.io/v1
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
  - name: https-b
    protocol: HTTPS
    port: {port}
    hostname: b.example.com
    tls: {{certificateRefs: [{{name: b, namespace: certs}}]}}
    allowedRoutes: {{namespaces: {{from: All}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: tls-hosts, namespace: httpbin}}
spec:
  parentRefs: [{{name: http, namespace: kgateway-system}}]
  hostnames: [a.example.com, b.example.com]
  rules:
  - backendRefs: [{{name: httpbin, port: 8000}}]
"#
    )
}

const GRANT: &str = r#"apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gateways, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: kgateway-system}]
  to: [{group: "", kind: Secret}]
"#;

/// The certificate a new connection with `sni` is served, once the answer is `status`.
fn wait_for_cert(
    w: &World,
    client: &Arc<rustls::ClientConfig>,
    port: u16,
    sni: &str,
    status: u16,
    want: &Leaf,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match tls::get(client, port, sni, sni, "/headers", &[ALLOW]) {
            Ok((r, peer)) if r.status == status && peer == want.der() => return,
            Ok((r, _)) => last = format!("{} (certificate is not the one expected)", r.status),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "{sni} never served the expected certificate; last: {last}\n{}",
        w.logs()
    );
}

#[test]
fn https_listeners_choose_certificates_by_sni_rotate_without_a_failure_and_never_show_keys() {
    https_scenario(false);
}

/// The same over state-of-the-world xDS, where Envoy asks for Secrets by name on the stream.
#[test]
fn https_over_sotw() {
    https_scenario(true);
}

fn https_scenario(sotw: bool) {
    let mut w = World::start(sotw);
    let port = free_port();
    let ca = TestCa::new("test CA");
    let (a1, a2) = (ca.leaf(&["a.example.com"]), ca.leaf(&["a.example.com"]));
    let b = ca.leaf(&["b.example.com"]);
    let client = tls::client(&[&ca.cert_pem]);

    w.write("secret-a.yaml", &tls::secret("kgateway-system", "a", &a1));
    w.write("secret-b.yaml", &tls::secret("certs", "b", &b));
    w.apply_step("01-gateway-policy.yaml");
    w.write("gateway.yaml", &gateway(w.listener_port, port));
    wait_for_cert(&w, &client, port, "a.example.com", 200, &a1);

    // Ext auth checks HTTPS requests as it does HTTP ones.
    let (denied, _) = tls::get(
        &client,
        port,
        "a.example.com",
        "a.example.com",
        "/headers",
        &[],
    )
    .expect("https");
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(w.get(&[ALLOW]).expect("http").status, 200);

    // The Secret in another namespace is not used until a ReferenceGrant allows it: no chain
    // takes `b.example.com`, so the handshake fails.
    let status = w.admin("/debug/status").map(|r| r.body).unwrap_or_default();
    assert!(status.contains("RefNotPermitted"), "{status}");
    assert!(
        tls::get(
            &client,
            port,
            "b.example.com",
            "b.example.com",
            "/headers",
            &[ALLOW]
        )
        .is_err()
    );
    w.write("grant.yaml", GRANT);
    wait_for_cert(&w, &client, port, "b.example.com", 200, &b);

    // The Host header picks the routes, whatever the SNI: a request for b on a connection
    // opened for a is checked by b's policy (here the Gateway's), never let through unchecked.
    let (cross, peer) = tls::get(
        &client,
        port,
        "a.example.com",
        "b.example.com",
        "/headers",
        &[],
    )
    .expect("https");
    assert_eq!((cross.status, peer == a1.der()), (403, true), "{cross:?}");

    // Rotation under load: new connections all the while; none fails, and the listener is
    // neither replaced nor drained (only its SDS Secret changes).
    let modified = |w: &World| {
        (
            w.envoy_stat("listener_manager.listener_modified"),
            w.envoy_stat("listener_manager.listener_in_place_updated"),
        )
    };
    let before = modified(&w);
    assert!(
        before.0.is_some() && before.1.is_some(),
        "Envoy has no listener update stats"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, rotated) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = {
        let (stop, ok, failed, rotated) =
            (stop.clone(), ok.clone(), failed.clone(), rotated.clone());
        let (client, new) = (client.clone(), a2.der());
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match tls::get(
                    &client,
                    port,
                    "a.example.com",
                    "a.example.com",
                    "/headers",
                    &[ALLOW],
                ) {
                    Ok((r, peer)) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if peer == new {
                            rotated.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok((r, _)) => errors.push(format!("{} {}", r.status, r.body)),
                    Err(e) => errors.push(e.to_string()),
                }
                failed.store(errors.len() as u64, Ordering::Relaxed);
            }
            errors
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    w.write("secret-a.yaml", &tls::secret("kgateway-system", "a", &a2));
    w.wait_until(
        "the rotated certificate served",
        Duration::from_secs(30),
        |_| rotated.load(Ordering::Relaxed) >= 50,
    );
    stop.store(true, Ordering::Relaxed);
    let errors = load.join().expect("load thread");
    eprintln!(
        "rotation under load: {} requests, {} with the new certificate",
        ok.load(Ordering::Relaxed),
        rotated.load(Ordering::Relaxed)
    );
    assert!(
        errors.is_empty(),
        "{} failed requests: {errors:?}",
        errors.len()
    );
    assert!(ok.load(Ordering::Relaxed) > rotated.load(Ordering::Relaxed));
    assert_eq!(
        modified(&w),
        before,
        "the rotation replaced or updated the listener"
    );

    // No private key in anything Gatehouse shows or logs.
    let xds = w.admin("/debug/xds").map(|r| r.body).unwrap_or_default();
    assert!(xds.contains("secret/kgateway-system/a") && xds.contains("[redacted]"));
    let translated = std::process::Command::new(crate::support::procs::gatehouse())
        .args(["translate", "-f"])
        .arg(&w.manifests)
        .output()
        .expect("gatehouse translate");
    assert!(translated.status.success());
    let translated = String::from_utf8_lossy(&translated.stdout).to_string();
    assert!(translated.contains("b.example.com"));
    let logs: String = w.procs.iter().map(|p| p.tail(usize::MAX)).collect();
    for (what, text) in [
        ("/debug/xds", &xds),
        ("translate", &translated),
        ("logs", &logs),
    ] {
        for leaf in [&a1, &a2, &b] {
            let body: String = leaf
                .key_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            assert!(!text.contains("PRIVATE KEY"), "{what} shows a private key");
            assert!(!text.contains(&body[..40]), "{what} shows a private key");
        }
    }
    w.procs.clear();
}

/// The walkthrough's HTTPS step (README, `make run`): `gatehouse certificate` makes the Secret,
/// `03-https-listener.yaml` replaces the Gateway, and the Gateway's policy checks HTTPS too.
#[test]
fn the_walkthrough_https_step_serves_what_gatehouse_certificate_made() {
    let w = World::start(false);
    let port = free_port();
    let crt = w.path().join("www.crt");
    let out = std::process::Command::new(crate::support::procs::gatehouse())
        .args(["certificate", "--hostname", "www.example.com"])
        .args(["--secret", "kgateway-system/www-example-com", "--cert-out"])
        .arg(&crt)
        .output()
        .expect("gatehouse certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.write(
        "www-example-com-secret.yaml",
        &String::from_utf8_lossy(&out.stdout),
    );
    let step = std::fs::read_to_string(
        crate::support::repo().join("examples/ext-auth/steps/03-https-listener.yaml"),
    )
    .expect("step");
    assert!(step.contains("port: 8080") && step.contains("port: 8443"));
    w.apply_step("01-gateway-policy.yaml");
    w.write(
        "gateway.yaml",
        &step
            .replace("port: 8080", &format!("port: {}", w.listener_port))
            .replace("port: 8443", &format!("port: {port}")),
    );
    let ca = std::fs::read_to_string(&crt).expect("certificate");
    let client = tls::client(&[&ca]);
    let get = |headers: &[(&str, &str)]| {
        tls::get(
            &client,
            port,
            "www.example.com",
            "www.example.com",
            "/headers",
            headers,
        )
    };
    w.wait_for_response(
        "403 over HTTPS",
        || get(&[]).map(|(r, _)| r),
        |r| r.status == 403,
    );
    let (allowed, _) = get(&[ALLOW]).expect("https");
    assert_eq!(allowed.status, 200, "{allowed:?}");
}

/// Client certificates (`spec.tls.frontend`): a client without one, or with one from another
/// CA, gets no answer; one with a certificate the frontend CA signed is checked by ext auth,
/// which receives that certificate (`includePeerCertificate`).
#[test]
fn mtls_listeners_require_client_certificates_and_pass_them_to_ext_auth() {
    let w = World::start(false);
    let port = free_port();
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let stranger_ca = TestCa::new("stranger CA");
    let leaf = server_ca.leaf(&["a.example.com"]);
    let q = serde_json::to_string(&client_ca.cert_pem).expect("string");
    w.write("secret-a.yaml", &tls::secret("kgateway-system", "a", &leaf));
    w.write(
        "client-ca.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: client-ca, namespace: kgateway-system}}\ndata:\n  ca.crt: {q}\n"),
    );
    // The walkthrough's provider, with the client certificate passed on.
    let provider = std::fs::read_to_string(
        crate::support::repo().join("examples/ext-auth/base/ext-authz.yaml"),
    )
    .expect("ext-authz.yaml")
    .replace(
        "        port: 4444",
        "        port: 4444\n    includePeerCertificate: true",
    )
    .replace("9000", &w.authz_port.to_string());
    assert!(provider.contains("includePeerCertificate: true"));
    w.write("ext-authz.yaml", &provider);
    w.apply_step("01-gateway-policy.yaml");
    let gateway = gateway(w.listener_port, port).replace(
        "  gatewayClassName: gatehouse\n",
        "  gatewayClassName: gatehouse\n  tls:\n    frontend:\n      default:\n        validation:\n          caCertificateRefs: [{group: \"\", kind: ConfigMap, name: client-ca}]\n",
    );
    assert!(gateway.contains("frontend"));
    w.write("gateway.yaml", &gateway);

    let trusted =
        tls::client_with_certificate(&[&server_ca.cert_pem], &client_ca.leaf(&["client"]));
    let get = |c: &std::sync::Arc<rustls::ClientConfig>| {
        tls::get(
            c,
            port,
            "a.example.com",
            "a.example.com",
            "/headers",
            &[ALLOW],
        )
        .map(|(r, _)| r)
    };
    let ok = w.wait_for_response("mTLS served", || get(&trusted), |r| r.status == 200);
    let bytes: usize = ok
        .echoed_header("x-ext-authz-peer-certificate-bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        bytes > 0,
        "the auth service did not get the client certificate: {ok:?}"
    );

    let anonymous = tls::client(&[&server_ca.cert_pem]);
    let stranger =
        tls::client_with_certificate(&[&server_ca.cert_pem], &stranger_ca.leaf(&["client"]));
    for (who, c) in [
        ("no certificate", &anonymous),
        ("another CA's certificate", &stranger),
    ] {
        for _ in 0..3 {
            if let Ok(r) = get(c) {
                panic!("a client with {who} was answered: {r:?}");
            }
        }
    }
}
