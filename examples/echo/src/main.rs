//! `gatehouse-echo`: demo HTTP backend that echoes the request it received.

mod echo;
mod tls;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::HeaderValue;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// How long in-flight requests may take to finish after SIGTERM/ctrl-c.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Demo HTTP echo backend, like httpbin's /headers.
///
/// Any method and path returns 200 application/json:
///   {"backend": NAME, "method": "GET", "path": "/p?q=1", "host": "...",
///    "headers": {"X-Ext-Authz-Check-Result": ["allowed"], ...}}
/// Header names are canonicalised (X-Foo-Bar), repeated headers keep every
/// value in order, and the request body is read and discarded. Responses also
/// carry `x-echo-backend: NAME`. As the Gateway API conformance echo does,
/// `?delay=1s` (or 500ms, 2m; at most 1m) delays the answer and
/// `X-Echo-Set-Header: Name:Value,Name2:Value2` sets response headers.
///
/// Serves HTTP/1.1 and HTTP/2 cleartext with prior knowledge (h2c) on the same
/// port. Prints `listening addr=ADDR` on stdout once bound (port 0 shows the
/// chosen port). Logs go to stderr (RUST_LOG, default info). Exits 0 on
/// SIGTERM/ctrl-c, 1 on errors such as a failed bind.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-echo", version, verbatim_doc_comment)]
struct Cli {
    /// Listen address as IP:PORT.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this PEM certificate chain; the body then
    /// reports the SNI in `tls.serverName`. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Backend name, reported in the body and in `x-echo-backend`.
    #[arg(long, value_name = "NAME", default_value = "echo", value_parser = parse_name)]
    name: String,
}

fn parse_name(name: &str) -> Result<String, String> {
    let printable = !name.is_empty() && name.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if printable && name.trim() == name {
        Ok(name.to_owned())
    } else {
        Err("must be non-empty printable ASCII without surrounding spaces".to_owned())
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
    let name_header = HeaderValue::from_str(&cli.name).context("invalid --name")?;
    // Register before binding so a SIGTERM right after "listening" is not missed.
    let mut sigterm =
        signal(SignalKind::terminate()).context("failed to install SIGTERM handler")?;

    let listener = TcpListener::bind(cli.addr)
        .await
        .with_context(|| format!("failed to bind HTTP listener on {}", cli.addr))?;
    let bound = listener
        .local_addr()
        .context("failed to read bound address")?;

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        // An error means the sender is gone, which also means "stop".
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    let router = echo::router(cli.name.clone(), name_header);
    let mut server = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).with_context(|| format!("reading {}", p.display()))
            };
            let acceptor = tls::acceptor(&read(cert)?, &read(key)?)?;
            tokio::spawn(tls::serve(listener, acceptor, router, shutdown))
        }
        _ => tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(anyhow::Error::from)
        }),
    };

    tracing::info!(addr = %bound, name = %cli.name, "echo backend ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening addr={bound}")
        .and_then(|()| stdout.flush())
        .context("failed to write to stdout")?;
    drop(stdout);

    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c received, shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
        result = &mut server => {
            result.context("server task panicked")?.context("HTTP server failed")?;
            anyhow::bail!("HTTP server stopped unexpectedly");
        }
    }

    // Ignore the error: it only means the server already stopped.
    let _ = stop_tx.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(result) => result
            .context("server task panicked")?
            .context("HTTP server failed")?,
        Err(_) => tracing::warn!(
            grace = ?SHUTDOWN_GRACE,
            "in-flight requests did not finish in time; exiting anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_defaults_and_validation() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults parse");
        assert_eq!(cli.addr, SocketAddr::from(([127, 0, 0, 1], 3000)));
        assert_eq!(cli.name, "echo");
        assert!(Cli::try_parse_from(["x", "--name", ""]).is_err());
        assert!(Cli::try_parse_from(["x", "--name", "a\tb"]).is_err());
        assert!(Cli::try_parse_from(["x", "--addr", "localhost"]).is_err());
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
