//! Names and labels of the objects provisioned for a Gateway.

use std::collections::BTreeMap;

/// Label every provisioned object carries, with the Gateway's name as value.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// `app.kubernetes.io/name` of proxy objects.
pub const PROXY_APP: &str = "gatehouse-proxy";
/// `app.kubernetes.io/managed-by` of provisioned objects.
pub const MANAGED_BY: &str = "gatehouse";
/// Pod annotation that changes whenever the bootstrap or the certificate changes, so that a
/// new bootstrap or a renewed certificate rolls the proxies.
pub const CONFIG_HASH_ANNOTATION: &str = "gatehouse.dev/config-hash";

/// Pod annotation naming the xDS credentials (client certificate and trusted CA bundle) the
/// pods mount, so that `gatehouse ca rotate` can tell whether the proxies rolled onto a step.
pub const CREDENTIALS_HASH_ANNOTATION: &str = "gatehouse.dev/xds-credentials";

/// The [`CREDENTIALS_HASH_ANNOTATION`] of a certificate and a CA bundle.
pub fn credentials_hash(cert_pem: &str, ca_pem: &str) -> String {
    digest(&[cert_pem, ca_pem])
}

/// A short hex digest (SHA-256, 8 bytes) of `parts`, for pod annotations that roll proxies.
pub fn digest(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Longest Kubernetes label value and Service name (DNS-1035 label).
const MAX: usize = 63;

/// Name shared by a Gateway's Deployment, Service, ServiceAccount and ConfigMap: the Gateway's
/// name with a prefix so it cannot collide with the user's own Services; shortened with a hash
/// suffix when too long for a Service name.
pub fn proxy_name(gateway_name: &str) -> String {
    let full = format!("gatehouse-{gateway_name}");
    if full.len() <= MAX {
        return full;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, gateway_name.as_bytes());
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX - hash.len() - 1;
    let head = full[..keep].trim_end_matches(['-', '.']);
    format!("{head}-{hash}")
}

/// Name of the Secret holding the proxies' xDS client certificate.
pub fn tls_secret_name(gateway_name: &str) -> String {
    let base = proxy_name(gateway_name);
    // Secret names may be 253 long; the suffix never needs shortening.
    format!("{base}-xds-tls")
}

/// Label value: the Gateway's name, hashed like [`proxy_name`] when longer than a label allows.
pub fn label_value(gateway_name: &str) -> String {
    if gateway_name.len() <= MAX {
        gateway_name.to_string()
    } else {
        proxy_name(gateway_name)
    }
}

/// The labels that select a Gateway's proxy pods.
pub fn selector(gateway_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), PROXY_APP.to_string()),
        (GATEWAY_NAME_LABEL.to_string(), label_value(gateway_name)),
    ])
}

/// Labels of every provisioned object.
pub fn labels(gateway_name: &str) -> BTreeMap<String, String> {
    let mut labels = selector(gateway_name);
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        MANAGED_BY.to_string(),
    );
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_kubernetes_limits_and_stay_distinct() {
        assert_eq!(proxy_name("http"), "gatehouse-http");
        let long_a = "a".repeat(200);
        let long_b = format!("{}b", "a".repeat(199));
        let (a, b) = (proxy_name(&long_a), proxy_name(&long_b));
        assert!(a.len() <= MAX && b.len() <= MAX, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, proxy_name(&long_a), "stable");
        assert!(label_value(&long_a).len() <= MAX);
        assert_eq!(label_value("http"), "http");
        assert!(tls_secret_name("http").ends_with("-xds-tls"));
    }
}
