//! HTTPS listeners: which certificates Envoy gets, and what the listener's status says.

use std::time::SystemTime;

use rcgen::{CertificateParams, KeyPair};
use time::{Duration, OffsetDateTime};

use super::tests::{cond, model};
use super::tls::{CertificateCache, KeyType, certificate};
use crate::store::ObjKey;
use crate::testing::{gateway, reference_grant_raw, store};

const RSA_2048: &str = include_str!("../../tests/testdata/tls/rsa-2048.key");
const RSA_2048_PKCS1: &str = include_str!("../../tests/testdata/tls/rsa-2048-pkcs1.key");
const RSA_1024: &str = include_str!("../../tests/testdata/tls/rsa-1024.key");
const RSA_1024_CRT: &str = include_str!("../../tests/testdata/tls/rsa-1024.crt");

/// A self-signed certificate for `name` and `key`, valid from `from` to `to` days from now.
fn cert(name: &str, key: &KeyPair, from: i64, to: i64) -> String {
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
    let now = OffsetDateTime::now_utc();
    params.not_before = now + Duration::days(from);
    params.not_after = now + Duration::days(to);
    params.self_signed(key).expect("self-signed").pem()
}

/// A fresh ECDSA P-256 certificate and key for `name`.
fn ecdsa(name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    (cert(name, &key, -1, 30), key.serialize_pem())
}

/// A Secret `ns/name` of `type_` holding `crt` and `key` (stringData, as a manifest may).
fn secret(ns: &str, name: &str, type_: &str, crt: &str, key: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("string");
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: {type_}\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        q(crt),
        q(key)
    )
}

fn tls_secret(ns: &str, name: &str, (crt, key): &(String, String)) -> String {
    secret(ns, name, "kubernetes.io/tls", crt, key)
}

/// Checks one Secret on its own.
fn check(yaml: &str) -> Result<super::tls::Certificate, String> {
    let s = store(yaml);
    let (key, secret) = s.secrets.iter().next().expect("a Secret");
    certificate(key, secret, SystemTime::now())
}

