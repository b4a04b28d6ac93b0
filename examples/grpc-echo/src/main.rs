//! `gatehouse-grpc-echo`: the GrpcEcho server of Gateway API's GRPCRoute conformance tests.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gatehouse_grpc_echo::{Echo, pb};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// gRPC echo backend (h2c): `gateway_api_conformance.echo_basic.grpcecho.GrpcEcho`.
///
/// `Echo` and `EchoTwo` answer with the call's full method name, its metadata, its authority
/// and where the server runs (the flags below, or the environment variables the conformance
/// server reads); `EchoThree` answers UNIMPLEMENTED. Prints `listening addr=ADDR` on stdout once
/// bound (port 0 shows the chosen port). Exits 0 on SIGTERM/ctrl-c, 1 on errors.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-grpc-echo", version, verbatim_doc_comment)]
struct Cli {
    /// Listen address as IP:PORT.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Namespace reported in the answers' context.
    #[arg(long, env = "NAMESPACE", default_value = "")]
    namespace: String,
    /// Service name reported in the answers' context.
    #[arg(long, env = "SERVICE_NAME", default_value = "")]
    service_name: String,
    /// Pod name reported in the answers' context (tests tell backends apart by it).
    #[arg(long, env = "POD_NAME", default_value = "grpc-echo")]
    pod: String,
    /// Ingress name reported in the answers' context.
    #[arg(long, env = "INGRESS_NAME", default_value = "")]
    ingress: String,
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
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listener = gatehouse_grpc_echo::bind(cli.addr)
        .await
        .with_context(|| format!("binding {}", cli.addr))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("listening addr={addr}");
    tracing::info!(%addr, pod = %cli.pod, "serving GrpcEcho");
    let echo = Echo {
        context: pb::Context {
            namespace: cli.namespace,
            ingress: cli.ingress,
            service_name: cli.service_name,
            pod: cli.pod,
        },
    };
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    gatehouse_grpc_echo::serve(listener, echo, shutdown)
        .await
        .context("serving")
}
