//! `gatehouse-ext-authz`: demo Envoy external authorization server.
//!
//! Serves the Envoy gRPC protocol (`envoy.service.auth.v3.Authorization/Check`,
//! HTTP/2 cleartext) and the raw HTTP protocol (`http_service`) with the
//! behaviour of the Istio ext-authz sample. See `--help`.

mod decision;
mod grpc;
mod http;

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing_subscriber::EnvFilter;

use crate::decision::{Decision, Protocol};

/// How long in-flight checks may take to finish after SIGTERM/ctrl-c.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Demo Envoy ext_authz server speaking both the gRPC and the raw HTTP protocol.
///
/// A check is allowed iff the request carries the header `x-ext-authz: allow`
/// (name case-insensitive, value exactly `allow`, exactly once).
///
/// Every answer sets: x-ext-authz-check-result (allowed|denied),
/// x-ext-authz-check-received (summary of the request),
/// x-ext-authz-additional-header-override (grpc-/http-additional-header-override-value),
/// x-ext-authz-provider (--name), x-ext-authz-body-bytes (request body length) and,
/// for gRPC with context extensions, x-ext-authz-context (k=v;k=v sorted by key).
/// Allowed: gRPC OkResponse headers for upstream / HTTP 200. Denied: gRPC
/// PERMISSION_DENIED with a 403 DeniedResponse / HTTP 403, body
/// "denied by ext_authz for not found header `x-ext-authz: allow` in the request".
///
/// Test hooks (request headers): `x-ext-authz-delay-ms: N` waits N ms (max 60000)
/// before answering; `x-ext-authz-redirect: URL` denies with 302 and `location: URL`;
/// `x-ext-authz-answer-host: H` adds `host: H` to the answer.
///
/// Prints `listening grpc=ADDR http=ADDR` on stdout once bound (`off` for a
/// disabled listener; port 0 shows the chosen port). Logs go to stderr
/// (RUST_LOG, default info). Exits 0 on SIGTERM/ctrl-c, 1 on errors such as a
/// failed bind.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-ext-authz", version, verbatim_doc_comment)]
struct Cli {
    /// gRPC (h2c) listen address as IP:PORT, or `off` to disable.
    #[arg(long, value_name = "IP:PORT|off", default_value = "127.0.0.1:9000")]
    grpc_addr: Listen,

    /// Raw HTTP (HTTP/1.1 and h2c) listen address as IP:PORT, or `off` to disable.
    #[arg(long, value_name = "IP:PORT|off", default_value = "127.0.0.1:8000")]
    http_addr: Listen,

    /// Serve gRPC over TLS (h2, TLS only) with this PEM certificate chain; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// With --tls-cert: require clients (Envoy) to present a certificate this PEM CA signed.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// Provider name, sent back in `x-ext-authz-provider` on every answer.
    #[arg(long, value_name = "NAME", default_value = "ext-authz",
          value_parser = decision::validate_provider_name)]
    name: String,
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    Off,
    Addr(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse()
            .map(Listen::Addr)
            .map_err(|_| format!("expected IP:PORT (e.g. 127.0.0.1:9000) or `off`, got {s:?}"))
    }
}

/// Displays the bound address of an optional listener, or `off`.
struct Bound(Option<SocketAddr>);

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("off"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the context chain on one line, without a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.grpc_addr == Listen::Off && cli.http_addr == Listen::Off {
        bail!("both --grpc-addr and --http-addr are off; nothing to serve");
    }
    // Register signal handlers before binding so a SIGTERM right after the
    // "listening" line is never missed.
    let mut sigterm =
        signal(SignalKind::terminate()).context("failed to install SIGTERM handler")?;

    let grpc_listener = bind(cli.grpc_addr, "gRPC").await?;
    let http_listener = bind(cli.http_addr, "HTTP").await?;
    let grpc_bound = Bound(local_addr(grpc_listener.as_ref())?);
    let http_bound = Bound(local_addr(http_listener.as_ref())?);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut servers = JoinSet::new();
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(grpc::Tls {
            cert: std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            key: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
            client_ca: match &cli.tls_client_ca {
                Some(ca) => {
                    Some(std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?)
                }
                None => None,
            },
        }),
        _ => None,
    };
    if let Some(listener) = grpc_listener {
        servers.spawn(grpc::serve(
            listener,
            cli.name.clone(),
            tls,
            shutdown_signal(shutdown_rx.clone()),
        ));
    }
    if let Some(listener) = http_listener {
        servers.spawn(http::serve(
            listener,
            cli.name.clone(),
            shutdown_signal(shutdown_rx.clone()),
        ));
    }

    tracing::info!(grpc = %grpc_bound, http = %http_bound, provider = %cli.name, "ext_authz server ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening grpc={grpc_bound} http={http_bound}")
        .and_then(|()| stdout.flush())
        .context("failed to write to stdout")?;
    drop(stdout);

    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c received, shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
        Some(result) = servers.join_next() => {
            result.context("server task panicked")??;
            bail!("a server stopped unexpectedly");
        }
    }

    // Ignore the error: it only means every server already stopped.
    let _ = shutdown_tx.send(true);
    let drain = async {
        while let Some(result) = servers.join_next().await {
            result.context("server task panicked")??;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(SHUTDOWN_GRACE, drain).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            grace = ?SHUTDOWN_GRACE,
            "in-flight requests did not finish in time; exiting anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn bind(listen: Listen, what: &str) -> anyhow::Result<Option<TcpListener>> {
    match listen {
        Listen::Off => Ok(None),
        Listen::Addr(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .with_context(|| format!("failed to bind {what} listener on {addr}")),
    }
}

fn local_addr(listener: Option<&TcpListener>) -> anyhow::Result<Option<SocketAddr>> {
    listener
        .map(|l| l.local_addr().context("failed to read bound address"))
        .transpose()
}

/// Resolves once shutdown is requested (or the sender is gone).
async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    // An error means the sender was dropped, which also means "stop".
    let _ = rx.wait_for(|stop| *stop).await;
}

/// One log line per check, in the spirit of the Istio sample.
pub(crate) fn log_decision(protocol: Protocol, decision: &Decision) {
    let result = if decision.allowed() {
        "allowed"
    } else {
        "denied"
    };
    tracing::info!(
        protocol = protocol.label(),
        result,
        status = decision.http_status(),
        delay = ?decision.delay,
        "{}",
        decision.summary
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_parsing() {
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!("OFF".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!(
            "127.0.0.1:9000".parse::<Listen>(),
            Ok(Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 9000))))
        );
        assert!("[::1]:0".parse::<Listen>().is_ok());
        assert!("localhost:9000".parse::<Listen>().is_err());
        assert!("".parse::<Listen>().is_err());
    }

    #[test]
    fn cli_defaults_and_validation() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults parse");
        assert_eq!(cli.grpc_addr, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(cli.http_addr, "127.0.0.1:8000".parse().expect("addr"));
        assert_eq!(cli.name, "ext-authz");
        assert!(Cli::try_parse_from(["x", "--name", "bad name\n"]).is_err());
        assert!(Cli::try_parse_from(["x", "--grpc-addr", "nope"]).is_err());
        let cli =
            Cli::try_parse_from(["x", "--http-addr", "off", "--name", "p2"]).expect("off parses");
        assert_eq!(cli.http_addr, Listen::Off);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
