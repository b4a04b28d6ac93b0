use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatehouse::engine::programmed::Tracking;
use gatehouse::engine::{Engine, Shared, XdsAuth};
use gatehouse::metrics::Metrics;
use gatehouse::model::{DEFAULT_CONTROLLER_NAME, ModelConfig};
use gatehouse::provision::ca_secret::CaState;
use gatehouse::provision::{self, ProvisionConfig, Provisioner, ProxySettings, XdsEndpoint};
use gatehouse::source::kube::{self as kube_source, KubeState};
use gatehouse::status::StatusWriter;
use gatehouse::status::events::Events;
use gatehouse::translate::TranslateOptions;
use gatehouse_xds::TlsReloader;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::leadership::{Election, Leadership};
use super::serve::{Addresses, Serving, XdsSecurity};
use super::shutdown::Shutdown;
use super::xds_certificate::{self, ServerCertificate};

/// Arguments of `controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to serve xDS (ADS over gRPC).
    #[arg(long, env = "GATEHOUSE_XDS_ADDRESS", default_value = "0.0.0.0:18000")]
    pub xds_address: SocketAddr,
    /// Where to serve /healthz, /readyz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_ADDRESS", default_value = "0.0.0.0:19001")]
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
    /// GatewayClasses with this controllerName are Gatehouse's.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Elect a leader through a Lease; only the leader writes status.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "GATEHOUSE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        env = "GATEHOUSE_LEASE_NAME",
        default_value = "gatehouse-controller"
    )]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: $POD_NAME or hostname, plus the pid).
    #[arg(long, env = "GATEHOUSE_IDENTITY")]
    pub identity: Option<String>,
    /// Namespace the controller runs in: holds the xDS CA Secret and, by default, the Lease
    /// (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "GATEHOUSE_NAMESPACE")]
    pub namespace: Option<String>,
    /// How proxies prove which Gateway they serve: `mtls` (a client certificate the
    /// controller issues per Gateway) or `none` (node metadata; only for trusted networks).
    #[arg(long, env = "GATEHOUSE_XDS_AUTH", value_enum, default_value_t = AuthMode::Mtls)]
    pub xds_auth: AuthMode,
    /// Secret (in --namespace) holding the xDS CA; created when absent.
    #[arg(long, env = "GATEHOUSE_CA_SECRET", default_value = "gatehouse-xds-ca")]
    pub ca_secret: String,
    /// DNS names of the xDS server certificate; the first is the one provisioned proxies
    /// dial and verify (default: gatehouse.NAMESPACE.svc).
    #[arg(
        long = "xds-server-name",
        env = "GATEHOUSE_XDS_SERVER_NAME",
        value_delimiter = ','
    )]
    pub xds_server_names: Vec<String>,
    /// Lifetime in seconds of the xDS server certificate this replica issues itself from the
    /// CA; it is issued again, without dropping a connection, once a third of it is left.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 365 * 24 * 3600,
        value_parser = clap::value_parser!(u64).range(3..=10 * 365 * 24 * 3600),
        env = "GATEHOUSE_XDS_SERVER_CERTIFICATE_VALIDITY"
    )]
    pub xds_server_certificate_validity: u64,
    /// Port provisioned proxies dial (the controller Service's xDS port).
    #[arg(long, env = "GATEHOUSE_XDS_SERVICE_PORT", default_value_t = 18000)]
    pub xds_service_port: u16,
    /// Create and keep in sync an Envoy Deployment, Service, ConfigMap, ServiceAccount and
    /// certificate Secret for every Gateway of our classes (needs --xds-auth mtls).
    #[arg(long, env = "GATEHOUSE_PROVISION", default_value_t = true, action = clap::ArgAction::Set)]
    pub provision: bool,
    /// Envoy image of provisioned proxies unless a GatewayParameters says otherwise.
    #[arg(long, env = "GATEHOUSE_PROXY_IMAGE", default_value = gatehouse::provision::DEFAULT_ENVOY_IMAGE)]
    pub proxy_image: String,
    /// Service type of provisioned proxies unless a GatewayParameters says otherwise.
    #[arg(
        long,
        env = "GATEHOUSE_PROXY_SERVICE_TYPE",
        default_value = "LoadBalancer"
    )]
    pub proxy_service_type: String,
    /// Watch Secrets and ConfigMaps (certificates, CA bundles) in these namespaces only, so the
    /// controller needs no cluster-wide right to list them (the chart's
    /// `certificateNamespaces`); a reference to one elsewhere does not resolve. All
    /// namespaces when unset.
    #[arg(
        long,
        env = "GATEHOUSE_CERTIFICATE_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS[,NS…]"
    )]
    pub certificate_namespaces: Vec<String>,
    #[command(flatten)]
    pub kube: super::kube_client::KubeArgs,
}

