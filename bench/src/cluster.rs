//! `gatehouse controller` against a real kube-apiserver: the API server and etcd of the tests,
//! every CRD, real backends, objects created through the API, Envoy authenticated with the
//! client certificate the controller provisions for the Gateway (mTLS xDS), leader election on.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use gatehouse::scale::{NAMESPACE, Targets};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use crate::apiserver::ApiServer;
use crate::procs::{Proc, bin, free_port, host_ip, wait_port};
use crate::world::{XdsTls, backends, counter, envoy_for, log_level};

/// The name in the controller's xDS server certificate, which Envoy verifies.
pub const XDS_SERVER_NAME: &str = "gatehouse.bench.svc";
/// Namespace of the controller's Lease and CA Secret.
const CONTROLLER_NAMESPACE: &str = "default";

/// A running `gatehouse controller`.
pub struct Controller {
    pub proc: Proc,
    pub admin_port: u16,
    pub xds_port: u16,
    pub started: Instant,
}

impl Controller {
    /// A counter of its `/metrics`.
    pub fn counter(&self, name: &str) -> u64 {
        counter(self.admin_port, name)
    }

    pub fn status_writes(&self) -> u64 {
        self.counter("gatehouse_status_writes_total")
    }

    pub fn builds(&self) -> u64 {
        self.counter("gatehouse_snapshot_builds_total")
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        crate::world::blocking_status(self.admin_port, "/readyz") == Some(200)
    }
}

pub struct Cluster {
    // Field order is drop order: Envoy and the controller before the API server, the
    // directory last.
    pub envoy: Option<Proc>,
    pub controller: Option<Controller>,
    /// The backends, alive as long as the world.
    _backends: Vec<Proc>,
    pub targets: Targets,
    pub client: kube::Client,
    pub routes: Statuses,
    resources: Mutex<HashMap<String, (ApiResource, bool)>>,
    pub api: ApiServer,
    pub dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("GATEHOUSE_BENCH_KEEP").is_some()
            && let Ok(d) = tempfile::tempdir()
        {
            let dir = std::mem::replace(&mut self.dir, d);
            eprintln!(
                "kept {} (API server state: {})",
                dir.keep().display(),
                self.api.dir().display()
            );
        }
    }
}

impl Cluster {
    /// API server with the Gateway API and Gatehouse CRDs, backends; no objects, no controller.
    pub async fn start() -> anyhow::Result<Cluster> {
        let api = tokio::task::block_in_place(ApiServer::start);
        api.install_gateway_api_and_gatehouse_crds().await;
        let client = api.client().await;
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-bench-cluster-")
            .tempdir()?;
        let (targets, others) = backends(dir.path(), &host_ip()?)?;
        let routes = Statuses::watch(client.clone());
        Ok(Cluster {
            envoy: None,
            controller: None,
            _backends: others,
            targets,
            client,
            routes,
            resources: Mutex::new(HashMap::new()),
            api,
            dir,
        })
    }

    /// The API of `doc`'s kind (discovered once per kind), in its namespace when namespaced.
    async fn api_for(&self, doc: &Value) -> anyhow::Result<Api<DynamicObject>> {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let key = format!("{api_version}/{kind}");
        let known = self
            .resources
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned());
        let (resource, namespaced) = match known {
            Some(r) => r,
            None => {
                let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                let gvk = GroupVersionKind::gvk(group, version, kind);
                let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .with_context(|| format!("discovering {key}"))?;
                let r = (resource, caps.scope == Scope::Namespaced);
                if let Ok(mut m) = self.resources.lock() {
                    m.insert(key, r.clone());
                }
                r
            }
        };
        Ok(if namespaced {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            Api::namespaced_with(self.client.clone(), ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        })
    }

    /// Creates one object (POST).
    pub async fn create(&self, doc: &Value) -> anyhow::Result<()> {
        let api = self.api_for(doc).await?;
        let obj: DynamicObject = serde_json::from_value(doc.clone())?;
        api.create(&PostParams::default(), &obj)
            .await
            .map_err(|e| anyhow::anyhow!("creating {}: {e:?}", describe(doc)))?;
        Ok(())
    }

    /// Creates every object of `docs`, `in_flight` requests at a time.
    pub async fn create_all(&self, docs: &[Value], in_flight: usize) -> anyhow::Result<()> {
        futures::stream::iter(docs.iter().map(|d| self.create(d)))
            .buffer_unordered(in_flight)
            .try_collect::<()>()
            .await
    }

    /// Deletes one object.
    pub async fn delete(&self, doc: &Value) -> anyhow::Result<()> {
        let api = self.api_for(doc).await?;
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(|e| anyhow::anyhow!("deleting {}: {e:?}", describe(doc)))?;
        Ok(())
    }

