//! Child processes that die with the test, and the binaries they run.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running process, killed when dropped; its output goes to `log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr in `dir/NAME.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log");
        let err = file.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- {} ({}) ---\n{}\n",
            self.name,
            self.log.display(),
            all[start..].join("\n")
        )
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now, outside the ephemeral range (see `gatehouse::loopback`).
pub fn free_port() -> u16 {
    gatehouse::loopback::unused_port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within {timeout:?}");
}

/// A binary of this workspace (`cargo test --workspace` builds them all next to ours).
pub fn workspace_bin(name: &str) -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"));
    let path = ours.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which `make test` does)",
        path.display()
    );
    path
}

/// `gatehouse standalone` serving the directory `manifests` on loopback, with its xDS, admin and
/// debug endpoints on these ports.
pub fn standalone_command(
    manifests: &Path,
    xds_port: u16,
    admin_port: u16,
    debug_port: u16,
) -> Command {
    let mut gh = Command::new(gatehouse());
    gh.args(["standalone", "--listener-address", "127.0.0.1"])
        .arg("--manifests")
        .arg(manifests)
        .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
        .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
        .args(["--debug-address", &format!("127.0.0.1:{debug_port}")]);
    gh
}

/// The gatehouse binary under test.
pub fn gatehouse() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}
