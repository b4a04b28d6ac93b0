//! The controller's xDS server certificate: issued at start from the CA, and issued again
//! before it expires or when the CA Secret changes (a rotation step) — new connections get
//! the new certificate and trust bundle, open streams keep theirs ([`TlsReloader`]), so
//! neither a renewal nor a CA rotation disconnects a proxy or needs a restart.

use std::sync::Arc;

use anyhow::Context;
use gatehouse::provision::ca_secret::{self, CaState};
use gatehouse_xds::{TlsOptions, TlsReloader};
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

/// Renewed once less than this share of its lifetime is left (a third: 4 months of a year).
const RENEW_AT_REMAINING: f64 = 1.0 / 3.0;
/// A failed renewal is tried again this soon.
const RETRY: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest sleep between checks, so that a suspended host or a clock step is noticed.
const CHECK_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(3600);
/// How often every replica reads the CA Secret (a rotation step reaches all of them, not only
/// the leader, since every replica serves xDS).
pub(super) const CA_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// What issues the server certificate.
pub(super) struct ServerCertificate {
    /// The CA Secret as last read.
    pub ca: watch::Receiver<Arc<CaState>>,
    pub names: Vec<String>,
    pub validity: Duration,
}

impl ServerCertificate {
    /// A certificate valid from `now`, as TLS settings, and when it expires.
    pub fn issue(&self, now: OffsetDateTime) -> anyhow::Result<(TlsOptions, OffsetDateTime)> {
        let ca = self.ca.borrow().clone();
        let issued = ca
            .signer
            .issue_server_for(&self.names, now, self.validity)
            .context("issuing the xDS server certificate")?;
        let tls = TlsOptions {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            client_ca_pem: Some(ca.bundle.clone()),
        };
        Ok((tls, now + self.validity))
    }

    /// When a certificate expiring at `not_after` is renewed.
    pub fn renew_at(&self, not_after: OffsetDateTime) -> OffsetDateTime {
        not_after - self.validity * RENEW_AT_REMAINING
    }
}

/// Renews the certificate `reloader` serves (which expires at `not_after`) for as long as the
/// controller runs.
pub(super) async fn renew(
    mut cert: ServerCertificate,
    reloader: TlsReloader,
    mut not_after: OffsetDateTime,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    cert.ca.borrow_and_update();
    // A CA change not yet served: retried until it is, not left for the next renewal.
    let mut ca_changed = false;
    loop {
        let now = OffsetDateTime::now_utc();
        let due = cert.renew_at(not_after);
        let wait = if ca_changed {
            std::time::Duration::ZERO
        } else {
            (due - now)
                .try_into()
                .unwrap_or(std::time::Duration::ZERO)
                .min(CHECK_AT_LEAST)
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => continue,
                changed = cert.ca.changed() => {
                    if changed.is_err() { return }
                    tracing::info!("the xDS CA changed; issuing the server certificate from it");
                    ca_changed = true;
                }
            }
        }
        let now = OffsetDateTime::now_utc();
        match cert
            .issue(now)
            .and_then(|(tls, expires)| Ok((reloader.update(&tls)?, expires)))
        {
            Ok(((), expires)) => {
                tracing::info!(expires = %expires, "renewed the xDS server certificate; new connections get it");
                not_after = expires;
                ca_changed = false;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), expires = %not_after, "renewing the xDS server certificate failed; retrying");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

/// Reads the CA Secret every [`CA_POLL`] and publishes it when the signer or the bundle
/// changed; a Secret that cannot be read or parsed keeps the CA in force (logged).
pub(super) async fn follow_ca(
    client: kube::Client,
    namespace: String,
    name: String,
    ca: watch::Sender<Arc<CaState>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(CA_POLL) => {}
        }
        match ca_secret::load(&client, &namespace, &name).await {
            Ok(next) => {
                let same = {
                    let current = ca.borrow();
                    current.bundle == next.bundle
                        && current.signer.pem().cert_pem == next.signer.pem().cert_pem
                };
                if !same {
                    tracing::info!(secret = %format!("{namespace}/{name}"), ca = %next.describe(), "the xDS CA Secret changed");
                    ca.send_replace(Arc::new(next));
                }
            }
            Err(e) => {
                tracing::warn!(secret = %format!("{namespace}/{name}"), error = %e, "reading the xDS CA Secret failed; the CA in force stays")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewed_with_a_third_of_its_life_left() {
        let now = OffsetDateTime::now_utc();
        let cert = ServerCertificate {
            ca: watch::channel(Arc::new(CaState {
                signer: gatehouse::pki::Ca::generate(now).expect("CA"),
                bundle: String::new(),
            }))
            .1,
            names: vec!["gatehouse.ns.svc".into()],
            validity: Duration::days(365),
        };
        let (tls, not_after) = cert.issue(now).expect("issued");
        assert!(tls.cert_pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(not_after, now + Duration::days(365));
        let at = cert.renew_at(not_after);
        assert!(
            at > now + Duration::days(243) && at < now + Duration::days(244),
            "{at}"
        );
    }
}
