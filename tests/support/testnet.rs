//! A test host: a network namespace of the test's own, joined to the root namespace by a veth
//! pair on a /24 of its own (10.250.X.0/24: .1 is the root end, .2 the namespace end).
//!
//! The API server refuses loopback addresses in EndpointSlices, so processes a Service points at
//! run inside a `TestNet` bound to [`TestNet::host_ip`]; Envoy (in the root namespace) reaches
//! them over the veth. Nothing leaves the machine. Needs root and `ip` (iproute2): without them
//! `TestNet::new` panics — tests never skip.
//!
//! X is picked under a machine-wide lock among the subnets no interface uses, starting from the
//! process id, so concurrent tests (threads or processes) never share one. Namespaces left by a
//! test process that was killed are removed by the next `TestNet::new`.
#![allow(dead_code)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Namespaces this module creates are named `gh-PID-X-PREFIX`.
const NS_PREFIX: &str = "gh-";
const LOCK_FILE: &str = "/run/gatehouse-testnet.lock";

/// A network namespace with a veth to the root namespace; removed (with every process still
/// running in it) on drop.
pub struct TestNet {
    name: String,
    subnet: u8,
    root_veth: String,
}

impl TestNet {
    /// Creates `gh-PID-X-PREFIX` (PREFIX: `name_prefix`, shortened), its veth pair and addresses,
    /// and brings `lo` up inside.
    pub fn new(name_prefix: &str) -> TestNet {
        preflight();
        let lock = File::create(LOCK_FILE)
            .unwrap_or_else(|e| panic!("TestNet: cannot open the lock file {LOCK_FILE}: {e}"));
        lock.lock().expect("TestNet: lock");
        remove_stale_namespaces();
        let subnet = free_subnet();
        let prefix: String = name_prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(24)
            .collect();
        let net = TestNet {
            name: format!("{NS_PREFIX}{}-{subnet}-{prefix}", std::process::id()),
            subnet,
            root_veth: format!("gh{subnet}r"),
        };
        let ns_veth = format!("gh{subnet}n");
        let root_cidr = format!("{}/24", net.root_ip());
        let ns_cidr = format!("{}/24", net.host_ip());
        // On a failure below, dropping `net` removes what was made so far.
        ip(&["netns", "add", &net.name]);
        ip(&[
            "link",
            "add",
            &net.root_veth,
            "type",
            "veth",
            "peer",
            "name",
            &ns_veth,
        ]);
        ip(&["link", "set", &ns_veth, "netns", &net.name]);
        ip(&["addr", "add", &root_cidr, "dev", &net.root_veth]);
        ip(&["link", "set", &net.root_veth, "up"]);
        ip(&["-n", &net.name, "addr", "add", &ns_cidr, "dev", &ns_veth]);
        ip(&["-n", &net.name, "link", "set", &ns_veth, "up"]);
        ip(&["-n", &net.name, "link", "set", "lo", "up"]);
        drop(lock);
        net
    }

    /// The namespace's name (`ip netns exec NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address inside the namespace (10.250.X.2): bind test hosts' servers to it and list it
    /// in EndpointSlices.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.subnet, 2)
    }

    /// The root namespace's end of the veth (10.250.X.1).
    pub fn root_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.subnet, 1)
    }

    /// `ip netns exec NAME program`: add arguments, then spawn (e.g. with `procs::Proc::spawn`).
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .arg(program.as_ref());
        cmd
    }

    /// Process ids running inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        remove_namespace(&self.name);
        // Normally gone with the namespace; a leftover would keep its subnet taken.
        let _ = quiet("ip", &["link", "del", &self.root_veth]);
    }
}

/// Kills what runs in namespace `name` and deletes it.
fn remove_namespace(name: &str) {
    for _ in 0..50 {
        let pids = pids_in(name);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = quiet("kill", &["-KILL", &pid.to_string()]);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = quiet("ip", &["netns", "del", name]);
}

fn pids_in(name: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Fails loudly when the machine cannot make namespaces: no `ip`, or not root.
fn preflight() {
    let found = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(found, Ok(s) if s.success()),
        "TestNet needs `ip` (iproute2): install it (Debian: apt-get install iproute2)"
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert!(
        euid == "0",
        "TestNet needs root to create network namespaces (effective uid is {euid}); run the tests as root"
    );
}

/// Deletes `gh-PID-…` namespaces whose test process is gone (killed before its drop ran).
fn remove_stale_namespaces() {
    for name in list_namespaces() {
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(&name);
        }
    }
}

fn list_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The first X, from the process id on, with no interface named `ghXr` nor any address or
/// namespace in 10.250.X.0/24. Called with the lock held.
fn free_subnet() -> u8 {
    let links = output("ip", &["-o", "link", "show"]);
    let addrs = output("ip", &["-o", "-4", "addr", "show"]);
    let namespaces = list_namespaces();
    let start = (std::process::id() % 256) as usize;
    (0..256)
        .map(|i| ((start + i) % 256) as u8)
        .find(|x| {
            let link = format!(" gh{x}r@");
            let addr = format!(" 10.250.{x}.");
            !links.contains(&link)
                && !addrs.contains(&addr)
                && !namespaces.iter().any(|n| subnet_of(n) == Some(*x))
        })
        .expect("TestNet: all 256 subnets 10.250.X.0/24 are in use")
}

/// X of a `gh-PID-X-PREFIX` namespace.
fn subnet_of(name: &str) -> Option<u8> {
    name.strip_prefix(NS_PREFIX)?
        .split('-')
        .nth(1)?
        .parse()
        .ok()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip {}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program} {}`: {e}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quiet(program: &str, args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}
