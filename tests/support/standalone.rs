//! The walkthrough's world on loopback: demo auth server, echo backend, `gatehouse
//! standalone` on a watched directory, and a real Envoy bootstrapped from `gatehouse bootstrap`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::http::{self, Response};
use super::procs::{Proc, free_port, gatehouse, standalone_command, wait_for_port, workspace_bin};

pub const HOST: &str = "www.example.com";
pub const GATEWAY: &str = "kgateway-system/http";

/// Every process of one test, killed on drop.
pub struct World {
    pub dir: tempfile::TempDir,
    pub manifests: PathBuf,
    pub listener_port: u16,
    pub xds_port: u16,
    pub admin_port: u16,
    /// Gatehouse's `/debug/*` port.
    pub debug_port: u16,
    pub envoy_admin_port: u16,
    pub echo_port: u16,
    pub authz_port: u16,
    pub procs: Vec<Proc>,
    /// Extra `gatehouse standalone` arguments.
    pub gatehouse_args: Vec<String>,
}

impl Drop for World {
    fn drop(&mut self) {
        // GATEHOUSE_KEEP_TEST_DIRS=1 keeps logs and manifests for a post-mortem.
        if std::env::var_os("GATEHOUSE_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            eprintln!("kept test directory {}", dir.keep().display());
        }
    }
}

impl World {
    /// Starts everything with the walkthrough's base manifests and waits for the first 200.
    pub fn start(sotw: bool) -> World {
        World::start_with(sotw, &[])
    }

    /// [`World::start`] with extra `gatehouse standalone` arguments.
    pub fn start_with(sotw: bool, gatehouse_args: &[&str]) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("mkdir");
        let mut w = World {
            manifests,
            listener_port: free_port(),
            xds_port: free_port(),
            admin_port: free_port(),
            debug_port: free_port(),
            envoy_admin_port: free_port(),
            echo_port: free_port(),
            authz_port: free_port(),
            procs: Vec::new(),
            gatehouse_args: gatehouse_args.iter().map(|a| a.to_string()).collect(),
            dir,
        };
        let mut authz = Command::new(workspace_bin("gatehouse-ext-authz"));
        authz.args([
            "--grpc-addr",
            &format!("127.0.0.1:{}", w.authz_port),
            "--http-addr",
            "off",
        ]);
        w.spawn("ext-authz", authz);
        w.start_echo("echo", w.echo_port);
        wait_for_port(w.authz_port, Duration::from_secs(10), "ext-authz");

        for (file, from, to) in [
            (
                "gateway.yaml",
                "port: 8080",
                format!("port: {}", w.listener_port),
            ),
            ("httpbin.yaml", "3000", w.echo_port.to_string()),
            ("ext-authz.yaml", "9000", w.authz_port.to_string()),
        ] {
            let text =
                std::fs::read_to_string(super::repo().join("examples/ext-auth/base").join(file))
                    .expect("read example");
            assert!(text.contains(from), "{file} no longer contains {from:?}");
            w.write(file, &text.replace(from, &to));
        }

        w.start_gatehouse();

