//! Compiles the Envoy `.proto` files that envoy-types ships into a descriptor set, so that the
//! binary can print Envoy resources as canonical proto3 JSON (with `@type` on `Any`); and links
//! RE2 (Debian's `libre2-dev`, statically) through a small C++ shim, so that tenant regexes are
//! judged by the engine Envoy runs rather than by Rust's `regex`, whose syntax differs.

use std::path::{Path, PathBuf};

/// Every message Gatehouse emits inside an `Any`, plus the bootstrap and the xDS API.
const FILES: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/tls/v3/secret.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/service/discovery/v3/discovery.proto",
];

fn main() {
    let proto = envoy_types_proto_dir();
    let includes: Vec<PathBuf> = [
        "data-plane-api",
        "xds",
        "googleapis",
        "protoc-gen-validate",
        "cel-spec",
        "opentelemetry-proto",
        "client_model",
    ]
    .iter()
    .map(|d| proto.join(d))
    .filter(|p| p.exists())
    .collect();
    let descriptors = protox::compile(FILES, &includes)
        .unwrap_or_else(|e| panic!("compiling Envoy protos from {}: {e:?}", proto.display()));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("envoy_descriptors.bin");
    std::fs::write(&out, prost::Message::encode_to_vec(&descriptors))
        .expect("write descriptor set");
    println!("cargo:rerun-if-changed=build.rs");
    link_re2();
    stamp_build_info();
}

/// Stamps the commit, whether the tree was dirty and the compiler into the crate
/// (`gatehouse::build_info`). `GATEHOUSE_GIT_COMMIT` names the commit where there is no `.git`
/// (the image build) and wins over git when set; `unknown` when neither answers. Reruns when
/// HEAD moves or the sources change (so "dirty" describes the tree the binary was built from),
/// not on every build.
fn stamp_build_info() {
    println!("cargo:rerun-if-env-changed=GATEHOUSE_GIT_COMMIT");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // Only this crate's own repository counts: a crate unpacked inside another repository
    // (a vendor directory) must not report that repository's commit.
    let own_repo = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .is_some_and(|top| dir.canonicalize().is_ok_and(|d| d == top));
    let from_env = std::env::var("GATEHOUSE_GIT_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let (commit, tree) = match from_env {
        Some(commit) => (commit, "unknown"),
        None if own_repo => {
            watch_git_head(&git);
            for input in ["src", "xds", "native", "Cargo.toml", "Cargo.lock"] {
                println!("cargo:rerun-if-changed={input}");
            }
            let commit = git(&["rev-parse", "--short=12", "HEAD"]);
            let status = git(&[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
            ]);
            match (commit, status) {
                (Some(c), Some(s)) if s.is_empty() => (c, "clean"),
                (Some(c), Some(_)) => (c, "dirty"),
                (Some(c), None) => (c, "unknown"),
                (None, _) => ("unknown".to_string(), "unknown"),
            }
        }
        None => ("unknown".to_string(), "unknown"),
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=GATEHOUSE_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=GATEHOUSE_BUILD_TREE={tree}");
    println!("cargo:rustc-env=GATEHOUSE_BUILD_RUSTC={rustc}");
}

/// Reruns the build script when HEAD moves: HEAD itself (a checkout), the branch it names (a
/// commit) and packed-refs (where a branch's ref lives after `git pack-refs`).
fn watch_git_head(git: &dyn Fn(&[&str]) -> Option<String>) {
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// Compiles `native/re2_shim.cc` and links it with RE2. RE2 is linked statically, so the
/// binary runs where `libre2` is not installed (the distroless image); libstdc++ stays dynamic.
fn link_re2() {
    println!("cargo:rerun-if-changed=native/re2_shim.cc");
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let found = std::process::Command::new(compiler.path())
        .arg("-print-file-name=libre2.a")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && p.exists());
    let Some(archive) = found else {
        panic!(
            "RE2 is missing: Gatehouse validates tenant regexes with RE2 (Envoy's engine). \
             Install Debian's libre2-dev (`make deps` does, as root) and build again."
        );
    };
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .cpp_link_stdlib(None)
        .warnings(true)
        .file("native/re2_shim.cc")
        .compile("gatehouse_re2");
    let dir = archive.parent().expect("an absolute path has a parent");
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=re2");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}

/// The `proto/` directory of the envoy-types package this crate is built against, found through
/// `cargo metadata` so it works for registry, vendored and git sources alike.
fn envoy_types_proto_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(std::env::var("TARGET").expect("set by cargo"))
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let pkg = meta["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "envoy-types"))
        .expect("envoy-types is a dependency");
    let manifest_path = pkg["manifest_path"].as_str().expect("manifest_path");
    Path::new(manifest_path)
        .parent()
        .expect("package dir")
        .join("proto")
}
