//! The processes a run starts, and what /proc says about them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A child process, killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        // Appended: a restarted process (the controller's restart figure) keeps the first's log.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS not found")
    }

    /// Where the resident memory is: anonymous (heap, stacks; transparent huge pages of it),
    /// file-backed (the binary's pages), and the thread count — what tells allocator placement
    /// from data.
    pub fn memory_detail(&self) -> anyhow::Result<String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |text: &str, name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if let Some(dir) = std::env::var_os("GATEHOUSE_BENCH_SMAPS") {
            let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid()))?;
            std::fs::write(Path::new(&dir).join(format!("smaps-{}", self.pid())), smaps)?;
        }
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()))
            .unwrap_or_default();
        Ok(format!(
            "anon {:.1} MiB (huge pages {:.1}), file {:.1} MiB, {} threads",
            field(&status, "RssAnon:") as f64 / 1024.0,
            field(&rollup, "AnonHugePages:") as f64 / 1024.0,
            field(&status, "RssFile:") as f64 / 1024.0,
            field(&status, "Threads:"),
        ))
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // USER_HZ is 100 on every Linux this runs on.
        Ok(Duration::from_millis(ticks * 10))
    }

    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    /// SIGTERM first, so a process can finish its log (and print allocator statistics when
    /// asked to with `MIMALLOC_SHOW_STATS=1`); SIGKILL after 2 s.
    fn drop(&mut self) {
        // Already exited and reaped (e.g. a controller stopped for a restart).
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(gatehouse::loopback::unused_port())
}

pub fn wait_port(port: u16, what: &str) -> anyhow::Result<()> {
    wait_port_on("127.0.0.1", port, what)
}

pub fn wait_port_on(ip: &str, port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on {ip}:{port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Binaries next to this one (`target/release`), Envoy from the project venv.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no exe dir")?.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the workspace binaries (make bench does)",
            path.display()
        );
    }
    Ok(path)
}

pub fn envoy() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("GATEHOUSE_ENVOY") {
        return Ok(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join(".venv/bin/envoy");
    if !path.exists() {
        bail!("{} is missing: run `make envoy`", path.display());
    }
    Ok(path)
}

/// A non-loopback IPv4 address of this machine (`ip -4 -o addr show scope global`): the API
/// server refuses loopback addresses in EndpointSlices, so backends the controller's world
/// points at listen there.
pub fn host_ip() -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .context("running `ip -4 -o addr show scope global`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .context("no non-loopback IPv4 address: the API server refuses loopback EndpointSlice addresses, so controller mode needs one")
}