        let mut boot = Command::new(gatehouse());
        boot.args(["bootstrap", "--gateway", GATEWAY])
            .args(["--xds-address", &format!("127.0.0.1:{}", w.xds_port)])
            .args(["--admin-port", &w.envoy_admin_port.to_string()]);
        if sotw {
            boot.arg("--sotw");
        }
        let out = boot.output().expect("run gatehouse bootstrap");
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap = w.dir.path().join("bootstrap.yaml");
        std::fs::write(&bootstrap, &out.stdout).expect("write bootstrap");
        let envoy = super::envoy_command(&bootstrap);
        w.spawn("envoy", envoy);
        w.wait_for("the first 200 through Envoy", |r| r.status == 200, &[]);
        w
    }

    /// Starts `gatehouse standalone` on the world's ports and waits until it is ready.
    fn start_gatehouse(&mut self) {
        let mut gh = standalone_command(
            &self.manifests,
            self.xds_port,
            self.admin_port,
            self.debug_port,
        );
        gh.args(&self.gatehouse_args)
            .env("RUST_LOG", "info,gatehouse_xds=debug");
        self.spawn("gatehouse", gh);
        wait_for_port(self.admin_port, Duration::from_secs(10), "gatehouse admin");
        self.wait_until("gatehouse ready", Duration::from_secs(10), |w| {
            w.admin("/readyz").is_some_and(|r| r.status == 200)
        });
    }

    /// Kills Gatehouse (SIGKILL: no goodbye to Envoy) and starts it again on the same ports.
    pub fn restart_gatehouse(&mut self) {
        let i = self
            .procs
            .iter()
            .position(|p| p.name == "gatehouse")
            .expect("gatehouse runs");
        let mut old = self.procs.remove(i);
        let _ = old.child.kill();
        let _ = old.child.wait();
        let _ = std::fs::rename(
            &old.log,
            self.dir.path().join("gatehouse-before-restart.log"),
        );
        self.start_gatehouse();
    }

    /// Starts another echo backend.
    pub fn start_echo(&mut self, name: &str, port: u16) {
        let mut echo = Command::new(workspace_bin("gatehouse-echo"));
        echo.args(["--addr", &format!("127.0.0.1:{port}"), "--name", name]);
        self.spawn(name, echo);
        wait_for_port(port, Duration::from_secs(10), name);
    }

    /// Starts another demo auth server (`gatehouse-ext-authz --name NAME`) on the given gRPC
    /// and/or HTTP ports (`None`: that protocol is off) and waits until it listens.
    pub fn start_authz(&mut self, name: &str, grpc_port: Option<u16>, http_port: Option<u16>) {
        let addr = |p: Option<u16>| p.map_or("off".to_string(), |p| format!("127.0.0.1:{p}"));
        let mut authz = Command::new(workspace_bin("gatehouse-ext-authz"));
        authz
            .args(["--grpc-addr", &addr(grpc_port)])
            .args(["--http-addr", &addr(http_port)])
            .args(["--name", name]);
        self.spawn(name, authz);
        for port in [grpc_port, http_port].into_iter().flatten() {
            wait_for_port(port, Duration::from_secs(10), name);
        }
    }

    /// Envoy's admin endpoint (`/stats`, `/config_dump`, …).
    pub fn envoy_admin(&self, path: &str) -> Option<Response> {
        http::get(self.envoy_admin_port, "localhost", path, &[]).ok()
    }

    /// The value of one Envoy counter or gauge (`/stats`, `NAME: VALUE`), `None` while Envoy
    /// does not have it.
    pub fn envoy_stat(&self, name: &str) -> Option<u64> {
        let body = self.envoy_admin("/stats").map(|r| r.body)?;
        body.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.strip_prefix(": "))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Polls `send` until `check` holds for its response, or fails with the logs.
    pub fn wait_for_response(
        &self,
        what: &str,
        send: impl Fn() -> std::io::Result<Response>,
        check: impl Fn(&Response) -> bool,
    ) -> Response {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            match send() {
                Ok(r) if check(&r) => return r,
                Ok(r) => last = Some(format!("{} {:?} {}", r.status, r.headers, r.body)),
                Err(e) => last = Some(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "timed out waiting for {what}; last: {last:?}\n{}",
            self.logs()
        );
    }

    pub fn spawn(&mut self, name: &str, cmd: Command) {
        let p = Proc::spawn(name, cmd, self.dir.path());
        self.procs.push(p);
    }

    /// Writes a manifest into the watched directory the way editors and `kubectl`-like tools
    /// do: a temporary file renamed into place.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, self.manifests.join(name)).expect("rename manifest");
    }

    /// Number of snapshot builds so far (from `/debug/status`).
    pub fn builds(&self) -> u64 {
        let body = self
            .admin("/debug/status")
            .map(|r| r.body)
            .unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|d| d["builds"].as_u64())
            .unwrap_or(0)
    }

    /// Writes a manifest and waits until Gatehouse has built a snapshot that includes it.
    pub fn write_and_wait(&self, name: &str, text: &str) {
        let before = self.builds();
        self.write(name, text);
        self.wait_until(
            &format!("a build after writing {name}"),
            Duration::from_secs(10),
            |w| w.builds() > before,
        );
    }

    /// Copies one of the walkthrough's step files into the watched directory.
    pub fn apply_step(&self, step: &str) {
        let text =
            std::fs::read_to_string(super::repo().join("examples/ext-auth/steps").join(step))
                .expect("read step");
        self.write(step, &text);
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.manifests.join(name)).expect("remove manifest");
    }

    /// `GET /headers` on the walkthrough host through Envoy.
    pub fn get(&self, headers: &[(&str, &str)]) -> std::io::Result<Response> {
        http::get(self.listener_port, HOST, "/headers", headers)
    }

    /// Gatehouse's admin endpoint.
    /// Gatehouse's admin endpoint, or its debug endpoint for `/debug/*` paths.
    pub fn admin(&self, path: &str) -> Option<Response> {
        let port = if path.starts_with("/debug/") {
            self.debug_port
        } else {
            self.admin_port
        };
        http::get(port, "localhost", path, &[]).ok()
    }

    /// Polls until `check` holds for a response, or fails with the logs.
    pub fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&Response) -> bool,
        headers: &[(&str, &str)],
    ) -> Response {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            match self.get(headers) {
                Ok(r) if check(&r) => return r,
                Ok(r) => last = Some(format!("{} {:?}", r.status, r.headers)),
                Err(e) => last = Some(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "timed out waiting for {what}; last: {last:?}\n{}",
            self.logs()
        );
    }

    /// Polls until `check` holds, or fails with the logs.
    pub fn wait_until(&self, what: &str, timeout: Duration, check: impl Fn(&World) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}\n{}", self.logs());
    }

    /// The value of a metric sample line (`name{labels} value`).
    pub fn metric(&self, sample: &str) -> f64 {
        let body = self.admin("/metrics").map(|r| r.body).unwrap_or_default();
        super::metrics::sample(&body, sample)
            .unwrap_or_else(|| panic!("metric {sample} not found in:\n{body}"))
    }

    /// Every process's log tail.
    pub fn logs(&self) -> String {
        self.procs.iter().map(|p| p.tail(40)).collect()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
