//! `gatehouse certificate`: a self-signed certificate for trying HTTPS listeners, as a
//! `kubernetes.io/tls` Secret manifest (like `kubectl create secret tls`, without openssl).

use std::path::PathBuf;

use anyhow::Context;
use rcgen::{CertificateParams, KeyPair};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// DNS names the certificate is for (repeat or comma-separate).
    #[arg(
        long = "hostname",
        env = "GATEHOUSE_HOSTNAME",
        required = true,
        value_delimiter = ','
    )]
    hostnames: Vec<String>,
    /// The Secret to print, NAMESPACE/NAME.
    #[arg(long, env = "GATEHOUSE_SECRET")]
    secret: String,
    /// Also write the certificate (not the key) here, for clients to trust (`curl --cacert`).
    #[arg(long = "cert-out", env = "GATEHOUSE_CERT_OUT")]
    cert_out: Option<PathBuf>,
    /// Days the certificate is valid.
    #[arg(long, env = "GATEHOUSE_DAYS", default_value_t = 30)]
    days: i64,
}

/// Prints the Secret manifest on stdout; the key goes nowhere else.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let Some((namespace, name)) = args.secret.split_once('/') else {
        anyhow::bail!("--secret must be NAMESPACE/NAME, got {:?}", args.secret);
    };
    let mut params = CertificateParams::new(args.hostnames.clone())
        .context("the hostnames are not valid DNS names")?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(args.days);
    let key = KeyPair::generate().context("generating a key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    if let Some(path) = &args.cert_out {
        std::fs::write(path, cert.pem()).with_context(|| format!("writing {}", path.display()))?;
    }
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    super::stdout(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        quoted(&cert.pem()),
        quoted(&key.serialize_pem())
    ))?;
    Ok(0)
}
