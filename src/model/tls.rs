//! HTTPS listeners: `certificateRefs` resolved to certificates Envoy will load.
//!
//! A certificate reaches Envoy only after it was parsed and checked here the way Envoy checks
//! it (docs/tls.md): a Secret Envoy would refuse never reaches it, since a refused SDS update
//! leaves a new listener warming until its init timeout, and one tenant's bad Secret would
//! stop every other change to that Gateway's proxies. What Envoy receives is re-encoded from
//! what was parsed, so nothing unchecked in the Secret (comments, stray blocks) goes with it.

use std::sync::Arc;
use std::time::SystemTime;

use gateway_api::apis::standard::gateways::{GatewayListenersTls, GatewayListenersTlsMode};
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::refs::{self, RefError};
pub use super::types::{Certificate, ClientValidation, KeyType, PrivateKey};
use crate::model::condition_names as cond;
use crate::store::{ObjKey, Store};

/// The Secret type Gateway API's core support names.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// A Terminate listener's certificates, and what was wrong with the refs that did not resolve.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListenerTls {
    pub certificates: Vec<Arc<Certificate>>,
    /// The first problem, as the listener's `ResolvedRefs` reports it.
    pub problem: Option<RefError>,
    /// Client certificate validation (the Gateway's `spec.tls.frontend`).
    pub clients: Option<Arc<ClientValidation>>,
}

/// The frontend validation that applies to one port, normalized from the Gateway's `default`
/// or `perPort` (the two have the same fields in different generated types).
pub struct FrontendRefs {
    /// (group, kind, namespace, name) of each caCertificateRef.
    pub refs: Vec<(String, String, Option<String>, String)>,
    pub insecure_fallback: bool,
}

/// The validation of a Gateway's HTTPS listeners on `port`, if any.
pub fn frontend_for_port(
    frontend: &gateway_api::apis::standard::gateways::GatewayTlsFrontend,
    port: i32,
) -> Option<FrontendRefs> {
    use gateway_api::apis::standard::gateways::{
        GatewayTlsFrontendDefaultValidationMode as DefaultMode,
        GatewayTlsFrontendPerPortTlsValidationMode as PortMode,
    };
    // `perPort` and `default` validations are distinct generated types with the same fields.
    macro_rules! normalized {
        ($v:expr, $fallback:expr) => {
            FrontendRefs {
                refs: $v
                    .ca_certificate_refs
                    .iter()
                    .map(|r| {
                        (
                            r.group.clone(),
                            r.kind.clone(),
                            r.namespace.clone(),
                            r.name.clone(),
                        )
                    })
                    .collect(),
                insecure_fallback: $v.mode == Some($fallback),
            }
        };
    }
    if let Some(per_port) = frontend.per_port.iter().flatten().find(|p| p.port == port) {
        let v = per_port.tls.validation.as_ref()?;
        return Some(normalized!(v, PortMode::AllowInsecureFallback));
    }
    let v = frontend.default.validation.as_ref()?;
    Some(normalized!(v, DefaultMode::AllowInsecureFallback))
}

/// Resolves a port's client validation: `Err` (Accepted `NoValidCACertificate`) when no CA
/// resolves; otherwise the CAs that do, and the first problem (for `ResolvedRefs`).
pub fn client_validation(
    store: &Store,
    gateway: &ObjKey,
    f: &FrontendRefs,
) -> (Result<Arc<ClientValidation>, String>, Option<RefError>) {
    let mut bundle = String::new();
    let mut problem = None;
    for (group, kind, namespace, name) in &f.refs {
        let found = gateway_ref(
            store,
            gateway,
            Ref {
                group,
                kind,
                namespace: namespace.as_deref(),
                name,
                field: "caCertificateRef",
            },
            "ConfigMap",
            cond::INVALID_CA_CERTIFICATE_KIND,
        )
        .and_then(|key| {
            super::backend_tls::ca_bundle(store, &key).map_err(|why| {
                RefError::new(
                    cond::INVALID_CA_CERTIFICATE_REF,
                    format!("ConfigMap {key}: {why}"),
                )
            })
        });
        match found {
            Ok(pem) => bundle.push_str(&pem),
            Err(e) => {
                problem.get_or_insert(e);
            }
        }
    }
    let result = if bundle.is_empty() {
        Err(problem
            .as_ref()
            .map(|p| p.message.clone())
            .unwrap_or_else(|| "no caCertificateRefs".into()))
    } else {
        Ok(Arc::new(ClientValidation {
            ca_pem: bundle,
            insecure_fallback: f.insecure_fallback,
        }))
    };
    (result, problem)
}

