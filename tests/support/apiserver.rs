//! A real kube-apiserver (v1.33, see tests/kube-apiserver/go.mod) and etcd on 127.0.0.1, one
//! pair per test, state in a temporary directory, killed on drop.
//!
//! The binaries come from `make kube-apiserver` (scripts/kube-apiserver.sh), cached outside the
//! clone; `$GATEHOUSE_KUBE_BIN_DIR` overrides where they are. Missing binaries make
//! [`ApiServer::start`] panic — tests never skip.
//!
//! Only the API server runs: no controller-manager (no garbage collection, no namespace
//! finalization, no EndpointSlice controller), no scheduler. Authentication is by static bearer
//! tokens (`--token-auth-file`); the admin token is in `system:masters`. Authorization is
//! `Node,RBAC`, so tokens added with [`ApiServer::start_with_tokens`] get only what RBAC
//! objects grant them. TLS: the kubeconfig trusts the CA the API server generated in its cert
//! dir (no `insecure-skip-tls-verify`).
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Client, Config, ResourceExt};
use serde_json::Value;

use super::procs::{Proc, free_port};

/// Field manager of everything the helpers apply.
pub const FIELD_MANAGER: &str = "gatehouse-tests";
/// The admin user's name; its token is in `system:masters`.
pub const ADMIN_USER: &str = "admin";

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A bearer token the API server accepts: `(token, user, uid, groups)`.
pub type TokenLine<'a> = (&'a str, &'a str, &'a str, &'a [&'a str]);

#[derive(Clone, Debug)]
struct TokenEntry {
    token: String,
    user: String,
    uid: String,
    groups: Vec<String>,
}

/// etcd plus kube-apiserver on free loopback ports.
pub struct ApiServer {
    // Field order is drop order: the API server goes before etcd, the directory last.
    apiserver: Option<Proc>,
    etcd: Proc,
    bin_dir: PathBuf,
    port: u16,
    etcd_port: u16,
    tokens: Vec<TokenEntry>,
    kubeconfig: PathBuf,
    starts: u32,
    spawned_at: Instant,
    last_ready_after: Duration,
    dir: tempfile::TempDir,
}

/// The directory holding `kube-apiserver` and `etcd`: `$GATEHOUSE_KUBE_BIN_DIR`, else what
/// `scripts/kube-apiserver.sh path` prints. Panics, naming the fix, when they are not built.
pub fn bin_dir() -> PathBuf {
    let dir = match std::env::var_os("GATEHOUSE_KUBE_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let script = super::repo().join("scripts/kube-apiserver.sh");
            let out = Command::new("bash")
                .arg(&script)
                .arg("path")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {} path: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} path failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    assert!(
        dir.join("stamp").is_file()
            && dir.join("kube-apiserver").is_file()
            && dir.join("etcd").is_file(),
        "kube-apiserver and etcd are not built in {} — run `make kube-apiserver` \
         (scripts/kube-apiserver.sh build; `make test` does it)",
        dir.display()
    );
    dir
}

