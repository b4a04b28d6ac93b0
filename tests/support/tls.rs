//! Certificates made in the test, TLS Secrets holding them, and an HTTPS client that reports
//! which certificate the server presented.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::http::{self, Response};

/// A CA that issues server certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The DER of the certificate, as a client sees it.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("leaf PEM")
            .to_vec()
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An ECDSA P-256 server certificate for `names`.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with_uris(names, &[])
    }

    /// [`TestCa::leaf`] that also carries URI SANs (`spiffe://…`).
    pub fn leaf_with_uris(&self, names: &[&str], uris: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        for uri in uris {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(*uri).expect("URI"),
            ));
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A ConfigMap manifest holding `pem` under `ca.crt`.
pub fn ca_config_map(ns: &str, name: &str, pem: &str) -> String {
    let q = serde_json::to_string(pem).expect("string");
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  ca.crt: {q}\n"
    )
}

/// A `kubernetes.io/tls` Secret manifest holding `leaf` (stringData, as people write them).
pub fn secret(ns: &str, name: &str, leaf: &Leaf) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("string");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        q(&leaf.cert_pem),
        q(&leaf.key_pem)
    )
}

/// A client trusting `roots` (PEM certificates).
pub fn client(roots: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(der.expect("root PEM")).expect("root");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// A client trusting `roots` that presents `leaf` when asked for a certificate.
pub fn client_with_certificate(roots: &[&str], leaf: &Leaf) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::PrivateKeyDer;
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(der.expect("root PEM")).expect("root");
        }
    }
    let chain = vec![CertificateDer::from(leaf.der())];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    Arc::new(config)
}

/// `GET path` over TLS to 127.0.0.1:`port`, opening the connection with `sni` and sending
/// `Host: host`. Returns the response and the DER of the certificate the server presented.
pub fn get(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    sni: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(Response, Vec<u8>)> {
    let name = ServerName::try_from(sni.to_string()).map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let raw = http::read_response(&mut stream, "GET")?;
    let peer = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let response = http::parse(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "unparsable response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })?;
    Ok((response, peer))
}
