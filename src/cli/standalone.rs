use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use gatehouse::model::{DEFAULT_CONTROLLER_NAME, ModelConfig};
use gatehouse::source::files;
use gatehouse::translate::TranslateOptions;

use super::serve::{Addresses, Serving, XdsSecurity};
use super::shutdown::Shutdown;

/// Arguments of `standalone`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of manifests to serve; watched for changes.
    #[arg(long, env = "GATEHOUSE_MANIFESTS")]
    pub manifests: PathBuf,
    /// Where to serve xDS (ADS over gRPC).
    #[arg(long, env = "GATEHOUSE_XDS_ADDRESS", default_value = "127.0.0.1:18000")]
    pub xds_address: SocketAddr,
    /// Where to serve /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "GATEHOUSE_ADMIN_ADDRESS",
        default_value = "127.0.0.1:19001"
    )]
    pub admin_address: SocketAddr,
    /// Where to serve /debug/* (every Gateway's configuration): loopback unless you mean it.
    #[arg(
        long,
        env = "GATEHOUSE_DEBUG_ADDRESS",
        default_value = "127.0.0.1:19002"
    )]
    pub debug_address: SocketAddr,
    /// Address the Envoy listeners bind to.
    #[arg(long, env = "GATEHOUSE_LISTENER_ADDRESS", default_value = "0.0.0.0")]
    pub listener_address: String,
    #[command(flatten)]
    pub route_scopes: super::RouteScopes,
    #[command(flatten)]
    pub removal_grace: super::RemovalGrace,
    /// GatewayClasses with this controllerName are served (Gateways whose class is not in the
    /// directory are served too).
    #[arg(long, env = "GATEHOUSE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
}

/// Serves the directory until SIGINT/SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    if !args.manifests.is_dir() {
        bail!(
            "--manifests {} is not a directory",
            args.manifests.display()
        );
    }
    let shutdown = Shutdown::install();
    let serving = Serving::start(
        Addresses {
            xds: args.xds_address,
            admin: args.admin_address,
            debug: args.debug_address,
        },
        ModelConfig {
            controller_name: args.controller_name,
            accept_unknown_classes: true,
        },
        TranslateOptions {
            bind_address: args.listener_address,
            route_scopes_from: args.route_scopes.from,
        },
        // Standalone serves loopback proxies the user starts themselves.
        XdsSecurity::plain(),
        args.removal_grace.duration(),
        &shutdown,
    )
    .await?;
    tracing::info!(xds = %args.xds_address, admin = %args.admin_address, manifests = %args.manifests.display(), "gatehouse standalone starting");
    let engine = serving.engine.clone();
    files::watch(
        args.manifests,
        move |source| engine.rebuild(source.store(), source.problems()),
        shutdown.wait(),
    )
    .await?;
    shutdown.trigger();
    serving.finish().await?;
    tracing::info!("gatehouse standalone stopped");
    Ok(0)
}