/// Why a listener's TLS settings cannot be served at all: its `Accepted` reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub &'static str, pub String);

/// Resolves the `tls` of an HTTPS listener of the Gateway `gateway`.
pub fn listener_tls(
    store: &Store,
    gateway: &ObjKey,
    tls: Option<&GatewayListenersTls>,
    now: SystemTime,
    cache: &CertificateCache,
) -> Result<ListenerTls, Unsupported> {
    let Some(tls) = tls else {
        return Err(Unsupported(
            cond::UNSUPPORTED_VALUE,
            "an HTTPS listener needs tls.certificateRefs".into(),
        ));
    };
    if tls.mode == Some(GatewayListenersTlsMode::Passthrough) {
        return Err(Unsupported(
            cond::UNSUPPORTED_VALUE,
            "tls.mode Passthrough is not served: Gatehouse terminates TLS (mode Terminate) on HTTPS listeners"
                .into(),
        ));
    }
    if let Some(options) = tls.options.as_ref().filter(|o| !o.is_empty()) {
        let names: Vec<&str> = options.keys().map(String::as_str).collect();
        return Err(Unsupported(
            cond::UNSUPPORTED_VALUE,
            format!(
                "tls.options {} are not supported; Gatehouse reads no TLS options",
                names.join(", ")
            ),
        ));
    }
    let mut out = ListenerTls::default();
    for r in tls.certificate_refs.iter().flatten() {
        let found = gateway_ref(
            store,
            gateway,
            Ref {
                group: r.group.as_deref().unwrap_or(""),
                kind: r.kind.as_deref().unwrap_or("Secret"),
                namespace: r.namespace.as_deref(),
                name: &r.name,
                field: "certificateRef",
            },
            "Secret",
            cond::INVALID_CERTIFICATE_REF,
        )
        .and_then(|key| certificate_of(store, &key, now, cache, cond::INVALID_CERTIFICATE_REF));
        match found {
            Ok(c) => out.certificates.push(c),
            Err(e) => {
                out.problem.get_or_insert(e);
            }
        }
    }
    Ok(out)
}

/// The client certificate a Gateway presents to TLS backends (`spec.tls.backend
/// .clientCertificateRef`), or why it cannot (`InvalidClientCertificateRef`, `RefNotPermitted`).
pub fn backend_client(
    store: &Store,
    gateway: &ObjKey,
    r: &gateway_api::apis::standard::gateways::GatewayTlsBackendClientCertificateRef,
    now: SystemTime,
    cache: &CertificateCache,
) -> Result<Arc<Certificate>, RefError> {
    let key = gateway_ref(
        store,
        gateway,
        Ref {
            group: r.group.as_deref().unwrap_or(""),
            kind: r.kind.as_deref().unwrap_or("Secret"),
            namespace: r.namespace.as_deref(),
            name: &r.name,
            field: "clientCertificateRef",
        },
        "Secret",
        cond::INVALID_CLIENT_CERTIFICATE_REF,
    )?;
    certificate_of(
        store,
        &key,
        now,
        cache,
        cond::INVALID_CLIENT_CERTIFICATE_REF,
    )
}

/// A reference a Gateway makes to a core object (Secret, ConfigMap).
struct Ref<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
    /// The field, for messages.
    field: &'static str,
}

