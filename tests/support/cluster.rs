//! The walkthrough's world against a real API server: demo servers in a network namespace,
//! `gatehouse controller` replicas, and a real Envoy.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;

use super::apiserver::{self, ApiServer};
use super::http::{self, Response};
use super::procs::{Proc, free_port, gatehouse, workspace_bin};
use super::testnet::TestNet;

pub const HOST: &str = "www.example.com";
pub const GATEWAY: &str = "kgateway-system/http";
/// The name in the controller's xDS server certificate, which the test proxies verify.
pub const XDS_SERVER_NAME: &str = "gatehouse.test.svc";
const AUTHZ_PORT: u16 = 9000;
const ECHO_PORT: u16 = 3000;

/// One controller replica.
pub struct Replica {
    pub identity: String,
    pub admin_port: u16,
    pub xds_port: u16,
    pub proc: Proc,
}

pub struct ClusterWorld {
    pub api: ApiServer,
    pub net: TestNet,
    pub dir: tempfile::TempDir,
    pub listener_port: u16,
    pub envoy_admin_port: u16,
    pub replicas: Vec<Replica>,
    pub procs: Vec<Proc>,
    pub client: kube::Client,
}

impl ClusterWorld {
    /// API server with every CRD, demo servers in a network namespace, and the walkthrough's
    /// base objects (pointing at them). No controller yet.
    pub async fn start() -> ClusterWorld {
        ClusterWorld::start_on(ApiServer::start()).await
    }