    /// Starts `gatehouse controller` (mTLS xDS, leader election) and waits for its admin port.
    pub fn start_controller(&mut self) -> anyhow::Result<()> {
        if self.controller.is_some() {
            bail!("a controller already runs");
        }
        let (xds_port, admin_port, debug_port) = (free_port()?, free_port()?, free_port()?);
        let mut cmd = Command::new(bin("gatehouse")?);
        cmd.arg("controller")
            .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
            .args(["--debug-address", &format!("127.0.0.1:{debug_port}")])
            .args(["--listener-address", "127.0.0.1"])
            .args(["--namespace", CONTROLLER_NAMESPACE])
            .args(["--identity", "bench"])
            .args(["--xds-server-name", XDS_SERVER_NAME])
            .env("KUBECONFIG", self.api.kubeconfig_path())
            .env("RUST_LOG", log_level("GATEHOUSE_BENCH_LOG", "warn"));
        let started = Instant::now();
        let proc = Proc::spawn("controller", cmd, self.dir.path())?;
        wait_port(admin_port, "controller admin").with_context(|| proc.tail())?;
        self.controller = Some(Controller {
            proc,
            admin_port,
            xds_port,
            started,
        });
        Ok(())
    }

    /// The running controller.
    pub fn controller(&self) -> anyhow::Result<&Controller> {
        self.controller.as_ref().context("no controller runs")
    }

    /// Stops the controller with SIGTERM (it releases its Lease) and waits for it to exit.
    pub fn stop_controller(&mut self) -> anyhow::Result<()> {
        let mut c = self.controller.take().context("no controller runs")?;
        Command::new("kill")
            .args(["-TERM", &c.proc.pid().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.proc.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!(
                    "the controller did not exit within 30 s of SIGTERM\n{}",
                    c.proc.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts Envoy for the Gateway with the client certificate the controller provisioned
    /// for it (its Secret's keys written to a directory, as the Secret volume would be).
    pub async fn start_envoy(&mut self, gateway: &str) -> anyhow::Result<()> {
        let xds_port = self.controller()?.xds_port;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        let name = gatehouse::provisioned::tls_secret_name(gateway);
        let deadline = Instant::now() + Duration::from_secs(60);
        let secret = loop {
            if let Some(s) = secrets.get_opt(&name).await? {
                break s;
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller did not provision Secret {NAMESPACE}/{name}\n{}",
                    self.controller()?.proc.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let tls_dir = self.dir.path().join("xds-tls");
        std::fs::create_dir_all(&tls_dir)?;
        for (key, value) in secret.data.unwrap_or_default() {
            std::fs::write(tls_dir.join(key), value.0)?;
        }
        let tls = XdsTls {
            dir: &tls_dir,
            server_name: XDS_SERVER_NAME,
        };
        let full = format!("{NAMESPACE}/{gateway}");
        let admin = free_port()?;
        self.envoy = Some(envoy_for(
            self.dir.path(),
            &full,
            xds_port,
            admin,
            Some(tls),
        )?);
        Ok(())
    }
}

fn describe(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Which HTTPRoutes of the bench namespace carry our Accepted status, kept up to date by a
/// watch (one stream: polling 10,000 routes would load the API server being measured).
pub struct Statuses {
    accepted: Arc<Mutex<HashMap<String, bool>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Statuses {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Statuses {
    fn watch(client: kube::Client) -> Statuses {
        let accepted = Arc::new(Mutex::new(HashMap::new()));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &resource);
        let map = accepted.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let Ok(mut m) = map.lock() else { return };
                match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let name = o.metadata.name.clone().unwrap_or_default();
                        m.insert(name, is_accepted(&o));
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        m.remove(&o.metadata.name.clone().unwrap_or_default());
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => {}
                }
            }
        });
        Statuses { accepted, task }
    }

    /// (routes seen, routes with our Accepted status).
    pub fn counts(&self) -> (usize, usize) {
        self.accepted
            .lock()
            .map(|m| (m.len(), m.values().filter(|a| **a).count()))
            .unwrap_or((0, 0))
    }

    pub fn accepted(&self, name: &str) -> bool {
        self.accepted
            .lock()
            .map(|m| m.get(name).copied().unwrap_or(false))
            .unwrap_or(false)
    }
}

/// `status.parents[]` has our controllerName with `Accepted: True`.
fn is_accepted(o: &DynamicObject) -> bool {
    let parents = o.data["status"]["parents"].as_array();
    parents.into_iter().flatten().any(|p| {
        p["controllerName"] == gatehouse::model::DEFAULT_CONTROLLER_NAME
            && p["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Accepted" && c["status"] == "True")
    })
}