/// `--xds-auth` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    Mtls,
    None,
}

/// Watches the API server, serves xDS, writes status; until SIGINT/SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.kube.client().await?;
    let shutdown = Shutdown::install();
    let namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let server_names = if args.xds_server_names.is_empty() {
        vec![format!("gatehouse.{namespace}.svc")]
    } else {
        args.xds_server_names.clone()
    };
    let (security, ca, renewal) = xds_security(&client, &args, &namespace, &server_names).await?;
    let serving = start_serving(&args, security, &shutdown).await?;
    if let Some(r) = renewal {
        tokio::spawn(xds_certificate::follow_ca(
            client.clone(),
            namespace.clone(),
            args.ca_secret.clone(),
            r.ca,
            shutdown.wait(),
        ));
        tokio::spawn(xds_certificate::renew(
            r.cert,
            r.reloader,
            r.not_after,
            shutdown.wait(),
        ));
    }
    tracing::info!(xds = %args.xds_address, admin = %args.admin_address, controller = %args.controller_name, "gatehouse controller starting");
    let state = Arc::new(KubeState::default());
    let watchers = kube_source::spawn(client.clone(), state.clone(), &args.certificate_namespaces);
    // Held until every task reading `leading` has ended.
    let election = args.leader_elect.then(|| Election {
        namespace: args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
        name: args.lease_name.clone(),
        identity: args.identity.clone(),
    });
    let leadership = Leadership::start(&client, election, &shutdown);
    tokio::spawn(super::crd_check::check_crds(
        client.clone(),
        serving.metrics.clone(),
    ));
    tokio::spawn(follow_leadership(
        leadership.leading.clone(),
        serving.metrics.clone(),
    ));
    let tasks = Tasks {
        client,
        state: state.clone(),
        metrics: serving.metrics.clone(),
        shared: serving.shared.clone(),
        leading: leadership.leading.clone(),
        shutdown: shutdown.clone(),
    };
    let built = Arc::new(Notify::new());
    let provisioned = Arc::new(Notify::new());
    let provision_task = tasks.spawn_provisioner(&args, &server_names, ca, provisioned.clone());
    let status_task = tasks.spawn_status_writer(
        args.controller_name,
        args.identity
            .clone()
            .unwrap_or_else(super::leadership::identity),
        built.clone(),
    );

    rebuild_loop(
        &state,
        &serving.engine,
        &[&built, &provisioned],
        shutdown.wait(),
    )
    .await;
    shutdown.trigger();
    for w in watchers {
        w.abort();
    }
    status_task.await.context("status task")?;
    if let Some(t) = provision_task {
        t.await.context("provisioning task")?;
    }
    leadership.finish().await?;
    serving.finish().await?;
    tracing::info!("gatehouse controller stopped");
    Ok(0)
}