    /// [`ClusterWorld::start`] on an API server the caller started (e.g. with extra tokens).
    pub async fn start_on(api: ApiServer) -> ClusterWorld {
        api.install_gateway_api_and_gatehouse_crds().await;
        let net = TestNet::new("ctl");
        let dir = tempfile::tempdir().expect("tempdir");
        let client = api.client().await;
        let mut w = ClusterWorld {
            api,
            net,
            dir,
            listener_port: free_port(),
            envoy_admin_port: free_port(),
            replicas: Vec::new(),
            procs: Vec::new(),
            client,
        };
        let ip = w.net.host_ip().to_string();
        let mut authz = w.net.command(workspace_bin("gatehouse-ext-authz"));
        authz.args([
            "--grpc-addr",
            &format!("{ip}:{AUTHZ_PORT}"),
            "--http-addr",
            "off",
        ]);
        w.procs.push(Proc::spawn("ext-authz", authz, w.dir.path()));
        let mut echo = w.net.command(workspace_bin("gatehouse-echo"));
        echo.args(["--addr", &format!("{ip}:{ECHO_PORT}"), "--name", "httpbin"]);
        w.procs.push(Proc::spawn("echo", echo, w.dir.path()));
        w.wait_tcp(&ip, ECHO_PORT).await;
        w.wait_tcp(&ip, AUTHZ_PORT).await;

        w.apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kgateway-system}\n")
            .await;
        for file in ["gateway.yaml", "httpbin.yaml", "ext-authz.yaml"] {
            let text =
                std::fs::read_to_string(super::repo().join("examples/ext-auth/base").join(file))
                    .expect("read example");
            let text = text
                .replace("127.0.0.1", &ip)
                .replace("port: 8080", &format!("port: {}", w.listener_port));
            w.apply_yaml(&text).await;
        }
        w
    }

    async fn wait_tcp(&self, ip: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{ip}:{port} in the test namespace did not come up\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a controller replica. A port taken between choosing and binding it (other tests
    /// run in parallel) makes the process exit at once; it is retried on new ports.
    pub fn start_replica(&mut self, identity: &str) -> usize {
        let kubeconfig = self.api.kubeconfig_path().to_path_buf();
        self.start_replica_as(identity, &kubeconfig, "default")
    }

    /// [`ClusterWorld::start_replica`] with another kubeconfig (another user's rights) and
    /// another controller namespace (Lease and CA Secret).
    pub fn start_replica_as(
        &mut self,
        identity: &str,
        kubeconfig: &std::path::Path,
        namespace: &str,
    ) -> usize {
        self.start_replica_with(identity, kubeconfig, namespace, &[])
    }

    /// [`ClusterWorld::start_replica_as`] with extra `gatehouse controller` arguments.
    pub fn start_replica_with(
        &mut self,
        identity: &str,
        kubeconfig: &std::path::Path,
        namespace: &str,
        extra: &[&str],
    ) -> usize {
        for _attempt in 0..3 {
            let (xds_port, admin_port, debug_port) = (free_port(), free_port(), free_port());
            let mut cmd = Command::new(gatehouse());
            cmd.arg("controller")
                .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
                .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
                .args(["--debug-address", &format!("127.0.0.1:{debug_port}")])
                .args([
                    "--listener-address",
                    "127.0.0.1",
                    "--lease-namespace",
                    namespace,
                    "--identity",
                    identity,
                    "--namespace",
                    namespace,
                    "--xds-server-name",
                    XDS_SERVER_NAME,
                ])
                .args(extra)
                .env("KUBECONFIG", kubeconfig)
                .env("RUST_LOG", "info,gatehouse=debug");
            let mut proc = Proc::spawn(&format!("gatehouse-{identity}"), cmd, self.dir.path());
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok() {
                    self.replicas.push(Replica {
                        identity: identity.into(),
                        admin_port,
                        xds_port,
                        proc,
                    });
                    return self.replicas.len() - 1;
                }
                if let Ok(Some(status)) = proc.child.try_wait() {
                    let log = proc.tail(20);
                    assert!(
                        log.contains("cannot listen"),
                        "replica {identity} exited ({status}):\n{log}"
                    );
                    break; // port taken: try again
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {identity} did not open its admin port\n{}",
                    proc.tail(40)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("replica {identity}: no free ports after 3 attempts");
    }

    /// Writes the proxy certificate the controller provisioned for `namespace/gateway` into
    /// a directory (as its Secret volume would) and returns the directory.
    pub async fn proxy_credentials(&self, namespace: &str, gateway: &str) -> PathBuf {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), namespace);
        let name = format!("gatehouse-{gateway}-xds-tls");
        let deadline = Instant::now() + Duration::from_secs(30);
        let secret = loop {
            if let Ok(Some(s)) = secrets.get_opt(&name).await {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the controller did not provision Secret {namespace}/{name}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let dir = self
            .dir
            .path()
            .join(format!("xds-tls-{namespace}-{gateway}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (key, value) in secret.data.unwrap_or_default() {
            std::fs::write(dir.join(key), value.0).expect("write credential");
        }
        dir
    }

    /// Starts Envoy against replica `i`, authenticated with the provisioned certificate, and
    /// waits for the first 200.
    pub async fn start_envoy(&mut self, i: usize) {
        let tls_dir = self.proxy_credentials("kgateway-system", "http").await;
        self.launch_envoy(i, &tls_dir).await;
        // This Envoy stands in for the provisioned Deployment's pod: report the Deployment
        // available as its controller would (no kubelet here).
        self.set_proxy_replicas("kgateway-system", "http", 1).await;
    }

    /// Starts Envoy against replica `i` (running with `--provision false`) with a client
    /// certificate issued here from the controller's CA, as an operator running their own
    /// proxies would, and waits for the first 200.
    pub async fn start_envoy_without_provisioning(&mut self, i: usize) {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), "default");
        let deadline = Instant::now() + Duration::from_secs(30);
        let secret = loop {
            if let Ok(Some(s)) = secrets.get_opt("gatehouse-xds-ca").await {
                break s;
            }
            assert!(Instant::now() < deadline, "no CA Secret\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let data = secret.data.unwrap_or_default();
        let text = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf-8");
        let ca = gatehouse::pki::Ca::from_pem(&text("ca.crt"), &text("ca.key")).expect("CA");
        let gateway = gatehouse::store::ObjKey::new("kgateway-system", "http");
        let issued = ca
            .issue_proxy(&gateway, time::OffsetDateTime::now_utc())
            .expect("issue");
        let dir = self.dir.path().join("xds-tls-own");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("tls.crt"), issued.cert_pem).expect("write");
        std::fs::write(dir.join("tls.key"), issued.key_pem).expect("write");
        std::fs::write(dir.join("ca.crt"), text("ca.crt")).expect("write");
        self.launch_envoy(i, &dir).await;
    }

    async fn launch_envoy(&mut self, i: usize, tls_dir: &std::path::Path) {
        let xds_port = self.replicas[i].xds_port;
        let out = Command::new(gatehouse())
            .args([
                "bootstrap",
                "--gateway",
                GATEWAY,
                "--xds-address",
                &format!("127.0.0.1:{xds_port}"),
                "--xds-server-name",
                XDS_SERVER_NAME,
            ])
            .arg("--xds-tls-dir")
            .arg(tls_dir)
            .args(["--admin-port", &self.envoy_admin_port.to_string()])
            .output()
            .expect("bootstrap");
        assert!(out.status.success());
        let file = self.dir.path().join("bootstrap.yaml");
        std::fs::write(&file, &out.stdout).expect("write bootstrap");
        let envoy = super::envoy_command(&file);
        self.procs
            .push(Proc::spawn("envoy", envoy, self.dir.path()));
        self.wait_for_code("the first 200 through Envoy", HOST, 200)
            .await;
    }

    /// Stops every Envoy this world started (its xDS stream ends with it).
    pub fn stop_envoy(&mut self) {
        for p in self.procs.iter_mut().filter(|p| p.name == "envoy") {
            p.terminate(Duration::from_secs(10));
        }
        self.procs.retain(|p| p.name != "envoy");
    }

    /// Writes the provisioned proxy Deployment's status as the Deployment controller would
    /// with `available` pods ready (this API server runs no controllers and no kubelet).
    pub async fn set_proxy_replicas(&self, namespace: &str, gateway: &str, available: i32) {
        use k8s_openapi::api::apps::v1::Deployment;
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let name = format!("gatehouse-{gateway}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let deployment = loop {
            if let Ok(Some(d)) = api.get_opt(&name).await {
                break d;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the controller did not provision Deployment {namespace}/{name}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The rollout of the Deployment as it stands is complete.
        let status = serde_json::json!({"status": {
            "observedGeneration": deployment.metadata.generation,
            "replicas": available, "readyReplicas": available,
            "availableReplicas": available, "updatedReplicas": available,
        }});
        api.patch_status(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap_or_else(|e| panic!("Deployment {namespace}/{name} status: {e}"));
    }

    /// Server-side applies every document of `yaml`.
    pub async fn apply_yaml(&self, yaml: &str) {
        for doc in documents(yaml) {
            apiserver::apply(&self.client, &doc)
                .await
                .unwrap_or_else(|e| panic!("apply {doc}: {e}"));
        }
    }

    /// Applies one of the walkthrough's steps.
    pub async fn apply_step(&self, step: &str) {
        let text =
            std::fs::read_to_string(super::repo().join("examples/ext-auth/steps").join(step))
                .expect("read step");
        self.apply_yaml(&text).await;
    }

    /// Deletes every object of `yaml`.
    pub async fn delete_yaml(&self, yaml: &str) {
        for doc in documents(yaml) {
            let api = dynamic_api(&self.client, &doc).await;
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            api.delete(name, &DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("delete {name}: {e}"));
        }
    }

    pub async fn delete_step(&self, step: &str) {
        let text =
            std::fs::read_to_string(super::repo().join("examples/ext-auth/steps").join(step))
                .expect("read step");
        self.delete_yaml(&text).await;
    }

    /// An object's `status`, by apiVersion/kind/namespace/name.
    pub async fn status(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Value {
        let doc = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}});
        let api = dynamic_api(&self.client, &doc).await;
        match api.get_opt(name).await {
            Ok(Some(o)) => o.data.get("status").cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Polls an object's status until `check` holds.
    pub async fn wait_status(
        &self,
        what: &str,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.status(api_version, kind, ns, name).await;
            if check(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out waiting for {what}; last status: {last:#}\n{}",
            self.logs()
        );
    }

    /// `GET /headers` on `host` through Envoy.
    pub fn get(&self, host: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
        http::get(self.listener_port, host, "/headers", headers)
    }

    /// Polls until `GET /headers` on `host` answers `status`.
    pub async fn wait_for_code(&self, what: &str, host: &str, status: u16) -> Response {
        self.wait_for(what, host, |r| r.status == status, &[]).await
    }

    /// Polls until a response satisfies `check`.
    pub async fn wait_for(
        &self,
        what: &str,
        host: &str,
        check: impl Fn(&Response) -> bool,
        headers: &[(&str, &str)],
    ) -> Response {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            match self.get(host, headers) {
                Ok(r) if check(&r) => return r,
                Ok(r) => last = Some(format!("{} {:?}", r.status, r.headers)),
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "timed out waiting for {what}; last: {last:?}\n{}",
            self.logs()
        );
    }

    /// A metric of replica `i`.
    pub fn metric(&self, i: usize, sample: &str) -> f64 {
        let body = http::get(self.replicas[i].admin_port, "localhost", "/metrics", &[])
            .map(|r| r.body)
            .unwrap_or_default();
        super::metrics::sample(&body, sample)
            .unwrap_or_else(|| panic!("metric {sample} not found:\n{body}"))
    }

    /// Replica `i`'s `/readyz` status code (0 when it does not answer).
    pub fn readyz(&self, i: usize) -> u16 {
        http::get(self.replicas[i].admin_port, "localhost", "/readyz", &[])
            .map(|r| r.status)
            .unwrap_or(0)
    }

    pub fn logs(&self) -> String {
        let mut out: String = self.procs.iter().map(|p| p.tail(30)).collect();
        for r in &self.replicas {
            out.push_str(&r.proc.tail(60));
        }
        out.push_str(&self.api.logs(20));
        out
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .filter_map(|d| yaml_serde::from_str::<Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

async fn dynamic_api(client: &kube::Client, doc: &Value) -> Api<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (resource, caps) =
        kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
            .await
            .unwrap_or_else(|e| panic!("discover {api_version} {kind}: {e}"));
    if caps.scope == Scope::Namespaced {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}
