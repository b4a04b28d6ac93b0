//! What `standalone` and `controller` share: the engine, the xDS server and the admin server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gatehouse::admin::{self, AdminState};
use gatehouse::engine::programmed;
use gatehouse::engine::{Engine, Shared, XdsAuth};
use gatehouse::metrics::Metrics;
use gatehouse::model::ModelConfig;
use gatehouse::translate::TranslateOptions;
use gatehouse_xds::{AdsServer, SnapshotCache, TlsReloader, XdsStats};
use tokio::task::JoinHandle;

use super::shutdown::Shutdown;

/// How the xDS server authenticates proxies.
pub struct XdsSecurity {
    pub auth: XdsAuth,
    /// TLS of the xDS server; the controller renews the certificate through it.
    pub tls: Option<TlsReloader>,
}

impl XdsSecurity {
    /// Plain gRPC; proxies name their Gateway in node metadata (loopback only).
    pub fn plain() -> XdsSecurity {
        XdsSecurity {
            auth: XdsAuth::NodeMetadata,
            tls: None,
        }
    }
}

/// Where the servers listen.
pub struct Addresses {
    pub xds: SocketAddr,
    pub admin: SocketAddr,
    pub debug: SocketAddr,
}

/// The running servers around one engine.
pub struct Serving {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<Shared>,
    xds: JoinHandle<Result<(), gatehouse_xds::XdsError>>,
    admin: JoinHandle<std::io::Result<()>>,
    debug: JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// Binds both addresses (a clear error when one is taken) and starts serving.
    pub async fn start(
        addresses: Addresses,
        model_config: ModelConfig,
        translate_options: TranslateOptions,
        security: XdsSecurity,
        removal_grace: std::time::Duration,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Serving> {
        let Addresses {
            xds: xds_address,
            admin: admin_address,
            debug: debug_address,
        } = addresses;
        let cache = SnapshotCache::new();
        let stats = Arc::new(XdsStats::new());
        let metrics = Arc::new(Metrics::new(stats.clone()));
        let shared = Arc::new(Shared::default());
        let engine = Arc::new(Engine::new(
            cache.clone(),
            shared.clone(),
            metrics.clone(),
            model_config,
            translate_options,
        ));
        let xds_listener = tokio::net::TcpListener::bind(xds_address)
            .await
            .with_context(|| format!("cannot listen for xDS on {xds_address}"))?;
        let admin_listener = tokio::net::TcpListener::bind(admin_address)
            .await
            .with_context(|| format!("cannot listen for admin on {admin_address}"))?;
        let debug_listener = tokio::net::TcpListener::bind(debug_address)
            .await
            .with_context(|| format!("cannot listen for debug on {debug_address}"))?;
        tokio::spawn(report_proxies(stats.clone(), shared.clone()));
        let ads = AdsServer::new(cache, engine.grouper(security.auth), stats)
            // Requests the old routes started are still in flight on a removed cluster, and
            // Envoy resets them when it goes: an auth check reset that way answers an allowed
            // request 403 (issue 17).
            .with_removal_grace(removal_grace);
        let xds = tokio::spawn(gatehouse_xds::serve_with_listener(
            xds_listener,
            ads,
            security.tls,
            shutdown.wait(),
        ));
        let state = AdminState {
            shared: shared.clone(),
            metrics: metrics.clone(),
        };
        let debug = tokio::spawn(admin::serve(
            debug_listener,
            admin::debug_router(state.clone()),
            shutdown.wait(),
        ));
        let admin = tokio::spawn(admin::serve(
            admin_listener,
            admin::router(state),
            shutdown.wait(),
        ));
        Ok(Serving {
            engine,
            metrics,
            shared,
            xds,
            admin,
            debug,
        })
    }

    /// Waits for both servers to finish after shutdown.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.xds.await.context("xDS task")??;
        self.admin
            .await
            .context("admin task")?
            .context("admin server")?;
        self.debug
            .await
            .context("debug task")?
            .context("debug server")?;
        Ok(())
    }
}

/// Carries what proxies reject, and whether they run what they were sent, from the xDS server
/// to the Gateways' status as it happens; a proxy that stays behind is noticed by the tick.
async fn report_proxies(stats: Arc<XdsStats>, shared: Arc<gatehouse::engine::Shared>) {
    let mut changes = stats.watch_changes();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        changes.borrow_and_update();
        shared.set_rejections(stats.rejections());
        shared.set_proxies(programmed::by_gateway(
            stats.proxies(),
            std::time::Instant::now(),
        ));
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}
