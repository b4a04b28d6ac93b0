use super::*;

fn der(pem: &str) -> Vec<u8> {
    pem_to_der(pem).expect("pem")
}

#[test]
fn proxy_certificates_name_their_gateway() {
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate(now).expect("ca");
    let gw = ObjKey::new("team-a", "edge");
    let cert = ca.issue_proxy(&gw, now).expect("issue");
    assert_eq!(gateway_of_cert(&der(&cert.cert_pem)), Some(gw.clone()));
    let server = ca
        .issue_server(&["gatehouse.gatehouse-system.svc".into()], now)
        .expect("server");
    assert_eq!(gateway_of_cert(&der(&server.cert_pem)), None);
}

#[test]
fn identities_parse_strictly() {
    let gw = ObjKey::new("ns", "name");
    assert_eq!(parse_identity(&identity(&gw)), Some(gw));
    for bad in [
        "spiffe://gatehouse.dev/ns//gateway/x",
        "spiffe://gatehouse.dev/ns/a/gateway/",
        "spiffe://gatehouse.dev/ns/a/b/gateway/c",
        "spiffe://other.dev/ns/a/gateway/b",
        "spiffe://gatehouse.dev/ns/a/gateway/b/c",
    ] {
        assert_eq!(parse_identity(bad), None, "{bad}");
    }
}

#[test]
fn a_stored_ca_signs_like_the_original() {
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate(now).expect("ca");
    let again = Ca::from_pem(&ca.pem().cert_pem, &ca.pem().key_pem).expect("reload");
    let gw = ObjKey::new("a", "b");
    let cert = again.issue_proxy(&gw, now).expect("issue");
    assert!(ca.proxy_cert_current(&cert.cert_pem, &gw, now));
}

#[test]
fn certificates_are_renewed_when_foreign_wrong_or_expiring() {
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate(now).expect("ca");
    let other_ca = Ca::generate(now).expect("other ca");
    let gw = ObjKey::new("a", "b");
    let cert = ca.issue_proxy(&gw, now).expect("issue");
    assert!(ca.proxy_cert_current(&cert.cert_pem, &gw, now));
    assert!(
        !other_ca.proxy_cert_current(&cert.cert_pem, &gw, now),
        "foreign CA"
    );
    assert!(
        !ca.proxy_cert_current(&cert.cert_pem, &ObjKey::new("a", "c"), now),
        "other gateway"
    );
    let late = now + LEAF_VALIDITY - RENEW_BEFORE + Duration::days(1);
    assert!(
        !ca.proxy_cert_current(&cert.cert_pem, &gw, late),
        "expiring"
    );
    assert!(!ca.proxy_cert_current("not a pem", &gw, now));
}