/// How the xDS server authenticates proxies, the CA that issues their certificates (`None`
/// with `--xds-auth none`), and the renewal of the server's own certificate.
async fn xds_security(
    client: &kube::Client,
    args: &Args,
    namespace: &str,
    server_names: &[String],
) -> anyhow::Result<(
    XdsSecurity,
    Option<watch::Receiver<Arc<CaState>>>,
    Option<Renewal>,
)> {
    match args.xds_auth {
        AuthMode::Mtls => {
            let ca = provision::ca_secret::load_or_create(client, namespace, &args.ca_secret)
                .await
                .with_context(|| format!("xDS CA in Secret {namespace}/{}", args.ca_secret))?;
            let (ca, following) = watch::channel(Arc::new(ca));
            let cert = ServerCertificate {
                ca: following.clone(),
                names: server_names.to_vec(),
                validity: time::Duration::seconds(
                    i64::try_from(args.xds_server_certificate_validity).unwrap_or(i64::MAX / 2),
                ),
            };
            let (tls, not_after) = cert.issue(time::OffsetDateTime::now_utc())?;
            let reloader = TlsReloader::new(&tls).context("the xDS server's TLS settings")?;
            let security = XdsSecurity {
                auth: XdsAuth::ClientCertificate,
                tls: Some(reloader.clone()),
            };
            Ok((
                security,
                Some(following),
                Some(Renewal {
                    ca,
                    cert,
                    reloader,
                    not_after,
                }),
            ))
        }
        AuthMode::None => {
            tracing::warn!(
                "xDS authentication is off (--xds-auth none): any client that reaches the xDS port can read any Gateway's configuration"
            );
            Ok((XdsSecurity::plain(), None, None))
        }
    }
}

/// The xDS server certificate's renewal, started once serving.
struct Renewal {
    /// Publishes the CA Secret as it changes (a rotation step).
    ca: watch::Sender<Arc<CaState>>,
    cert: ServerCertificate,
    reloader: TlsReloader,
    not_after: time::OffsetDateTime,
}

/// Binds the xDS, admin and debug addresses and starts serving.
async fn start_serving(
    args: &Args,
    security: XdsSecurity,
    shutdown: &Shutdown,
) -> anyhow::Result<Serving> {
    Serving::start(
        Addresses {
            xds: args.xds_address,
            admin: args.admin_address,
            debug: args.debug_address,
        },
        ModelConfig {
            controller_name: args.controller_name.clone(),
            accept_unknown_classes: false,
        },
        TranslateOptions {
            bind_address: args.listener_address.clone(),
            route_scopes_from: args.route_scopes.from,
        },
        security,
        args.removal_grace.duration(),
        shutdown,
    )
    .await
}

/// What the controller's background tasks share.
struct Tasks {
    client: kube::Client,
    state: Arc<KubeState>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    leading: watch::Receiver<bool>,
    shutdown: Shutdown,
}

impl Tasks {
    /// Starts provisioning proxies, when asked to and able to (it needs the CA of mTLS).
    fn spawn_provisioner(
        &self,
        args: &Args,
        server_names: &[String],
        ca: Option<watch::Receiver<Arc<CaState>>>,
        provisioned: Arc<Notify>,
    ) -> Option<JoinHandle<()>> {
        match (args.provision, ca) {
            (true, Some(ca)) => {
                let config = ProvisionConfig {
                    controller_name: args.controller_name.clone(),
                    defaults: ProxySettings {
                        image: args.proxy_image.clone(),
                        service_type: args.proxy_service_type.clone(),
                        ..Default::default()
                    },
                    xds: XdsEndpoint {
                        host: server_names[0].clone(),
                        port: args.xds_service_port,
                        server_name: server_names[0].clone(),
                    },
                };
                let provisioner = Provisioner::new(self.client.clone(), config, ca);
                // Programmed follows the provisioned Deployments as well as the proxies.
                self.shared.track(Tracking { deployments: true });
                tokio::spawn(provision::availability::watch(
                    self.client.clone(),
                    self.shared.clone(),
                ));
                Some(tokio::spawn(provision_loop(
                    provisioner,
                    self.state.clone(),
                    provisioned,
                    self.leading.clone(),
                    self.metrics.clone(),
                    self.shared.clone(),
                    self.shutdown.wait(),
                )))
            }
            (true, None) => {
                self.shared.track(Tracking { deployments: false });
                tracing::warn!(
                    "not provisioning proxies: provisioned proxies authenticate with mTLS, and --xds-auth is none"
                );
                None
            }
            (false, _) => {
                self.shared.track(Tracking { deployments: false });
                None
            }
        }
    }

    /// Starts writing status (consumes the task context: the writer is the last to need the
    /// client).
    fn spawn_status_writer(
        self,
        controller_name: String,
        instance: String,
        built: Arc<Notify>,
    ) -> JoinHandle<()> {
        let events = Events::new(self.client.clone(), instance, self.metrics.clone());
        let writer = StatusWriter::new(self.client, controller_name, self.metrics.status.clone());
        tokio::spawn(super::status_loop::write_status(
            writer,
            events,
            self.state,
            self.shared,
            built,
            self.leading,
            self.shutdown.wait(),
        ))
    }
}

