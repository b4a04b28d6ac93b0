//! The controller's xDS server certificate: issued at start from the CA, and issued again
//! before it expires — new connections get the new one, open streams keep theirs
//! ([`TlsReloader`]), so a renewal never disconnects a proxy and never needs a restart.

use std::sync::Arc;

use anyhow::Context;
use gatehouse::pki::Ca;
use gatehouse_xds::{TlsOptions, TlsReloader};
use time::{Duration, OffsetDateTime};

/// Renewed once less than this share of its lifetime is left (a third: 4 months of a year).
const RENEW_AT_REMAINING: f64 = 1.0 / 3.0;
/// A failed renewal is tried again this soon.
const RETRY: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest sleep between checks, so that a suspended host or a clock step is noticed.
const CHECK_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(3600);

/// What issues the server certificate.
pub(super) struct ServerCertificate {
    pub ca: Arc<Ca>,
    pub names: Vec<String>,
    pub validity: Duration,
}

impl ServerCertificate {
    /// A certificate valid from `now`, as TLS settings, and when it expires.
    pub fn issue(&self, now: OffsetDateTime) -> anyhow::Result<(TlsOptions, OffsetDateTime)> {
        let issued = self
            .ca
            .issue_server_for(&self.names, now, self.validity)
            .context("issuing the xDS server certificate")?;
        let tls = TlsOptions {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            client_ca_pem: Some(self.ca.pem().cert_pem.clone()),
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
    cert: ServerCertificate,
    reloader: TlsReloader,
    mut not_after: OffsetDateTime,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let now = OffsetDateTime::now_utc();
        let due = cert.renew_at(not_after);
        let wait = (due - now)
            .try_into()
            .unwrap_or(std::time::Duration::ZERO)
            .min(CHECK_AT_LEAST);
        if !wait.is_zero() {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => continue,
            }
        }
        match cert
            .issue(now)
            .and_then(|(tls, expires)| Ok((reloader.update(&tls)?, expires)))
        {
            Ok(((), expires)) => {
                tracing::info!(expires = %expires, "renewed the xDS server certificate; new connections get it");
                not_after = expires;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewed_with_a_third_of_its_life_left() {
        let now = OffsetDateTime::now_utc();
        let cert = ServerCertificate {
            ca: Arc::new(Ca::generate(now).expect("CA")),
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
