//! Gatehouse standalone over a generated manifest directory, with real backends and Envoy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gatehouse::scale::{Scale, Targets, manifests};

use crate::procs::{Proc, bin, envoy, free_port, wait_port, wait_port_on};

pub struct World {
    pub dir: tempfile::TempDir,
    pub manifests: PathBuf,
    pub targets: Targets,
    pub xds_port: u16,
    pub admin_port: u16,
    pub gatehouse: Proc,
    pub others: Vec<Proc>,
}

impl Drop for World {
    fn drop(&mut self) {
        // GATEHOUSE_BENCH_KEEP=1 keeps logs and manifests (with the GATEHOUSE_BENCH_LOG and
        // GATEHOUSE_BENCH_ENVOY_LOG levels) for a look into a run.
        if std::env::var_os("GATEHOUSE_BENCH_KEEP").is_some()
            && let Ok(d) = tempfile::tempdir()
        {
            let dir = std::mem::replace(&mut self.dir, d);
            eprintln!("kept {}", dir.keep().display());
        }
    }
}

impl World {
    /// Backends and Gatehouse over `scale`'s manifests; no Envoy yet.
    pub fn start(scale: &Scale) -> anyhow::Result<World> {
        World::start_with(|targets| Ok(manifests_text(scale, targets)))
    }

