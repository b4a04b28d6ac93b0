use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use gatehouse::admin::{self, AdminState};
use gatehouse::engine::{Engine, Shared};
use gatehouse::metrics::Metrics;
use gatehouse::model::{DEFAULT_CONTROLLER_NAME, ModelConfig};
use gatehouse::source::files;
use gatehouse::translate::TranslateOptions;
use gatehouse_xds::{AdsServer, SnapshotCache, XdsStats};

use super::shutdown::Shutdown;

/// Arguments of `standalone`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of manifests to serve; watched for changes.
    #[arg(long)]
    pub manifests: PathBuf,
    /// Where to serve xDS (ADS over gRPC).
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub xds_address: SocketAddr,
    /// Where to serve /healthz, /readyz, /metrics and /debug/*.
    #[arg(long, default_value = "127.0.0.1:19001")]
    pub admin_address: SocketAddr,
    /// Address the Envoy listeners bind to.
    #[arg(long, default_value = "0.0.0.0")]
    pub listener_address: String,
    /// GatewayClasses with this controllerName are served (Gateways whose class is not in the
    /// directory are served too).
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME)]
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
    let cache = SnapshotCache::new();
    let stats = Arc::new(XdsStats::new());
    let metrics = Arc::new(Metrics::new(stats.clone()));
    let shared = Arc::new(Shared::default());
    let engine = Arc::new(Engine {
        cache: cache.clone(),
        shared: shared.clone(),
        metrics: metrics.clone(),
        model_config: ModelConfig {
            controller_name: args.controller_name,
            accept_unknown_classes: true,
        },
        translate_options: TranslateOptions {
            bind_address: args.listener_address,
        },
    });
    let xds_listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("cannot listen for xDS on {}", args.xds_address))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("cannot listen for admin on {}", args.admin_address))?;
    tracing::info!(xds = %args.xds_address, admin = %args.admin_address, manifests = %args.manifests.display(), "gatehouse standalone starting");

    let shutdown = Shutdown::install();
    let ads = AdsServer::new(cache, engine.grouper(), stats);
    let xds_task = tokio::spawn(gatehouse_xds::serve_with_listener(
        xds_listener,
        ads,
        shutdown.wait(),
    ));
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        AdminState { shared, metrics },
        shutdown.wait(),
    ));

    let rebuild_engine = engine.clone();
    files::watch(
        args.manifests,
        move |source| rebuild_engine.rebuild(&source.store(), source.problems()),
        shutdown.wait(),
    )
    .await?;
    shutdown.trigger();
    xds_task.await.context("xDS task")??;
    admin_task
        .await
        .context("admin task")?
        .context("admin server")?;
    tracing::info!("gatehouse standalone stopped");
    Ok(0)
}
