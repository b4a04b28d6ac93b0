use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatehouse::engine::{Engine, Shared};
use gatehouse::model::{DEFAULT_CONTROLLER_NAME, ModelConfig};
use gatehouse::source::kube::{self as kube_source, KubeState};
use gatehouse::status::{LeaderConfig, LeaderElector, StatusWriter};
use gatehouse::translate::TranslateOptions;
use tokio::sync::{Notify, watch};

use super::serve::Serving;
use super::shutdown::Shutdown;

/// Quiet time that ends a burst of API events.
const QUIET: Duration = Duration::from_millis(30);
/// Longest a burst may delay a rebuild.
const MAX_DELAY: Duration = Duration::from_millis(150);
/// Status is re-checked this often even without changes (repairs lost writes).
const STATUS_RESYNC: Duration = Duration::from_secs(30);

/// Arguments of `controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to serve xDS (ADS over gRPC).
    #[arg(long, default_value = "0.0.0.0:18000")]
    pub xds_address: SocketAddr,
    /// Where to serve /healthz, /readyz, /metrics and /debug/*.
    #[arg(long, default_value = "0.0.0.0:19001")]
    pub admin_address: SocketAddr,
    /// Address the Envoy listeners bind to.
    #[arg(long, default_value = "0.0.0.0")]
    pub listener_address: String,
    /// GatewayClasses with this controllerName are Gatehouse's.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Elect a leader through a Lease; only the leader writes status.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "gatehouse-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: $POD_NAME or hostname, plus the pid).
    #[arg(long)]
    pub identity: Option<String>,
}

fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()))
        .unwrap_or_else(|_| "gatehouse".into());
    format!("{host}-{}", std::process::id())
}

/// Watches the API server, serves xDS, writes status; until SIGINT/SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (kubeconfig or in-cluster)")?;
    let shutdown = Shutdown::install();
    let serving = Serving::start(
        args.xds_address,
        args.admin_address,
        ModelConfig {
            controller_name: args.controller_name.clone(),
            accept_unknown_classes: false,
        },
        TranslateOptions {
            bind_address: args.listener_address.clone(),
        },
        &shutdown,
    )
    .await?;
    tracing::info!(xds = %args.xds_address, admin = %args.admin_address, controller = %args.controller_name, "gatehouse controller starting");
    let (engine, metrics, shared) = (
        serving.engine.clone(),
        serving.metrics.clone(),
        serving.shared.clone(),
    );
    let state = Arc::new(KubeState::default());
    let watchers = kube_source::spawn(client.clone(), state.clone());

    // Leadership: with election off this replica always leads.
    let (leading, elector_task) = if args.leader_elect {
        let config = LeaderConfig {
            namespace: args
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            name: args.lease_name.clone(),
            identity: args.identity.clone().unwrap_or_else(identity),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        };
        tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "leader election on");
        let elector = LeaderElector::new(client.clone(), config);
        let rx = elector.subscribe();
        (rx, Some(tokio::spawn(elector.run(shutdown.wait()))))
    } else {
        let (_tx, rx) = watch::channel(true);
        std::mem::forget(_tx); // keep "always leading" for the process lifetime
        (rx, None)
    };

    let built = Arc::new(Notify::new());
    let status_task = tokio::spawn(write_status(
        StatusWriter::new(
            client,
            args.controller_name,
            metrics.status_writes.clone(),
            metrics.status_write_errors.clone(),
        ),
        state.clone(),
        shared,
        built.clone(),
        leading,
        shutdown.wait(),
    ));

    rebuild_loop(&state, &engine, &built, shutdown.wait()).await;
    shutdown.trigger();
    for w in watchers {
        w.abort();
    }
    status_task.await.context("status task")?;
    if let Some(t) = elector_task {
        t.await.context("leader election task")?;
    }
    serving.finish().await?;
    tracing::info!("gatehouse controller stopped");
    Ok(0)
}

/// Rebuilds after each debounced burst of changes, once every kind has synced.
async fn rebuild_loop(
    state: &KubeState,
    engine: &Engine,
    built: &Notify,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut waiting_logged = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = state.changed() => {}
        }
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let quiet = (tokio::time::Instant::now() + QUIET).min(deadline);
            if tokio::time::timeout_at(quiet, state.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        if !state.synced() {
            if !waiting_logged {
                tracing::info!(waiting_for = ?state.unsynced(), "not serving yet: waiting for the first complete list of every kind");
                waiting_logged = true;
            }
            continue;
        }
        engine.rebuild(&state.store(), state.problems());
        built.notify_one();
    }
}

/// Writes status after each build and periodically, while this replica leads.
async fn write_status(
    mut writer: StatusWriter,
    state: Arc<KubeState>,
    shared: Arc<Shared>,
    built: Arc<Notify>,
    mut leading: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut resync = tokio::time::interval(STATUS_RESYNC);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = built.notified() => {}
            _ = resync.tick() => {}
            changed = leading.changed() => if changed.is_err() { return },
        }
        if !*leading.borrow() || !shared.ready() {
            continue;
        }
        let view = shared.view();
        let written = writer.sync(&state.store(), &view.status).await;
        if written > 0 {
            tracing::info!(written, "status written");
        }
    }
}