    /// Backends and Gatehouse over the manifests `text` makes for the backends' ports.
    pub fn start_with(
        text: impl FnOnce(&Targets) -> anyhow::Result<String>,
    ) -> anyhow::Result<World> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-bench-")
            .tempdir()?;
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests)?;
        let (targets, others) = backends(dir.path(), "127.0.0.1")?;
        std::fs::write(manifests.join("all.yaml"), text(&targets)?)?;
        let (xds_port, admin_port, debug_port) = (free_port()?, free_port()?, free_port()?);
        let mut gh = Command::new(bin("gatehouse")?);
        gh.args([
            "standalone",
            "--listener-address",
            "127.0.0.1",
            "--manifests",
        ])
        .arg(&manifests)
        .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
        .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
        .args(["--debug-address", &format!("127.0.0.1:{debug_port}")])
        .env("RUST_LOG", log_level("GATEHOUSE_BENCH_LOG", "warn"));
        let gatehouse = Proc::spawn("gatehouse", gh, dir.path())?;
        wait_port(admin_port, "gatehouse admin")?;
        let w = World {
            dir,
            manifests,
            targets,
            xds_port,
            admin_port,
            gatehouse,
            others,
        };
        w.wait_ready()?;
        Ok(w)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.builds() == 0 {
            if Instant::now() > deadline {
                bail!("gatehouse never built\n{}", self.gatehouse.tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Snapshot builds so far, from /metrics (cheap; /debug/status serializes every status
    /// and would dominate the CPU being measured at 10,000 routes).
    pub fn builds(&self) -> u64 {
        self.counter("gatehouse_snapshot_builds_total")
    }

    /// xDS responses Envoy proxies accepted so far, from /metrics.
    pub fn acks(&self) -> u64 {
        self.counter("gatehouse_xds_acks_total")
    }

    fn counter(&self, name: &str) -> u64 {
        counter(self.admin_port, name)
    }

    /// Something that writes into the watched directory from another thread.
    pub fn writer(&self) -> Writer {
        Writer {
            tmp: self.dir.path().to_path_buf(),
            manifests: self.manifests.clone(),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        self.writer().write(name, text)
    }

    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        self.writer().remove(name)
    }

    /// Writes and waits until a build after it finished.
    pub fn write_and_wait(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let before = self.builds();
        self.write(name, text)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.builds() <= before {
            if Instant::now() > deadline {
                bail!("no build after writing {name}\n{}", self.gatehouse.tail());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Starts an Envoy for `gateway`, its admin endpoint on `envoy_admin`.
    pub fn envoy(&mut self, gateway: &str, envoy_admin: u16) -> anyhow::Result<Proc> {
        envoy_for(self.dir.path(), gateway, self.xds_port, envoy_admin, None)
    }
}

/// Where an Envoy finds its xDS client certificate (`gatehouse bootstrap --xds-tls-dir`) and
/// the name the xDS server's certificate must carry.
pub struct XdsTls<'a> {
    pub dir: &'a Path,
    pub server_name: &'a str,
}

/// Starts an Envoy for `gateway` against the xDS server on `xds_port`, its admin endpoint on
/// `envoy_admin`, bootstrap and log in `dir`.
pub fn envoy_for(
    dir: &Path,
    gateway: &str,
    xds_port: u16,
    envoy_admin: u16,
    tls: Option<XdsTls<'_>>,
) -> anyhow::Result<Proc> {
    let mut bootstrap = Command::new(bin("gatehouse")?);
    bootstrap
        .args(["bootstrap", "--gateway", gateway])
        .args(["--admin-port", &envoy_admin.to_string()])
        .args(["--xds-address", &format!("127.0.0.1:{xds_port}")]);
    if let Some(tls) = tls {
        bootstrap
            .arg("--xds-tls-dir")
            .arg(tls.dir)
            .args(["--xds-server-name", tls.server_name]);
    }
    let out = bootstrap.output()?;
    if !out.status.success() {
        bail!("bootstrap: {}", String::from_utf8_lossy(&out.stderr));
    }
    let file = dir.join("bootstrap.yaml");
    std::fs::write(&file, &out.stdout)?;
    let mut cmd = Command::new(envoy()?);
    cmd.arg("-c").arg(&file).args([
        "--disable-hot-restart",
        "-l",
        &log_level("GATEHOUSE_BENCH_ENVOY_LOG", "error"),
        "--concurrency",
        "1",
    ]);
    Proc::spawn("envoy", cmd, dir).context("envoy")
}

/// The echo backend and the ext auth server on free ports of `ip`, logs in `dir`; the targets
/// generated manifests point at.
pub fn backends(dir: &Path, ip: &str) -> anyhow::Result<(Targets, Vec<Proc>)> {
    let targets = Targets {
        listener_port: free_port()?,
        backend_ip: ip.into(),
        backend_port: free_port()?,
        authz_ip: ip.into(),
        authz_port: free_port()?,
    };
    let mut others = Vec::new();
    let mut echo = Command::new(bin("gatehouse-echo")?);
    echo.args([
        "--addr",
        &format!("{ip}:{}", targets.backend_port),
        "--name",
        "echo",
    ])
    .env("RUST_LOG", "warn");
    others.push(Proc::spawn("echo", echo, dir)?);
    let mut authz = Command::new(bin("gatehouse-ext-authz")?);
    authz
        .args([
            "--grpc-addr",
            &format!("{ip}:{}", targets.authz_port),
            "--http-addr",
            "off",
        ])
        .env("RUST_LOG", "warn");
    others.push(Proc::spawn("ext-authz", authz, dir)?);
    wait_port_on(ip, targets.backend_port, "echo")?;
    wait_port_on(ip, targets.authz_port, "ext-authz")?;
    Ok((targets, others))
}

/// A counter of the Gatehouse admin endpoint on `port` (0 when absent or unreachable).
pub fn counter(port: u16, name: &str) -> u64 {
    let body = blocking_get(port, "/metrics").unwrap_or_default();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A log level from the environment (for looking into a run), else `default`.
pub fn log_level(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

pub fn manifests_text(scale: &Scale, targets: &Targets) -> String {
    manifests(scale, targets)
}

/// One blocking GET on loopback (admin endpoint), the body.
pub fn blocking_get(port: u16, path: &str) -> Option<String> {
    let out = blocking_response(port, path)?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// One blocking GET on loopback (admin endpoint), the status code.
pub fn blocking_status(port: u16, path: &str) -> Option<u16> {
    let out = blocking_response(port, path)?;
    out.split_whitespace().nth(1)?.parse().ok()
}

fn blocking_response(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Writes manifests the way editors and tools do: a temporary file renamed into place.
#[derive(Clone, Debug)]
pub struct Writer {
    tmp: PathBuf,
    manifests: PathBuf,
}

impl Writer {
    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let tmp = self.tmp.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.manifests.join(name))?;
        Ok(())
    }

    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        std::fs::remove_file(self.manifests.join(name))?;
        Ok(())
    }
}