/// The key `r` names when it is a core `want` in the Gateway's namespace or one whose
/// ReferenceGrant allows it; else why not (`wrong_kind` for another kind).
fn gateway_ref(
    store: &Store,
    gateway: &ObjKey,
    r: Ref<'_>,
    want: &str,
    wrong_kind: &'static str,
) -> Result<ObjKey, RefError> {
    let key = ObjKey::new(r.namespace.unwrap_or(&gateway.namespace), r.name);
    if !r.group.is_empty() || r.kind != want {
        return Err(RefError::new(
            wrong_kind,
            format!(
                "{} {}/{} {key}: only core {want}s are read here",
                r.field, r.group, r.kind
            ),
        ));
    }
    let from = refs::From {
        group: "gateway.networking.k8s.io",
        kind: "Gateway",
        namespace: &gateway.namespace,
    };
    if !refs::permitted(store, &from, "", want, &key) {
        return Err(RefError::new(
            cond::REF_NOT_PERMITTED,
            format!(
                "{want} {key} is in another namespace and no ReferenceGrant there allows this Gateway's reference"
            ),
        ));
    }
    Ok(key)
}

/// The certificate of the Secret `key`, or why not (`invalid`).
fn certificate_of(
    store: &Store,
    key: &ObjKey,
    now: SystemTime,
    cache: &CertificateCache,
    invalid: &'static str,
) -> Result<Arc<Certificate>, RefError> {
    let secret = store.secrets.get(key).ok_or_else(|| {
        RefError::new(
            invalid,
            format!("Secret {key} does not exist (or is not of type {TLS_SECRET_TYPE})"),
        )
    })?;
    cache
        .certificate(key, secret, now)
        .map_err(|why| RefError::new(invalid, format!("Secret {key}: {why}")))
}

/// The certificate a `kubernetes.io/tls` Secret holds, checked as Envoy checks it.
pub fn certificate(key: &ObjKey, secret: &Secret, now: SystemTime) -> Result<Certificate, String> {
    let (certificate, validity) = parse(key, secret)?;
    validity.check(now)?;
    Ok(certificate)
}

/// When the leaf certificate is valid, in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Validity {
    not_before: i64,
    not_after: i64,
}

impl Validity {
    fn check(self, now: SystemTime) -> Result<(), String> {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let at = |t: i64| {
            x509_parser::time::ASN1Time::from_timestamp(t)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| t.to_string())
        };
        if secs > self.not_after {
            return Err(format!("the certificate expired at {}", at(self.not_after)));
        }
        if secs < self.not_before {
            return Err(format!(
                "the certificate is not valid before {}",
                at(self.not_before)
            ));
        }
        Ok(())
    }
}

/// Everything about a Secret's certificate that does not depend on the time.
fn parse(key: &ObjKey, secret: &Secret) -> Result<(Certificate, Validity), String> {
    let ty = secret.type_.as_deref().unwrap_or("Opaque");
    if ty != TLS_SECRET_TYPE {
        return Err(format!(
            "has type {ty}; certificates come from {TLS_SECRET_TYPE} Secrets"
        ));
    }
    let crt = field(secret, "tls.crt")?;
    let key_bytes = field(secret, "tls.key")?;
    let blocks = pem::parse_many(&crt).map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    let chain: Vec<pem::Pem> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .collect();
    let Some(leaf) = chain.first() else {
        return Err("tls.crt holds no CERTIFICATE block".into());
    };
    for (i, block) in chain.iter().enumerate() {
        X509Certificate::from_der(block.contents())
            .map_err(|e| format!("certificate {i} of tls.crt does not parse: {e}"))?;
    }
    let (_, leaf_cert) = X509Certificate::from_der(leaf.contents())
        .map_err(|e| format!("tls.crt does not parse: {e}"))?;
    let validity = Validity {
        not_before: leaf_cert.validity().not_before.timestamp(),
        not_after: leaf_cert.validity().not_after.timestamp(),
    };
    let key_pem = private_key(&key_bytes)?;
    let key_type = check_key(&leaf_cert, leaf, &key_pem)?;
    let certificate = Certificate {
        secret: key.clone(),
        chain_pem: pem::encode_many_config(&chain, lf()),
        key: PrivateKey::new(pem::encode_config(&key_pem, lf())),
        key_type,
    };
    Ok((certificate, validity))
}

/// Certificates parsed by earlier builds, by Secret. Parsing and matching a key costs ~0.1 ms,
/// and every change to a kind other than HTTPRoute rebuilds every Gateway: without it, one
/// rotation among 1,000 certificates would parse all 1,000 again. An entry is used only for
/// an identical Secret; the validity window is checked against the time of each build.
#[derive(Default)]
pub struct CertificateCache {
    /// (this build's entries, the previous build's): an entry not used by a build is dropped
    /// at the end of the next, so deleted Secrets do not stay.
    entries: std::sync::Mutex<(CacheMap, CacheMap)>,
}