impl ApiServer {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers 200. Blocks (a few
    /// seconds); fine inside `#[tokio::test]`, it uses no runtime of the caller.
    pub fn start() -> ApiServer {
        ApiServer::start_with_tokens(&[])
    }

    /// Like [`ApiServer::start`], with extra bearer tokens: `(token, user, uid, groups)`. Such
    /// users get only what RBAC grants them (or everything with group `system:masters`).
    pub fn start_with_tokens(extra: &[TokenLine<'_>]) -> ApiServer {
        let bin_dir = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-apiserver-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path();
        std::fs::create_dir_all(path.join("certs")).expect("mkdir certs");

        let mut tokens = vec![TokenEntry {
            token: random_token(),
            user: ADMIN_USER.into(),
            uid: "admin-uid".into(),
            groups: vec!["system:masters".into()],
        }];
        for (token, user, uid, groups) in extra {
            assert!(
                !token.contains(',') && !user.contains(',') && !uid.contains(','),
                "tokens, users and uids must not contain commas"
            );
            assert!(
                tokens.iter().all(|t| t.token != *token),
                "duplicate token {token}"
            );
            tokens.push(TokenEntry {
                token: token.to_string(),
                user: user.to_string(),
                uid: uid.to_string(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            });
        }
        let csv: String = tokens
            .iter()
            .map(|t| {
                format!(
                    "{},{},{},\"{}\"\n",
                    t.token,
                    t.user,
                    t.uid,
                    t.groups.join(",")
                )
            })
            .collect();
        std::fs::write(path.join("tokens.csv"), csv).expect("write tokens.csv");

        let key = path.join("sa.key");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl (needed for the service account key): {e}")
            });
        assert!(
            status.status.success(),
            "openssl genrsa failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );

        let (etcd, etcd_port) = spawn_etcd(&bin_dir, path);

        let mut server = ApiServer {
            apiserver: None,
            etcd,
            bin_dir,
            port: free_port(),
            etcd_port,
            tokens,
            kubeconfig: path.join("kubeconfig"),
            starts: 0,
            spawned_at: Instant::now(),
            last_ready_after: Duration::ZERO,
            dir,
        };
        // A port picked free can be taken before the server binds it (by another test's
        // process or an outgoing connection): then try another one.
        for attempt in 1.. {
            server.spawn_apiserver();
            server.write_kubeconfigs();
            match server.try_wait_ready() {
                Ok(()) => break,
                Err(log) if attempt < 3 && log.contains("address already in use") => {
                    eprintln!(
                        "port {} was taken; starting kube-apiserver on another",
                        server.port
                    );
                    server.apiserver = None;
                    server.port = free_port();
                }
                Err(_) => panic!(
                    "kube-apiserver exited before it was ready\n{}",
                    server.logs(40)
                ),
            }
        }
        server
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The API server's port (the same across [`ApiServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// etcd's client port.
    pub fn etcd_port(&self) -> u16 {
        self.etcd_port
    }

    /// The state directory: logs (`etcd.log`, `apiserver-N.log`), certs, tokens, kubeconfigs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the serving certificate (from the API server's `--cert-dir`).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A kubeconfig for the admin user (`system:masters`): server URL, CA, bearer token.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin user's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.tokens[0].token
    }

    /// The token of `user` (the admin or one given to [`ApiServer::start_with_tokens`]).
    pub fn token_for(&self, user: &str) -> &str {
        &self
            .tokens
            .iter()
            .find(|t| t.user == user)
            .unwrap_or_else(|| panic!("no token for user {user}: pass it to start_with_tokens"))
            .token
    }

    /// A kubeconfig authenticating as `user` (written at start, next to the admin's).
    pub fn kubeconfig_for(&self, user: &str) -> PathBuf {
        self.token_for(user);
        self.dir.path().join(kubeconfig_file(user))
    }

    /// A client authenticated as the admin.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// A client authenticated as `user`.
    pub async fn client_for(&self, user: &str) -> Client {
        client_from(&self.kubeconfig_for(user)).await
    }

    /// How long the last (re)start took from spawning the process to `/readyz` answering 200.
    pub fn last_ready_after(&self) -> Duration {
        self.last_ready_after
    }

    /// Whether the API server process runs (etcd always does until drop).
    pub fn is_running(&mut self) -> bool {
        match &mut self.apiserver {
            Some(p) => matches!(p.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Resident memory of the API server and etcd, in KiB (from /proc).
    pub fn rss_kib(&self) -> (u64, u64) {
        let rss = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                })
                .unwrap_or(0)
        };
        let api = self
            .apiserver
            .as_ref()
            .map(|p| rss(p.child.id()))
            .unwrap_or(0);
        (api, rss(self.etcd.child.id()))
    }

    /// Stops the API server (SIGTERM, then SIGKILL after 15 s); etcd keeps running, so
    /// [`ApiServer::restart`] brings back the same objects. Clients see connections refused.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.apiserver.take()
            && p.terminate(Duration::from_secs(15)).is_none()
        {
            eprintln!("kube-apiserver ignored SIGTERM for 15 s; killing it");
        }
        // Dropping the process kills and reaps it if it is still there.
    }

    /// Kills the API server at once (SIGKILL), like a crash; etcd keeps running.
    pub fn kill(&mut self) {
        self.apiserver = None;
    }

    /// Starts the API server again (stopping it first if it runs) on the same port with the
    /// same certificates and tokens, and waits until it is ready. Blocks a few seconds.
    pub fn restart(&mut self) {
        self.restart_no_wait();
        self.wait_ready();
    }

    /// Starts the API server again without waiting; see [`ApiServer::wait_ready_async`].
    pub fn restart_no_wait(&mut self) {
        self.stop();
        self.spawn_apiserver();
    }

    /// Blocks until `/readyz` answers 200; panics with the log's tail if the process exits or
    /// is not ready within 90 s.
    pub fn wait_ready(&mut self) {
        if self.try_wait_ready().is_err() {
            panic!(
                "kube-apiserver exited before it was ready\n{}",
                self.logs(40)
            );
        }
    }

    /// Like [`ApiServer::wait_ready`], but an exit is `Err(the API server's log)`.
    fn try_wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let cancel = Arc::new(AtomicBool::new(false));
        let probe = {
            let (kubeconfig, cancel) = (self.kubeconfig.clone(), cancel.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime")
                    .block_on(probe_ready(&kubeconfig, deadline, &cancel))
            })
        };
        while !probe.is_finished() {
            if !self.is_running() {
                cancel.store(true, Ordering::Relaxed);
                let log = self.apiserver.as_ref().map(|p| p.log.clone());
                return Err(log
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ready = probe.join().expect("readiness probe thread");
        assert!(
            ready,
            "kube-apiserver not ready within {READY_TIMEOUT:?}\n{}",
            self.logs(40)
        );
        self.last_ready_after = self.spawned_at.elapsed();
        Ok(())
    }

    /// Waits until `/readyz` answers 200, without blocking the caller's runtime.
    pub async fn wait_ready_async(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = probe_client(&self.kubeconfig).await;
        loop {
            if ready_once(&client).await {
                self.last_ready_after = self.spawned_at.elapsed();
                return;
            }
            if !self.is_running() {
                panic!(
                    "kube-apiserver exited before it was ready\n{}",
                    self.logs(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready within {READY_TIMEOUT:?}\n{}",
                self.logs(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of etcd's and the API server's logs, for failure messages.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = self.etcd.tail(lines);
        match &self.apiserver {
            Some(p) => out.push_str(&p.tail(lines)),
            None => {
                let log = self
                    .dir
                    .path()
                    .join(format!("apiserver-{}.log", self.starts));
                out.push_str(&format!(
                    "--- kube-apiserver (stopped; last log {}) ---\n",
                    log.display()
                ));
            }
        }
        out
    }

    /// Applies every CustomResourceDefinition in `paths` (YAML files, or directories read
    /// recursively for `*.yaml`/`*.yml`) with server-side apply, waits until each is Established,
    /// then applies the other objects of those files (e.g. the Gateway API's
    /// ValidatingAdmissionPolicy and its binding, which v1.33 serves). Panics on any failure.
    /// Returns the CRD names.
    pub async fn install_crds<P: AsRef<Path>>(&self, paths: &[P]) -> Vec<String> {
        let client = self.client().await;
        let docs = read_documents(paths);
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut names = Vec::new();
        for (file, doc) in docs.iter().filter(|(_, d)| is_crd(d)) {
            let crd: CustomResourceDefinition =
                serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
                    panic!("{}: not a CustomResourceDefinition: {e}", file.display())
                });
            let name = crd.name_any();
            crds.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("installing CRD {name} from {}: {e}", file.display()));
            names.push(name);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for name in &names {
            loop {
                let crd = crds.get(name).await.expect("get CRD");
                let established = crd
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "CRD {name} not Established within 30 s: {:?}",
                    crd.status
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for (file, doc) in docs.iter().filter(|(_, d)| !is_crd(d)) {
            apply(&client, doc).await.unwrap_or_else(|e| {
                panic!("applying {} from {}: {e}", describe(doc), file.display())
            });
        }
        names
    }

    /// The Gateway API v1.5.1 standard channel (vendored in
    /// `tests/testdata/gateway-api/v1.5.1/standard/`) and Gatehouse's `crds/`. Panics if the Gateway API directory is missing.
    pub async fn install_gateway_api_and_gatehouse_crds(&self) -> Vec<String> {
        let gateway_api = gateway_api_standard_dir();
        self.install_crds(&[gateway_api, super::repo().join("crds")])
            .await
    }

    /// Applies every object of `paths` (files or directories) with server-side apply, in file
    /// order, stopping at the first error.
    pub async fn apply_files<P: AsRef<Path>>(
        &self,
        paths: &[P],
    ) -> kube::Result<Vec<DynamicObject>> {
        let client = self.client().await;
        let mut out = Vec::new();
        for (_, doc) in read_documents(paths) {
            out.push(apply(&client, &doc).await?);
        }
        Ok(out)
    }

    fn spawn_apiserver(&mut self) {
        assert!(self.apiserver.is_none(), "kube-apiserver already runs");
        self.starts += 1;
        let path = self.dir.path();
        let key = path.join("sa.key");
        let mut cmd = Command::new(self.bin_dir.join("kube-apiserver"));
        cmd.arg(format!(
            "--etcd-servers=http://127.0.0.1:{}",
            self.etcd_port
        ))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={}", self.port))
        .arg(format!("--cert-dir={}", path.join("certs").display()))
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!("--service-account-key-file={}", key.display()))
        .arg(format!(
            "--service-account-signing-key-file={}",
            key.display()
        ))
        .arg(format!(
            "--token-auth-file={}",
            path.join("tokens.csv").display()
        ))
        .arg("--authorization-mode=Node,RBAC")
        .arg("--service-cluster-ip-range=10.96.0.0/24")
        .arg("--enable-priority-and-fairness=false")
        .arg("--profiling=false");
        let name = format!("apiserver-{}", self.starts);
        self.apiserver = Some(Proc::spawn(&name, cmd, path));
        self.spawned_at = Instant::now();
    }

    /// Waits for the serving certificate the API server generates on first start, then writes
    /// `ca.crt` and one kubeconfig per token.
    fn write_kubeconfigs(&mut self) {
        let certs = self.dir.path().join("certs");
        let deadline = Instant::now() + Duration::from_secs(30);
        // The key is written after the certificate: once it exists, the certificate is whole.
        while !certs.join("apiserver.key").is_file() {
            if !self.is_running() {
                panic!("kube-apiserver exited at start\n{}", self.logs(40));
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver wrote no certificate in {} within 30 s\n{}",
                certs.display(),
                self.logs(40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        let pem = std::fs::read_to_string(certs.join("apiserver.crt")).expect("read apiserver.crt");
        // apiserver.crt is the serving certificate followed by the self-signed CA that signed
        // it (client-go's GenerateSelfSignedCertKey); trust the CA.
        let blocks: Vec<&str> = pem
            .split_inclusive("-----END CERTIFICATE-----")
            .map(str::trim)
            .filter(|b| b.starts_with("-----BEGIN CERTIFICATE-----"))
            .collect();
        let ca = blocks.last().unwrap_or_else(|| {
            panic!(
                "no certificate in {}",
                certs.join("apiserver.crt").display()
            )
        });
        std::fs::write(self.ca_path(), format!("{ca}\n")).expect("write ca.crt");
        for (i, t) in self.tokens.iter().enumerate() {
            let file = if i == 0 {
                self.kubeconfig.clone()
            } else {
                self.dir.path().join(kubeconfig_file(&t.user))
            };
            let yaml = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: gatehouse-test\n  cluster:\n    \
                 server: {}\n    certificate-authority: {}\ncontexts:\n- name: {user}\n  context:\n    \
                 cluster: gatehouse-test\n    user: {user}\ncurrent-context: {user}\nusers:\n- name: {user}\n  \
                 user:\n    token: {}\n",
                self.url(),
                self.ca_path().display(),
                t.token,
                user = t.user,
            );
            std::fs::write(file, yaml).expect("write kubeconfig");
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // GATEHOUSE_KEEP_TEST_DIRS=1 keeps logs and state for a post-mortem.
        if std::env::var_os("GATEHOUSE_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            eprintln!("kept API server directory {}", dir.keep().display());
        }
    }
}

/// Starts etcd on free loopback ports (another set if one was taken meanwhile) and waits until it
/// accepts connections. Returns it with its client port.
fn spawn_etcd(bin_dir: &Path, dir: &Path) -> (Proc, u16) {
    for attempt in 1..=3 {
        let (port, peer_port, metrics_port) = (free_port(), free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(bin_dir.join("etcd"));
        cmd.arg("--name=gatehouse")
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("etcd-{attempt}")).display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=gatehouse={peer_url}"))
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{metrics_port}"
            ))
            // Test data needs no durability; fsync dominates etcd's latency on slow disks.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let mut etcd = Proc::spawn("etcd", cmd, dir);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let exited = !matches!(etcd.child.try_wait(), Ok(None));
            if !exited && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (etcd, port);
            }
            if exited {
                let log = std::fs::read_to_string(&etcd.log).unwrap_or_default();
                if attempt < 3 && log.contains("address already in use") {
                    eprintln!("a port of etcd was taken; starting it on others");
                    break;
                }
                panic!("etcd exited at start\n{}", etcd.tail(30));
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not listen on 127.0.0.1:{port} within 30 s\n{}",
                etcd.tail(30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// `tests/testdata/gateway-api/v1.5.1/standard/` (vendored); panics if absent.
pub fn gateway_api_standard_dir() -> PathBuf {
    let dir = super::repo().join("tests/testdata/gateway-api/v1.5.1/standard");
    assert!(
        dir.is_dir(),
        "the Gateway API v1.5.1 standard CRDs are missing: expected {} (vendored in tests/testdata/gateway-api)",
        dir.display()
    );
    dir.canonicalize().expect("canonical path")
}

/// A kube client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Client {
    Client::try_from(config_from(kubeconfig).await).expect("kube client")
}

/// The kube client configuration of a kubeconfig file.
pub async fn config_from(kubeconfig: &Path) -> Config {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()))
}

/// Server-side applies one object of any kind the server knows (looked up by discovery);
/// namespaced objects without a namespace go to `default`.
pub async fn apply(client: &Client, doc: &Value) -> kube::Result<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
    let obj: DynamicObject =
        serde_json::from_value(doc.clone()).map_err(kube::Error::SerdeError)?;
    let name = obj.name_any();
    let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        let ns = obj.namespace().unwrap_or_else(|| "default".into());
        Api::namespaced_with(client.clone(), &ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
}

/// File name of `user`'s kubeconfig: KUBECONFIG is a colon-separated list, and service
/// account users (`system:serviceaccount:NS:NAME`) are full of colons.
fn kubeconfig_file(user: &str) -> String {
    format!("kubeconfig-{}", user.replace(':', "_"))
}

/// Every YAML document in `paths` (files, or directories read recursively for `*.yaml` and
/// `*.yml`, sorted), with its file; empty documents are left out, `List`s flattened.
pub fn read_documents<P: AsRef<Path>>(paths: &[P]) -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p.as_ref(), &mut files);
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for (i, de) in yaml_serde::Deserializer::from_str(&text).enumerate() {
            let doc: Value = serde::Deserialize::deserialize(de).unwrap_or_else(|e| {
                panic!("{}: document {}: invalid YAML: {e}", file.display(), i + 1)
            });
            flatten(doc, &file, &mut out);
        }
    }
    out
}

fn flatten(doc: Value, file: &Path, out: &mut Vec<(PathBuf, Value)>) {
    if doc.is_null() {
        return;
    }
    let is_list = doc["kind"].as_str().is_some_and(|k| k.ends_with("List"));
    match doc.get("items").and_then(Value::as_array) {
        Some(items) if is_list => {
            for item in items.clone() {
                flatten(item, file, out);
            }
        }
        _ => out.push((file.to_path_buf(), doc)),
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                collect_files(&entry, out);
            } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(entry);
            }
        }
    } else {
        assert!(path.is_file(), "{} does not exist", path.display());
        out.push(path.to_path_buf());
    }
}

fn is_crd(doc: &Value) -> bool {
    doc["kind"] == "CustomResourceDefinition"
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
}

fn describe(doc: &Value) -> String {
    let ns = doc["metadata"]["namespace"].as_str();
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    format!(
        "{} {}{}",
        doc["kind"].as_str().unwrap_or("?"),
        ns.map(|n| format!("{n}/")).unwrap_or_default(),
        name
    )
}

async fn ready_once(client: &Client) -> bool {
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("request");
    matches!(client.request_text(req).await, Ok(body) if body.trim() == "ok")
}

/// A client that gives up quickly: readiness probes must not hang on a half-started server.
async fn probe_client(kubeconfig: &Path) -> Client {
    let mut config = config_from(kubeconfig).await;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    Client::try_from(config).expect("kube client")
}

async fn probe_ready(kubeconfig: &Path, deadline: Instant, cancel: &AtomicBool) -> bool {
    let client = probe_client(kubeconfig).await;
    while Instant::now() < deadline && !cancel.load(Ordering::Relaxed) {
        if ready_once(&client).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}