/// Keeps the `leader` gauge equal to whether this replica leads.
async fn follow_leadership(mut leading: watch::Receiver<bool>, metrics: Arc<Metrics>) {
    loop {
        metrics.leader.set(i64::from(*leading.borrow_and_update()));
        if leading.changed().await.is_err() {
            metrics.leader.set(0);
            return;
        }
    }
}

/// Rebuilds as soon as something changed, once every kind has synced. No debounce: what
/// arrives during a build is taken together by the next one, and a lone change waits for none.
async fn rebuild_loop(
    state: &Arc<KubeState>,
    engine: &Arc<Engine>,
    built: &[&Notify],
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut waiting_logged = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = state.changed() => {}
        }
        if !state.synced() {
            if !waiting_logged {
                tracing::info!(waiting_for = ?state.unsynced(), "not serving yet: waiting for the first complete list of every kind");
                waiting_logged = true;
            }
            continue;
        }
        // On a blocking thread: the build holds the store's lock, and the watchers' tasks
        // that wait for it must not stall the runtime's workers.
        let (state, engine) = (state.clone(), engine.clone());
        let build = tokio::task::spawn_blocking(move || {
            let problems = state.problems();
            state.with_store(|store| engine.rebuild(store, problems));
        });
        if let Err(e) = build.await {
            tracing::error!(error = %e, "the build task failed");
        }
        for b in built {
            b.notify_one();
        }
    }
}

/// Re-applies everything this often, repairing provisioned objects someone edited or deleted.
const PROVISION_RESYNC: Duration = Duration::from_secs(300);
/// How soon a failed sync is retried.
const PROVISION_RETRY: Duration = Duration::from_secs(2);
/// How often Gateways blocked by someone else's objects are looked at again: deleting those
/// objects is not an event Gatehouse watches, and the Gateway should not wait for the resync.
const PROVISION_CONFLICT_RECHECK: Duration = Duration::from_secs(5);

/// Provisions proxies after each build, while this replica leads (one writer issues
/// certificates, so replicas never fight over them).
async fn provision_loop(
    mut provisioner: Provisioner,
    state: Arc<KubeState>,
    built: Arc<Notify>,
    mut leading: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ca = provisioner.ca_changes();
    let mut resync = tokio::time::interval(PROVISION_RESYNC);
    let mut retry: Option<Duration> = None;
    // What the last sync read: a build that changed only routes needs no sync (rendering the
    // proxies' objects and checking their certificate cost more than the build).
    let mut synced: Option<gatehouse::store::Store> = None;
    loop {
        let backoff = async {
            match retry {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = built.notified() => {}
            _ = backoff => synced = None,
            _ = resync.tick() => {
                provisioner.forget();
                synced = None;
            }
            changed = leading.changed() => {
                if changed.is_err() { return }
                provisioner.forget();
                synced = None;
            }
            // A CA rotation step: certificates and trust bundles of every Gateway change.
            changed = ca.changed() => {
                if changed.is_err() { return }
                provisioner.forget();
                synced = None;
            }
        }
        if !*leading.borrow() || !state.synced() {
            continue;
        }
        let inputs = state.with_store(provision::inputs);
        if synced
            .as_ref()
            .is_some_and(|last| provision::same_inputs(last, &inputs))
        {
            continue;
        }
        let report = provisioner.sync(&inputs).await;
        metrics.provision_applies.inc_by(report.applied as u64);
        metrics.provision_errors.inc_by(report.failed as u64);
        let conflicts = provisioner.conflicts();
        metrics.provision_conflicts.set(conflicts.len() as i64);
        shared.set_unprovisioned(
            conflicts
                .iter()
                .map(|(k, c)| (k.clone(), provision::conflict_condition(c)))
                .collect(),
        );
        synced = Some(inputs);
        retry = if report.failed > 0 {
            Some(PROVISION_RETRY)
        } else if !conflicts.is_empty() {
            Some(PROVISION_CONFLICT_RECHECK)
        } else {
            None
        };
    }
}
