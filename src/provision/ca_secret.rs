//! Where the xDS CA lives: a Secret in the controller's namespace, created by whichever replica
//! gets there first and read by all — and rotated in three steps without dropping a proxy.
//!
//! Keys: `ca.crt`/`ca.key`, the CA that signs; during a rotation `next.crt`/`next.key`, the CA
//! that will sign; afterwards `trust.crt`, CAs still trusted but no longer signing. Everything
//! Gatehouse trusts — to admit a proxy and, in each proxy's Secret, to check the server — is
//! the bundle of all three. The steps ([`Step`]): `begin` adds the next CA to the bundle (the
//! proxies roll onto it); `promote` makes it sign (server and proxy certificates are issued
//! again; both sides already trust it) and keeps the old one in `trust.crt`; `finish` drops
//! the old one. Each step waits for the proxies to have rolled before the next (docs/operations.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use time::OffsetDateTime;

use super::ProvisionError;
use crate::pki::Ca;

const CERT: &str = "ca.crt";
const KEY: &str = "ca.key";
const NEXT_CERT: &str = "next.crt";
const NEXT_KEY: &str = "next.key";
const TRUST: &str = "trust.crt";

/// The CA that signs and every CA certificate trusted, as read from the Secret.
pub struct CaState {
    pub signer: Ca,
    /// PEM bundle: the signer's certificate, then the next CA's and the still-trusted ones.
    pub bundle: String,
}

impl CaState {
    /// The rotation step the Secret is at, for logs and the CLI.
    pub fn describe(&self) -> String {
        let n = self.bundle.matches("BEGIN CERTIFICATE").count();
        format!("signing CA plus {} more trusted", n.saturating_sub(1))
    }
}

impl std::fmt::Debug for CaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaState")
            .field("bundle", &self.bundle)
            .finish_non_exhaustive()
    }
}

/// A rotation step (`gatehouse ca rotate STEP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// Create the next CA and trust it alongside the current one.
    Begin,
    /// Sign with the next CA; the old one stays trusted.
    Promote,
    /// Stop trusting the old CA.
    Finish,
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| !s.trim().is_empty())
}

fn with_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

/// What the Secret holds; `None` when it lacks the signing CA.
pub fn from_secret(secret: &Secret) -> Option<Result<CaState, ProvisionError>> {
    let data = secret.data.as_ref()?;
    let (cert, key) = (text(data, CERT)?, text(data, KEY)?);
    let signer = match Ca::from_pem(&cert, &key) {
        Ok(ca) => ca,
        Err(e) => return Some(Err(e.into())),
    };
    let mut bundle = with_newline(&cert);
    for extra in [text(data, NEXT_CERT), text(data, TRUST)]
        .into_iter()
        .flatten()
    {
        bundle.push_str(&with_newline(&extra));
    }
    Some(Ok(CaState { signer, bundle }))
}

fn missing(namespace: &str, name: &str) -> ProvisionError {
    ProvisionError::Parameters(format!(
        "Secret {namespace}/{name} exists but lacks {CERT} and {KEY}"
    ))
}

/// The CA stored in `namespace/name`, created when absent. A Secret that exists but holds no
/// usable CA is an error, not something to overwrite: proxies may trust it.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<CaState, ProvisionError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..3 {
        if let Some(secret) = api.get_opt(name).await? {
            return from_secret(&secret).unwrap_or_else(|| Err(missing(namespace, name)));
        }
        let ca = Ca::generate(OffsetDateTime::now_utc())?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    super::MANAGED_BY.to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                (CERT.to_string(), bytes(&ca.pem().cert_pem)),
                (KEY.to_string(), bytes(&ca.pem().key_pem)),
            ])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %format!("{namespace}/{name}"), "created the xDS CA");
                let bundle = with_newline(&ca.pem().cert_pem);
                return Ok(CaState { signer: ca, bundle });
            }
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProvisionError::Parameters(format!(
        "Secret {namespace}/{name}: lost the creation race three times"
    )))
}

/// The CA as stored now (for replicas following a rotation).
pub async fn load(client: &Client, namespace: &str, name: &str) -> Result<CaState, ProvisionError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get(name).await?;
    from_secret(&secret).unwrap_or_else(|| Err(missing(namespace, name)))
}

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

