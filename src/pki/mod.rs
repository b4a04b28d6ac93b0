//! The certificates of authenticated xDS: a CA the controller keeps in a Secret, a server
//! certificate per controller replica, and one client certificate per Gateway whose URI SAN
//! names that Gateway. The TLS layer checks the chain; [`gateway_of_cert`] reads the name.
//!
//! Hand-written on top of `rcgen` (issuing) and `x509-parser` (reading): no crate offers "a
//! tiny CA for one purpose", and the whole policy fits in this file.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::store::ObjKey;

/// The URI SAN prefix of a Gateway identity: `spiffe://gatehouse.dev/ns/NS/gateway/NAME`.
pub const IDENTITY_PREFIX: &str = "spiffe://gatehouse.dev/ns/";
/// How long a CA is valid.
const CA_VALIDITY: Duration = Duration::days(10 * 365);
/// How long a server or proxy certificate is valid.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// A leaf with less than this left is re-issued.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot issue certificate: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("cannot parse certificate: {0}")]
    Parse(String),
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The signing CA.
pub struct Ca {
    pem: Issued,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// The identity SAN of `gateway`.
pub fn identity(gateway: &ObjKey) -> String {
    format!(
        "{IDENTITY_PREFIX}{}/gateway/{}",
        gateway.namespace, gateway.name
    )
}

fn parse_identity(uri: &str) -> Option<ObjKey> {
    let rest = uri.strip_prefix(IDENTITY_PREFIX)?;
    let (ns, name) = rest.split_once("/gateway/")?;
    let valid = |s: &str| !s.is_empty() && !s.contains('/');
    (valid(ns) && valid(name)).then(|| ObjKey::new(ns, name))
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, length: Duration) {
    // A little backdating absorbs clock skew between the controller and the proxies.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + length;
}

impl Ca {
    /// A new self-signed CA.
    pub fn generate(now: OffsetDateTime) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "gatehouse xDS CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, now, CA_VALIDITY);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let pem = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Ca {
            pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA stored earlier (e.g. in a Secret).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            pem: Issued {
                cert_pem: cert_pem.into(),
                key_pem: key_pem.into(),
            },
            issuer,
        })
    }

    pub fn pem(&self) -> &Issued {
        &self.pem
    }

    fn issue(
        &self,
        params: CertificateParams,
        usage: ExtendedKeyUsagePurpose,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        self.issue_for(params, usage, now, LEAF_VALIDITY)
    }

    fn issue_for(
        &self,
        mut params: CertificateParams,
        usage: ExtendedKeyUsagePurpose,
        now: OffsetDateTime,
        length: Duration,
    ) -> Result<Issued, PkiError> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, now, length);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The xDS server's certificate, valid for `dns_names` (and 127.0.0.1, for local runs).
    pub fn issue_server(
        &self,
        dns_names: &[String],
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        self.issue_server_for(dns_names, now, LEAF_VALIDITY)
    }

    /// [`Ca::issue_server`] valid for `length` from `now`.
    pub fn issue_server_for(
        &self,
        dns_names: &[String],
        now: OffsetDateTime,
        length: Duration,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "gatehouse xDS server");
        self.issue_for(params, ExtendedKeyUsagePurpose::ServerAuth, now, length)
    }

    /// The client certificate of the proxies of `gateway`.
    pub fn issue_proxy(&self, gateway: &ObjKey, now: OffsetDateTime) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(identity(gateway).try_into()?)];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("gateway {gateway}"));
        self.issue(params, ExtendedKeyUsagePurpose::ClientAuth, now)
    }

    /// True when `cert_pem` was signed by this CA, names `gateway`, and has more than
    /// [`RENEW_BEFORE`] left — i.e. it can be kept instead of re-issued.
    pub fn proxy_cert_current(
        &self,
        cert_pem: &str,
        gateway: &ObjKey,
        now: OffsetDateTime,
    ) -> bool {
        let Ok(der) = pem_to_der(cert_pem) else {
            return false;
        };
        let Ok(ca_der) = pem_to_der(&self.pem.cert_pem) else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca_der) else {
            return false;
        };
        let signed = cert.verify_signature(Some(ca.public_key())).is_ok();
        let not_after = cert.validity().not_after.timestamp();
        signed
            && gateway_of_cert(&der).as_ref() == Some(gateway)
            && not_after > (now + RENEW_BEFORE).unix_timestamp()
    }
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    Ok(block.contents)
}

/// The Gateway a (chain-verified) client certificate names, from its URI SAN.
pub fn gateway_of_cert(der: &[u8]) -> Option<ObjKey> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => parse_identity(uri),
        _ => None,
    });
    let first = found.next()?;
    // Two identities in one certificate is not something this CA issues: trust neither.
    found.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests;
