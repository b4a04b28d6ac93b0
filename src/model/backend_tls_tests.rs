//! BackendTLSPolicy: which Service ports get TLS, and that none is used in plaintext while a
//! policy targeting it cannot be honoured.

use k8s_openapi::api::core::v1::ServicePort;

use super::backend_tls::{for_port, statuses};
use crate::store::ObjKey;
use crate::testing::store;

const SERVICE: &str = "---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: app}
spec: {ports: [{name: https, port: 443}, {name: other, port: 8443}]}
";

fn ca() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).expect("ca").pem();
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: app}}\ndata:\n  ca.crt: {}\n",
        serde_json::to_string(&pem).expect("string")
    )
}

fn policy(name: &str, target: &str, validation: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, namespace: app}}\nspec:\n  targetRefs: [{target}]\n  validation: {validation}\n"
    )
}

const VALID: &str =
    "{caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}], hostname: svc.internal}";

/// (TLS to port https?, TLS to port other?) — `Err` when the port is refused.
fn ports(yaml: &str) -> [Result<bool, String>; 2] {
    let s = store(&(SERVICE.to_string() + yaml));
    let svc = ObjKey::new("app", "svc");
    let port = |name: &str| ServicePort {
        name: Some(name.into()),
        ..Default::default()
    };
    [
        for_port(&s, &svc, &port("https")).map(|t| t.is_some()),
        for_port(&s, &svc, &port("other")).map(|t| t.is_some()),
    ]
}

#[test]
fn a_policy_covers_its_ports_and_a_broken_one_refuses_them() {
    let ok = |v: [Result<bool, String>; 2]| v.map(|r| r.expect("usable"));
    let whole = "{group: '', kind: Service, name: svc}";
    let core = "{group: core, kind: Service, name: svc}";
    let one = "{group: '', kind: Service, name: svc, sectionName: https}";
    assert_eq!(ok(ports("")), [false, false]);
    assert_eq!(
        ok(ports(&(ca() + &policy("p", whole, VALID)))),
        [true, true]
    );
    assert_eq!(ok(ports(&(ca() + &policy("p", core, VALID)))), [true, true]);
    assert_eq!(ok(ports(&(ca() + &policy("p", one, VALID)))), [true, false]);
    for (what, yaml) in [
        ("no ConfigMap", policy("p", whole, VALID)),
        (
            "System roots",
            policy(
                "p",
                whole,
                "{wellKnownCACertificates: System, hostname: svc.internal}",
            ),
        ),
        (
            "a wildcard hostname",
            ca() + &policy(
                "p",
                whole,
                "{caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}], hostname: '*.internal'}",
            ),
        ),
        (
            "a sectionName naming no port",
            ca() + &policy(
                "p",
                "{group: '', kind: Service, name: svc, sectionName: '443'}",
                VALID,
            ),
        ),
    ] {
        // The whole Service is targeted, or a port it cannot find: no port is used.
        let [a, b] = ports(&yaml);
        assert!(
            a.is_err() && b.is_err(),
            "{what}: a port is used: {a:?} {b:?}"
        );
    }
}

#[test]
fn status_says_why_a_policy_is_not_used() {
    let cases = [
        (
            ca() + &policy("p", "{group: '', kind: Service, name: svc}", VALID),
            "Accepted",
        ),
        (
            policy("p", "{group: '', kind: Service, name: svc}", VALID),
            "NoValidCACertificate",
        ),
        (
            ca() + &policy(
                "p",
                "{group: '', kind: Service, name: svc, sectionName: nope}",
                VALID,
            ),
            "TargetNotFound",
        ),
        (
            ca() + &policy(
                "p",
                "{group: '', kind: Service, name: svc}",
                "{wellKnownCACertificates: System, hostname: svc.internal}",
            ),
            "Invalid",
        ),
    ];
    for (yaml, reason) in cases {
        let s = store(&(SERVICE.to_string() + &yaml));
        let gw = ObjKey::new("infra", "gw");
        let all = statuses(&s, |_| vec![gw.clone()]);
        let entry = &all[&ObjKey::new("app", "p")][0];
        let accepted = entry
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted")
            .expect("Accepted");
        assert_eq!(accepted.reason, reason, "{yaml}");
    }
}