/// The Secret's data after `step`, or why the step does not apply now.
pub fn rotated(
    data: &BTreeMap<String, ByteString>,
    step: Step,
    now: OffsetDateTime,
) -> Result<BTreeMap<String, ByteString>, ProvisionError> {
    let refuse = |why: &str| Err(ProvisionError::Parameters(why.to_string()));
    let mut next = data.clone();
    let has = |k: &str| text(data, k).is_some();
    if !has(CERT) || !has(KEY) {
        return refuse("the Secret holds no CA to rotate");
    }
    match step {
        Step::Begin => {
            if has(NEXT_CERT) {
                return refuse(
                    "a rotation is under way: promote it, or remove next.crt/next.key to abandon it",
                );
            }
            if has(TRUST) {
                return refuse("the previous rotation is not finished: run `finish` first");
            }
            let ca = Ca::generate(now)?;
            next.insert(NEXT_CERT.into(), bytes(&ca.pem().cert_pem));
            next.insert(NEXT_KEY.into(), bytes(&ca.pem().key_pem));
        }
        Step::Promote => {
            let (Some(cert), Some(key)) = (text(data, NEXT_CERT), text(data, NEXT_KEY)) else {
                return refuse("no next CA: run `begin` first");
            };
            Ca::from_pem(&cert, &key)?;
            let old = text(data, CERT).unwrap_or_default();
            next.insert(TRUST.into(), bytes(&old));
            next.insert(CERT.into(), bytes(&cert));
            next.insert(KEY.into(), bytes(&key));
            next.remove(NEXT_CERT);
            next.remove(NEXT_KEY);
        }
        Step::Finish => {
            if has(NEXT_CERT) {
                return refuse("the next CA is not promoted yet: run `promote` first");
            }
            if next.remove(TRUST).is_none() {
                return refuse("nothing to finish: no previous CA is trusted");
            }
        }
    }
    Ok(next)
}

/// Applies `step` to the Secret (with its resourceVersion: a concurrent change fails it).
pub async fn rotate(
    client: &Client,
    namespace: &str,
    name: &str,
    step: Step,
) -> Result<Arc<CaState>, ProvisionError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secret = api.get(name).await?;
    let data = secret.data.clone().unwrap_or_default();
    secret.data = Some(rotated(&data, step, OffsetDateTime::now_utc())?);
    let written = api.replace(name, &PostParams::default(), &secret).await?;
    let state = from_secret(&written).unwrap_or_else(|| Err(missing(namespace, name)))?;
    Ok(Arc::new(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: BTreeMap<String, ByteString>) -> Secret {
        Secret {
            data: Some(data),
            ..Default::default()
        }
    }

    fn count(state: &CaState) -> usize {
        state.bundle.matches("BEGIN CERTIFICATE").count()
    }

    #[test]
    fn a_rotation_trusts_both_then_signs_with_the_new_then_drops_the_old() {
        let now = OffsetDateTime::now_utc();
        let first = Ca::generate(now).unwrap();
        let data = BTreeMap::from([
            (CERT.to_string(), bytes(&first.pem().cert_pem)),
            (KEY.to_string(), bytes(&first.pem().key_pem)),
        ]);
        let start = from_secret(&secret(data.clone())).unwrap().unwrap();
        assert_eq!(count(&start), 1);

        let begun = rotated(&data, Step::Begin, now).unwrap();
        let s = from_secret(&secret(begun.clone())).unwrap().unwrap();
        assert_eq!(count(&s), 2, "both trusted");
        assert_eq!(
            s.signer.pem().cert_pem,
            first.pem().cert_pem,
            "still signed by the old"
        );
        assert!(
            rotated(&begun, Step::Begin, now).is_err(),
            "one rotation at a time"
        );
        assert!(
            rotated(&begun, Step::Finish, now).is_err(),
            "promote comes first"
        );

        let promoted = rotated(&begun, Step::Promote, now).unwrap();
        let s = from_secret(&secret(promoted.clone())).unwrap().unwrap();
        assert_eq!(count(&s), 2, "both still trusted");
        assert_eq!(
            text(&promoted, CERT),
            text(&begun, NEXT_CERT),
            "the new one signs"
        );
        assert!(
            s.bundle.contains(&first.pem().cert_pem),
            "the old one is trusted"
        );
        assert!(rotated(&promoted, Step::Promote, now).is_err());
        assert!(
            rotated(&promoted, Step::Begin, now).is_err(),
            "finish comes first"
        );

        let finished = rotated(&promoted, Step::Finish, now).unwrap();
        let s = from_secret(&secret(finished.clone())).unwrap().unwrap();
        assert_eq!(count(&s), 1);
        assert!(!s.bundle.contains(&first.pem().cert_pem));
        assert!(rotated(&finished, Step::Finish, now).is_err());
    }
}