#[test]
fn certificates_envoy_would_load_are_taken_and_re_encoded() {
    let (crt, key) = ecdsa("a.example.com");
    let messy_crt = format!("issued by hand\n{crt}\n");
    let c = check(&tls_secret("infra", "a", &(messy_crt, key))).expect("valid");
    assert_eq!(c.key_type, KeyType::Ecdsa);
    assert!(c.chain_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(!c.chain_pem.contains("issued by hand") && !c.chain_pem.contains('\r'));
    assert!(format!("{c:?}").contains("[redacted]"));
    assert!(!format!("{c:?}").contains("PRIVATE KEY"));

    let rsa = KeyPair::from_pem(RSA_2048).expect("rsa key");
    let rsa_crt = cert("r.example.com", &rsa, -1, 30);
    for key in [RSA_2048, RSA_2048_PKCS1] {
        let c = check(&tls_secret("infra", "r", &(rsa_crt.clone(), key.into()))).expect("rsa");
        assert_eq!(c.key_type, KeyType::Rsa);
    }
}

#[test]
fn certificates_envoy_would_refuse_are_refused_with_the_reason() {
    let good = ecdsa("a.example.com");
    let other = ecdsa("b.example.com");
    let expired = {
        let key = KeyPair::generate().expect("key");
        (cert("a.example.com", &key, -30, -1), key.serialize_pem())
    };
    let future = {
        let key = KeyPair::generate().expect("key");
        (cert("a.example.com", &key, 2, 30), key.serialize_pem())
    };
    let ed25519 = {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        (cert("a.example.com", &key, -1, 30), key.serialize_pem())
    };
    let cases = [
        (
            secret("infra", "s", "Opaque", &good.0, &good.1),
            "has type Opaque",
        ),
        (
            tls_secret("infra", "s", &(good.0.clone(), other.1.clone())),
            "not the key of the first certificate",
        ),
        (tls_secret("infra", "s", &expired), "expired"),
        (tls_secret("infra", "s", &future), "not valid before"),
        (
            tls_secret("infra", "s", &ed25519),
            "RSA and ECDSA certificates only",
        ),
        (
            tls_secret("infra", "s", &(RSA_1024_CRT.into(), RSA_1024.into())),
            "RSA (2048 bits or more)",
        ),
        (
            tls_secret("infra", "s", &("not pem".into(), good.1.clone())),
            "no CERTIFICATE",
        ),
        (
            tls_secret("infra", "s", &(good.0.clone(), "MIIB secret-bytes".into())),
            "no PRIVATE KEY",
        ),
        (
            tls_secret(
                "infra",
                "s",
                &(good.0.clone(), format!("{}{}", good.1, other.1)),
            ),
            "more than one private key",
        ),
        (
            tls_secret("infra", "s", &(good.0.clone(), String::new())),
            "has no tls.key",
        ),
    ];
    for (yaml, want) in cases {
        let err = check(&yaml).expect_err(want);
        assert!(err.contains(want), "{err:?} should say {want:?}");
        assert!(!err.contains("secret-bytes"), "{err:?} quotes the key");
    }
}

/// A Gateway `infra/tls` with one HTTPS listener `a` on 443 for `a.example.com` whose
/// certificateRefs are `refs` (YAML flow sequence items).
fn https_gateway(refs: &str) -> String {
    gateway(
        "infra",
        "tls",
        "gatehouse",
        &format!(
            "listeners: [{{name: a, protocol: HTTPS, port: 443, hostname: a.example.com, tls: {{certificateRefs: [{refs}]}}}}]"
        ),
    )
}

/// The listener `name` of `infra/tls`: (ResolvedRefs reason, Programmed), and the certificates
/// its port's TLS chain serves.
fn listener(extra: &str, name: &str) -> (String, bool, Vec<String>) {
    let m = model(extra);
    let gw = &m.status.gateways[&ObjKey::new("infra", "tls")];
    let l = gw
        .listeners
        .iter()
        .find(|l| l.name == name)
        .expect("listener");
    let served: Vec<String> = m
        .gateway(&ObjKey::new("infra", "tls"))
        .into_iter()
        .flat_map(|g| g.ports.iter())
        .flat_map(|p| p.tls.iter())
        .filter(|t| t.listener == name)
        .flat_map(|t| t.certificates.iter().map(|c| c.secret.to_string()))
        .collect();
    (
        cond(&l.conditions, "ResolvedRefs").reason.clone(),
        cond(&l.conditions, "Programmed").is_true(),
        served,
    )
}

#[test]
fn certificate_refs_resolve_within_the_namespace_or_through_a_reference_grant() {
    let a = ecdsa("a.example.com");
    let certs = tls_secret("infra", "a", &a) + &tls_secret("certs", "a", &a);
    let grant = reference_grant_raw(
        "certs",
        "{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}",
        "{group: '', kind: Secret}",
    );
    let cases = [
        ("{name: a}", "", ("ResolvedRefs", true, vec!["infra/a"])),
        (
            "{name: a, namespace: certs}",
            "",
            ("RefNotPermitted", false, vec![]),
        ),
        (
            "{name: a, namespace: certs}",
            grant.as_str(),
            ("ResolvedRefs", true, vec!["certs/a"]),
        ),
        ("{name: nope}", "", ("InvalidCertificateRef", false, vec![])),
        (
            "{name: a, kind: ConfigMap}",
            "",
            ("InvalidCertificateRef", false, vec![]),
        ),
        // A ref that resolves is served while its sibling is reported.
        (
            "{name: nope}, {name: a}",
            "",
            ("InvalidCertificateRef", true, vec!["infra/a"]),
        ),
    ];
    for (refs, extra, (reason, programmed, served)) in cases {
        let got = listener(&(https_gateway(refs) + &certs + extra), "a");
        assert_eq!(
            got,
            (
                reason.to_string(),
                programmed,
                served.iter().map(|s| s.to_string()).collect()
            ),
            "refs {refs}"
        );
    }
}

#[test]
fn a_listener_serves_every_certificate_that_resolves() {
    let rsa = KeyPair::from_pem(RSA_2048).expect("rsa key");
    let rsa = (cert("a.example.com", &rsa, -1, 30), RSA_2048.to_string());
    let yaml = https_gateway("{name: rsa}, {name: ec1}, {name: ec2}")
        + &tls_secret("infra", "rsa", &rsa)
        + &tls_secret("infra", "ec1", &ecdsa("a.example.com"))
        + &tls_secret("infra", "ec2", &ecdsa("a.example.com"));
    let (reason, programmed, served) = listener(&yaml, "a");
    assert_eq!(reason, "ResolvedRefs");
    assert!(programmed);
    assert_eq!(served, ["infra/rsa", "infra/ec1", "infra/ec2"]);
}

#[test]
fn https_listeners_that_cannot_be_served_say_why_and_leave_the_others_alone() {
    let a = tls_secret("infra", "a", &ecdsa("a.example.com"));
    let gw = |listeners: &str, tls: &str| {
        gateway(
            "infra",
            "tls",
            "gatehouse",
            &format!("{tls}listeners: [{listeners}]"),
        ) + &a
    };
    let https = "{name: s, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: a}]}}";
    let cases = [
        (
            gw(
                "{name: s, protocol: HTTPS, port: 443, tls: {mode: Passthrough}}",
                "",
            ),
            ("Accepted", "UnsupportedValue"),
        ),
        (
            gw(
                "{name: s, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: a}], options: {x: y}}}",
                "",
            ),
            ("Accepted", "UnsupportedValue"),
        ),
        (
            gw(
                https,
                "tls: {frontend: {default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}}}}, ",
            ),
            ("Accepted", "NoValidCACertificate"),
        ),
        (
            gw(
                &format!("{{name: h, protocol: HTTP, port: 443}}, {https}"),
                "",
            ),
            ("Conflicted", "ProtocolConflict"),
        ),
    ];
    for (yaml, (type_, reason)) in cases {
        let m = model(&yaml);
        let status = &m.status.gateways[&ObjKey::new("infra", "tls")];
        let s = status
            .listeners
            .iter()
            .find(|l| l.name == "s")
            .expect("listener s");
        assert_eq!(cond(&s.conditions, type_).reason, reason, "{yaml}");
        assert!(!cond(&s.conditions, "Programmed").is_true());
        // Other Gateways are served as ever.
        let other = &m.status.gateways[&ObjKey::new("infra", "gw")];
        assert!(cond(&other.listeners[0].conditions, "Programmed").is_true());
        assert!(m.gateway(&ObjKey::new("infra", "gw")).is_some());
    }
}

#[test]
fn the_cache_parses_a_secret_once_per_content_and_checks_expiry_each_build() {
    let first = tls_secret("infra", "a", &ecdsa("a.example.com"));
    let rotated = tls_secret("infra", "a", &ecdsa("a.example.com"));
    let (s1, s2) = (store(&first), store(&rotated));
    let key = ObjKey::new("infra", "a");
    let cache = CertificateCache::default();
    let now = SystemTime::now();
    let get = |s: &crate::store::Store, now| cache.certificate(&key, &s.secrets[&key], now);
    let a = get(&s1, now).expect("valid");
    cache.next_build();
    let again = get(&s1, now).expect("valid");
    assert!(std::sync::Arc::ptr_eq(&a, &again), "parsed again");
    let b = get(&s2, now).expect("valid");
    assert!(!std::sync::Arc::ptr_eq(&a, &b) && a.chain_pem != b.chain_pem);
    // A cached certificate past its end is refused like a fresh one.
    let later = now + std::time::Duration::from_secs(60 * 86_400);
    assert!(get(&s2, later).expect_err("expired").contains("expired"));
    // Two builds without the Secret forget it.
    cache.next_build();
    cache.next_build();
    let parsed_again = get(&s2, now).expect("valid");
    assert!(!std::sync::Arc::ptr_eq(&b, &parsed_again));
}

#[test]
fn client_certificate_validation_takes_the_ports_own_or_the_default_ca() {
    let a = tls_secret("infra", "a", &ecdsa("a.example.com"));
    let ca_pem = ecdsa("ca.example.com").0;
    let q = serde_json::to_string(&ca_pem).expect("string");
    let ca = |name: &str, ns: &str| {
        format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  ca.crt: {q}\n"
        )
    };
    let gw = |frontend: &str| {
        gateway(
            "infra",
            "tls",
            "gatehouse",
            &format!(
                "tls: {{frontend: {frontend}}}, listeners: [{{name: s, protocol: HTTPS, port: 443, tls: {{certificateRefs: [{{name: a}}]}}}}, {{name: t, protocol: HTTPS, port: 8443, tls: {{certificateRefs: [{{name: a}}]}}}}]"
            ),
        ) + &a
    };
    // (frontend, extra objects) → per listener: (Accepted reason, ResolvedRefs reason, insecure fallback?)
    type Want = [(&'static str, &'static str, &'static str, Option<bool>); 2];
    let cases: Vec<(String, String, Want)> = vec![
        (
            "{default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}}}".into(),
            ca("ca", "infra"),
            [("s", "Accepted", "ResolvedRefs", Some(false)), ("t", "Accepted", "ResolvedRefs", Some(false))],
        ),
        (
            "{default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}}, perPort: [{port: 8443, tls: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}], mode: AllowInsecureFallback}}}]}".into(),
            ca("ca", "infra"),
            [("s", "Accepted", "ResolvedRefs", Some(false)), ("t", "Accepted", "ResolvedRefs", Some(true))],
        ),
        // Another namespace's CA needs a grant; without one the listeners are not served.
        (
            "{default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca, namespace: pki}]}}}".into(),
            ca("ca", "pki"),
            [("s", "NoValidCACertificate", "ResolvedRefs", None), ("t", "NoValidCACertificate", "ResolvedRefs", None)],
        ),
        (
            "{default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca, namespace: pki}]}}}".into(),
            ca("ca", "pki") + &reference_grant_raw(
                "pki",
                "{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}",
                "{group: '', kind: ConfigMap}",
            ),
            [("s", "Accepted", "ResolvedRefs", Some(false)), ("t", "Accepted", "ResolvedRefs", Some(false))],
        ),
        // One CA resolves, one does not: served with the one, the other reported.
        (
            "{default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}, {group: '', kind: Secret, name: ca}]}}}".into(),
            ca("ca", "infra"),
            [("s", "Accepted", "InvalidCACertificateKind", Some(false)), ("t", "Accepted", "InvalidCACertificateKind", Some(false))],
        ),
    ];
    for (frontend, extra, want) in cases {
        let m = model(&(gw(&frontend) + &extra));
        let status = &m.status.gateways[&ObjKey::new("infra", "tls")];
        let served = m.gateway(&ObjKey::new("infra", "tls"));
        for (name, accepted, resolved, fallback) in want {
            let l = status
                .listeners
                .iter()
                .find(|l| l.name == name)
                .expect("listener");
            assert_eq!(
                cond(&l.conditions, "Accepted").reason,
                accepted,
                "{frontend} {name}"
            );
            if accepted == "Accepted" {
                assert_eq!(
                    cond(&l.conditions, "ResolvedRefs").reason,
                    resolved,
                    "{frontend} {name}"
                );
            }
            let chain = served
                .iter()
                .flat_map(|g| g.ports.iter())
                .flat_map(|p| p.tls.iter())
                .find(|t| t.listener == name);
            assert_eq!(
                chain
                    .and_then(|c| c.clients.as_ref())
                    .map(|c| c.insecure_fallback),
                fallback,
                "{frontend} {name}"
            );
            assert!(chain.is_none_or(|c| {
                c.clients
                    .as_ref()
                    .is_some_and(|v| v.ca_pem == ca_pem.replace("\r\n", "\n"))
            }));
        }
    }
}

/// An HTTPS listener whose certificate goes bad keeps its hostname: requests for it answer
/// 404 rather than reaching a broader listener's routes (which its listener-level policies do
/// not cover), and a plaintext listener conflicting with it on its port stays refused.
#[test]
fn a_listener_refused_for_tls_keeps_its_hostname_and_its_port() {
    let a = tls_secret("infra", "a", &ecdsa("public.example.com"));
    let route = crate::testing::http_route(
        "infra",
        "r",
        "tls",
        &["admin.example.com"],
        "  - backendRefs: [{name: web, port: 80}]\n",
    );
    let gw = |admin_tls: &str| {
        gateway(
            "infra",
            "tls",
            "gatehouse",
            &format!(
                "listeners: [{{name: admin, protocol: HTTPS, port: 443, hostname: admin.example.com, tls: {admin_tls}}}, {{name: public, protocol: HTTPS, port: 443, tls: {{certificateRefs: [{{name: a}}]}}}}, {{name: plain, protocol: HTTP, port: 443}}]"
            ),
        )
    };
    for admin_tls in [
        "{certificateRefs: [{name: gone}]}",
        "{mode: Passthrough}",
        "{certificateRefs: [{name: a}], options: {x: y}}",
    ] {
        let m = model(&(gw(admin_tls) + &a + &route + crate::testing::GATEWAY_AND_WEB));
        let g = m.gateway(&ObjKey::new("infra", "tls")).expect("served");
        let port = g.ports.iter().find(|p| p.port == 443).expect("port 443");
        let admin = port
            .virtual_hosts
            .iter()
            .find(|h| h.hostname == "admin.example.com")
            .expect("the admin host stays");
        assert_eq!(
            (admin.listener.as_str(), admin.routes.len()),
            ("admin", 0),
            "{admin_tls}"
        );
        assert!(
            port.virtual_hosts.iter().all(|h| h.routes.is_empty()),
            "{admin_tls}: the route reached another listener"
        );
        assert_eq!(port.tls.len(), 1, "{admin_tls}: only public has a chain");
        let status = &m.status.gateways[&ObjKey::new("infra", "tls")];
        let plain = status
            .listeners
            .iter()
            .find(|l| l.name == "plain")
            .expect("plain");
        assert_eq!(
            cond(&plain.conditions, "Conflicted").reason,
            "ProtocolConflict",
            "{admin_tls}"
        );
    }
}

#[test]
fn listener_hostnames_and_names_envoy_would_refuse_are_refused() {
    let a = tls_secret("infra", "a", &ecdsa("a.example.com"));
    for (listeners, bad) in [
        (
            "{name: s, protocol: HTTPS, port: 443, hostname: 'a*.example.com', tls: {certificateRefs: [{name: a}]}}",
            "s",
        ),
        (
            "{name: s, protocol: HTTPS, port: 443, hostname: 'example.*', tls: {certificateRefs: [{name: a}]}}",
            "s",
        ),
        (
            "{name: s, protocol: HTTP, port: 80, hostname: 'Upper.example.com'}",
            "s",
        ),
    ] {
        let m = model(
            &(gateway(
                "infra",
                "tls",
                "gatehouse",
                &format!("listeners: [{listeners}]"),
            ) + &a),
        );
        let status = &m.status.gateways[&ObjKey::new("infra", "tls")];
        let l = status
            .listeners
            .iter()
            .find(|l| l.name == bad)
            .expect("listener");
        assert_eq!(
            cond(&l.conditions, "Accepted").reason,
            "UnsupportedValue",
            "{listeners}"
        );
    }
    let twice = "{name: s, protocol: HTTP, port: 80}, {name: s, protocol: HTTP, port: 81}";
    let m = model(&gateway(
        "infra",
        "tls",
        "gatehouse",
        &format!("listeners: [{twice}]"),
    ));
    let ports: Vec<u16> = m
        .gateway(&ObjKey::new("infra", "tls"))
        .map(|g| g.ports.iter().map(|p| p.port).collect())
        .unwrap_or_default();
    assert_eq!(ports, [80], "the second listener named s is not served");
}