type CacheMap = std::collections::HashMap<ObjKey, CacheEntry>;
type CacheEntry = (Secret, Result<(Arc<Certificate>, Validity), String>);

/// Secrets hold keys: a cache shows only how many it holds.
impl std::fmt::Debug for CertificateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self
            .entries
            .lock()
            .map(|e| e.0.len() + e.1.len())
            .unwrap_or(0);
        f.debug_struct("CertificateCache")
            .field("held", &held)
            .finish()
    }
}

impl CertificateCache {
    /// [`certificate`] of `secret`, parsed once per content.
    pub(super) fn certificate(
        &self,
        key: &ObjKey,
        secret: &Secret,
        now: SystemTime,
    ) -> Result<Arc<Certificate>, String> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (current, previous) = &mut *guard;
        let hit = current
            .get(key)
            .or_else(|| previous.get(key))
            .filter(|(seen, _)| seen == secret)
            .map(|(_, result)| result.clone());
        let result = hit.unwrap_or_else(|| parse(key, secret).map(|(c, v)| (Arc::new(c), v)));
        current.insert(key.clone(), (secret.clone(), result.clone()));
        let (certificate, validity) = result?;
        validity.check(now)?;
        Ok(certificate)
    }

    /// Starts a build: entries the last build did not use are dropped.
    pub fn next_build(&self) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (current, previous) = &mut *guard;
        *previous = std::mem::take(current);
    }
}

fn lf() -> pem::EncodeConfig {
    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF)
}

/// `data[name]`, or `stringData[name]` in a manifest the API server has not merged yet.
fn field(secret: &Secret, name: &str) -> Result<Vec<u8>, String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(name))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(name))
                .map(|s| s.as_bytes().to_vec())
        })
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("has no {name}"))
}

/// The one private key block of `tls.key`.
fn private_key(bytes: &[u8]) -> Result<pem::Pem, String> {
    // Not the parser's message: it could quote the key.
    let blocks = pem::parse_many(bytes).map_err(|_| "tls.key is not PEM".to_string())?;
    let mut keys = blocks
        .into_iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"));
    match (keys.next(), keys.next()) {
        (Some(k), None) => Ok(k),
        (None, _) => Err("tls.key holds no PRIVATE KEY block".into()),
        (Some(_), Some(_)) => Err("tls.key holds more than one private key".into()),
    }
}

/// Checks that the key is one Envoy serves and that it belongs to the leaf certificate.
fn check_key(
    leaf: &X509Certificate<'_>,
    leaf_pem: &pem::Pem,
    key: &pem::Pem,
) -> Result<KeyType, String> {
    let der: PrivateKeyDer<'static> = match key.tag() {
        "PRIVATE KEY" => PrivatePkcs8KeyDer::from(key.contents().to_vec()).into(),
        "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(key.contents().to_vec()).into(),
        "EC PRIVATE KEY" => PrivateSec1KeyDer::from(key.contents().to_vec()).into(),
        other => return Err(format!("tls.key is a {other}, which Envoy does not load")),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|_| {
        "tls.key is not an RSA (2048 bits or more) or ECDSA P-256/P-384 private key".to_string()
    })?;
    let key_type = match signing.algorithm() {
        rustls::SignatureAlgorithm::RSA => KeyType::Rsa,
        rustls::SignatureAlgorithm::ECDSA => KeyType::Ecdsa,
        other => {
            return Err(format!(
                "tls.key is an {other:?} key; Envoy serves RSA and ECDSA certificates only"
            ));
        }
    };
    if key_type == KeyType::Rsa {
        let bits = match leaf.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa.key_size(),
            _ => 0,
        };
        if bits < 2048 {
            return Err(format!(
                "the certificate's RSA key has {bits} bits; Envoy requires 2048 or more"
            ));
        }
    }
    let certified = rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(leaf_pem.contents().to_vec())],
        signing,
    );
    certified
        .keys_match()
        .map_err(|_| "tls.key is not the key of the first certificate in tls.crt".to_string())?;
    Ok(key_type)
}
