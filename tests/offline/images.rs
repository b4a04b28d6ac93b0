//! The container images (`make image`) stay buildable as far as a machine without a container
//! engine can tell: every Dockerfile is parsed, its COPY sources are in the build context
//! (.dockerignore), its build stage builds a real workspace binary with `--locked` on a Rust at
//! least the workspace's `rust-version`, cross-compiling for TARGETARCH; the runtime stage runs
//! that binary as the chart's non-root user and exposes the ports the server listens on. The
//! names `make image` gives are the chart's and the quickstart's (examples/in-cluster/).

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::repo;

mod dockerfile;

use dockerfile::{DockerIgnore, Stage};

/// One image of `make image`.
struct Image {
    name: &'static str,
    dockerfile: &'static str,
    /// The arguments printing the help of the command the image runs by default.
    help: &'static [&'static str],
    /// The flags naming the addresses it listens on.
    listen_flags: &'static [&'static str],
}

const IMAGES: &[Image] = &[
    Image {
        name: "gatehouse",
        dockerfile: "Dockerfile",
        help: &["controller", "--help"],
        listen_flags: &["--xds-address", "--admin-address"],
    },
    Image {
        name: "gatehouse-ext-authz",
        dockerfile: "examples/ext-authz/Dockerfile",
        help: &["--help"],
        listen_flags: &["--grpc-addr", "--http-addr"],
    },
    Image {
        name: "gatehouse-echo",
        dockerfile: "examples/echo/Dockerfile",
        help: &["--help"],
        listen_flags: &["--addr"],
    },
];

/// The user the chart's pods run as (charts/gatehouse/templates/deployment.yaml).
const CHART_USER: i64 = 65532;

fn stages(image: &Image) -> (Stage, Stage) {
    let mut stages = dockerfile::parse(&repo().join(image.dockerfile));
    assert_eq!(
        stages.len(),
        2,
        "{}: a build stage and a runtime stage",
        image.dockerfile
    );
    let runtime = stages.pop().expect("two stages");
    let build = stages.pop().expect("two stages");
    (build, runtime)
}

fn make(args: &[&str]) -> std::process::Output {
    Command::new("make")
        .args(args)
        .current_dir(repo())
        // The defaults are under test, not the caller's overrides.
        .env_remove("IMAGE_REGISTRY")
        .env_remove("IMAGE_TAG")
        .env_remove("PLATFORMS")
        .env_remove("CONTAINER_ENGINES")
        .env_remove("MAKEFLAGS")
        .output()
        .expect("run make")
}

fn cargo(args: &[&str]) -> std::process::Output {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run cargo")
}

fn metadata() -> Value {
    let out = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// The `make image-names` references, by image name.
fn image_refs() -> Vec<(String, String)> {
    let out = make(&["-s", "image-names"]);
    assert!(
        out.status.success(),
        "make image-names: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|r| (image_name(r).to_string(), r.to_string()))
        .collect()
}

/// `ghcr.io/gatehouse-dev/gatehouse-echo:0.1.0` → `gatehouse-echo`.
fn image_name(reference: &str) -> &str {
    let path = reference.rsplit_once(':').map_or(reference, |(p, _)| p);
    path.rsplit('/').next().unwrap_or(path)
}

fn chart_version() -> String {
    let chart = std::fs::read_to_string(repo().join("charts/gatehouse/Chart.yaml")).expect("read");
    let chart: Value = yaml_serde::from_str(&chart).expect("Chart.yaml");
    chart["appVersion"]
        .as_str()
        .expect("appVersion")
        .to_string()
}

fn rendered_controller() -> Value {
    support::helm::render(&[])
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart renders a Deployment")
}

/// The quickstart's Deployments' containers, by the image they run.
fn quickstart_containers() -> Vec<(Value, Value)> {
    let docs = support::apiserver::read_documents(&[repo().join("examples/in-cluster")]);
    let mut out = Vec::new();
    for (_, doc) in docs.into_iter().filter(|(_, d)| d["kind"] == "Deployment") {
        let pod = doc["spec"]["template"]["spec"].clone();
        for c in pod["containers"].as_array().expect("containers") {
            out.push((pod.clone(), c.clone()));
        }
    }
    assert!(!out.is_empty(), "examples/in-cluster has no Deployment");
    out
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("not IP:PORT: {addr}"))
}

/// `FLAG VALUE` or `FLAG=VALUE` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let eq = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&eq)
        }
    })
}

/// `[default: 0.0.0.0:18000]` of `flag` in a clap help text.
fn help_default(help: &str, flag: &str) -> String {
    let mut lines = help.lines().skip_while(|l| {
        l.trim_start()
            .split([' ', '='])
            .next()
            .is_none_or(|f| f != flag)
    });
    let mut block = lines.next().unwrap_or_default().to_string();
    for l in lines.take_while(|l| !l.trim_start().starts_with("--")) {
        block.push_str(l);
    }
    let start = block
        .find("[default: ")
        .unwrap_or_else(|| panic!("{flag} has no default in:\n{help}"));
    let value = &block[start + "[default: ".len()..];
    value[..value.find(']').expect("closing ]")].to_string()
}

#[test]
fn make_image_builds_every_dockerfile_under_the_charts_and_quickstarts_names() {
    let makefile = std::fs::read_to_string(repo().join("Makefile")).expect("Makefile");
    let line = makefile
        .lines()
        .find(|l| l.starts_with("IMAGES ") || l.starts_with("IMAGES:"))
        .expect("IMAGES in the Makefile");
    let built: BTreeSet<(&str, &str)> = line
        .split_once(":=")
        .expect("IMAGES :=")
        .1
        .split_whitespace()
        .map(|s| s.split_once('=').expect("NAME=DOCKERFILE"))
        .collect();
    let want: BTreeSet<(&str, &str)> = IMAGES.iter().map(|i| (i.name, i.dockerfile)).collect();
    assert_eq!(built, want);

    let version = chart_version();
    let refs = image_refs();
    let names: Vec<&str> = refs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["gatehouse", "gatehouse-ext-authz", "gatehouse-echo"]
    );
    for (_, reference) in &refs {
        assert!(
            reference.ends_with(&format!(":{version}")),
            "{reference}: the tag defaults to the chart's appVersion {version}"
        );
    }
    // The chart's default image is the one `make image` builds.
    let controller = rendered_controller();
    assert_eq!(
        controller["spec"]["template"]["spec"]["containers"][0]["image"],
        refs[0].1.as_str()
    );
    let out = make(&[
        "-s",
        "image-names",
        "IMAGE_REGISTRY=localhost:5000/me",
        "IMAGE_TAG=dev",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("localhost:5000/me/gatehouse:dev")
    );
}

#[test]
fn make_image_without_a_container_engine_fails_clearly() {
    let out = make(&["image", "CONTAINER_ENGINES=gatehouse-test-no-such-engine"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("make image: no container engine")
            && stderr.contains("gatehouse-test-no-such-engine")
            && stderr.contains("docker info"),
        "{stderr}"
    );
}

#[test]
fn copy_sources_are_in_the_build_context() {
    let ignore = DockerIgnore::read(&repo().join(".dockerignore"));
    // The context stays sources only: never the target directory or the git database.
    for huge in ["target/debug/gatehouse", ".git/HEAD", ".venv/bin/envoy"] {
        assert!(ignore.excludes(huge), "{huge} is in the build context");
    }
    let meta = metadata();
    let root = repo();
    let rel = |p: &str| {
        Path::new(p)
            .strip_prefix(&root)
            .unwrap_or_else(|_| panic!("{p} is outside the repository"))
            .to_string_lossy()
            .into_owned()
    };
    // What `COPY . .` must carry for cargo: every member's manifest and target sources, the
    // lock file, and what build.rs compiles.
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    needed.push("native/re2_shim.cc".into());
    for pkg in meta["packages"].as_array().expect("packages") {
        needed.push(rel(pkg["manifest_path"].as_str().expect("manifest_path")));
        for target in pkg["targets"].as_array().expect("targets") {
            needed.push(rel(target["src_path"].as_str().expect("src_path")));
        }
    }
    for image in IMAGES {
        let (build, runtime) = stages(image);
        for copy in build.all("COPY").into_iter().chain(runtime.all("COPY")) {
            if copy.flag("from").is_some() {
                continue;
            }
            let words = copy.words();
            let (sources, _dest) = words.split_at(words.len() - 1);
            for source in sources {
                let paths: Vec<String> = if *source == "." {
                    needed.clone()
                } else {
                    vec![source.to_string()]
                };
                for p in paths {
                    assert!(
                        root.join(&p).exists(),
                        "{}: COPY source {p} does not exist",
                        image.dockerfile
                    );
                    assert!(
                        !ignore.excludes(&p),
                        "{}: {p} is excluded by .dockerignore",
                        image.dockerfile
                    );
                }
            }
        }
    }
}

#[test]
fn build_stages_cross_build_a_workspace_binary_locked() {
    let meta = metadata();
    let members: Vec<&Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .collect();
    let workspace_rust = |pkg: &Value| -> (u32, u32) {
        let v = pkg["rust_version"].as_str().expect("rust_version set");
        let mut parts = v.split('.').map(|p| p.parse::<u32>().expect("number"));
        (parts.next().expect("major"), parts.next().unwrap_or(0))
    };
    for image in IMAGES {
        let (build, runtime) = stages(image);
        assert_eq!(build.name.as_deref(), Some("build"), "{}", image.dockerfile);
        // Multi-arch by build argument: the stage runs on the builder's platform and builds for
        // TARGETARCH, which --platform sets per image.
        assert_eq!(
            build.from.flag("platform"),
            Some("$BUILDPLATFORM"),
            "{}",
            image.dockerfile
        );
        assert!(
            build.all("ARG").iter().any(|a| a.rest == "TARGETARCH"),
            "{}: ARG TARGETARCH",
            image.dockerfile
        );
        let run = build
            .all("RUN")
            .into_iter()
            .find(|r| r.rest.contains("cargo build"))
            .unwrap_or_else(|| panic!("{}: no cargo build", image.dockerfile));
        let cmd: Vec<&str> = run
            .rest
            .split("cargo build")
            .nth(1)
            .expect("args")
            .split("&&")
            .next()
            .expect("the cargo command")
            .split_whitespace()
            .collect();
        let after = |flag: &str| {
            cmd.iter()
                .position(|w| *w == flag)
                .and_then(|i| cmd.get(i + 1))
                .copied()
                .unwrap_or_else(|| panic!("{}: cargo build without {flag}", image.dockerfile))
        };
        for flag in ["--release", "--locked"] {
            assert!(
                cmd.contains(&flag),
                "{}: cargo build without {flag}",
                image.dockerfile
            );
        }
        assert_eq!(after("--target"), "\"$triple\"", "{}", image.dockerfile);
        assert!(
            run.rest
                .contains(r#"triple="$(rust-target triple "$TARGETARCH")""#),
            "{}: the target triple comes from TARGETARCH",
            image.dockerfile
        );
        let (package, bin) = (after("-p"), after("--bin"));
        assert_eq!(bin, image.name, "images are named after their binary");
        let pkg = members
            .iter()
            .find(|p| p["name"] == package)
            .unwrap_or_else(|| {
                panic!("{}: -p {package} is no workspace package", image.dockerfile)
            });
        assert!(
            pkg["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .any(|t| t["name"] == bin
                    && t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))),
            "{}: package {package} has no bin {bin}",
            image.dockerfile
        );
        // The builder's Rust: rust:MAJOR.MINOR-… at least the package's rust-version.
        let tag = build.image().strip_prefix("rust:").expect("a rust: image");
        let version = tag.split('-').next().expect("version");
        let mut parts = version
            .split('.')
            .map(|p| p.parse::<u32>().expect("number"));
        let have = (parts.next().expect("major"), parts.next().expect("minor"));
        assert!(
            have >= workspace_rust(pkg),
            "{}: {} is older than rust-version {:?}",
            image.dockerfile,
            build.image(),
            workspace_rust(pkg)
        );
        // The runtime stage runs exactly what the build stage installed.
        let out = format!("/out/{bin}");
        assert!(
            run.rest
                .contains(&format!("\"target/$triple/release/{bin}\" {out}")),
            "{}: installs {bin} to {out}",
            image.dockerfile
        );
        let copy = runtime.last("COPY");
        assert_eq!(copy.flag("from"), Some("build"));
        assert_eq!(copy.words(), [out.as_str(), &format!("/{bin}")]);
        assert_eq!(runtime.last("ENTRYPOINT").exec_form(), [format!("/{bin}")]);
    }
    // --locked holds for every platform `make image` builds: the lock file resolves the whole
    // graph, the target-specific crates included, without changes and without the network.
    for arch in ["amd64", "arm64"] {
        let triple = Command::new(repo().join("docker/rust-target.sh"))
            .args(["triple", arch])
            .output()
            .expect("run docker/rust-target.sh");
        let triple = String::from_utf8_lossy(&triple.stdout).trim().to_string();
        let out = cargo(&[
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
            &triple,
        ]);
        assert!(
            out.status.success(),
            "cargo metadata --locked for {triple}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn rust_target_maps_each_platform_to_a_cross_toolchain() {
    let script = repo().join("docker/rust-target.sh");
    let run = |args: &[&str]| {
        Command::new(&script)
            .args(args)
            .output()
            .expect("run docker/rust-target.sh")
    };
    let known = Command::new("rustc")
        .args(["--print", "target-list"])
        .output()
        .expect("rustc --print target-list");
    let known = String::from_utf8_lossy(&known.stdout).into_owned();
    for (arch, triple, gnu) in [
        ("amd64", "x86_64-unknown-linux-gnu", "x86_64-linux-gnu"),
        ("arm64", "aarch64-unknown-linux-gnu", "aarch64-linux-gnu"),
    ] {
        let out = run(&["triple", arch]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), triple);
        assert!(
            known.lines().any(|t| t == triple),
            "rustc does not know {triple}"
        );
        let env = String::from_utf8(run(&["env", arch]).stdout).expect("UTF-8");
        let host = Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if arch == host {
            assert_eq!(env, "", "a native build needs no cross toolchain");
        } else {
            let upper = triple.to_uppercase().replace('-', "_");
            let lower = triple.replace('-', "_");
            assert!(
                env.contains(&format!("CARGO_TARGET_{upper}_LINKER={gnu}-gcc"))
                    && env.contains(&format!("CXX_{lower}={gnu}-g++")),
                "{env}"
            );
        }
    }
    let out = run(&["triple", "s390x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported architecture"));
}

#[test]
fn images_run_as_the_charts_user_and_expose_the_servers_ports() {
    let controller = rendered_controller();
    let pod = &controller["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], CHART_USER);
    let quickstart = quickstart_containers();
    for image in IMAGES {
        let (_, runtime) = stages(image);
        let user = &runtime.last("USER").rest;
        let (uid, gid) = user.split_once(':').unwrap_or((user, user));
        let uid: i64 = uid
            .parse()
            .unwrap_or_else(|_| panic!("{user}: not numeric"));
        let gid: i64 = gid
            .parse()
            .unwrap_or_else(|_| panic!("{user}: not numeric"));
        assert_eq!((uid, gid), (CHART_USER, CHART_USER), "{}", image.dockerfile);

        let exposed: BTreeSet<u16> = runtime
            .all("EXPOSE")
            .iter()
            .flat_map(|e| e.words())
            .map(|p| p.trim_end_matches("/tcp").parse().expect("port"))
            .collect();
        // What the image's default command listens on: the binary's defaults, unless CMD
        // names another address (then on every interface).
        let bin = support::procs::workspace_bin(image.name);
        let help = Command::new(&bin)
            .args(image.help)
            .output()
            .expect("--help");
        let help = String::from_utf8(help.stdout).expect("UTF-8");
        let cmd = runtime.last("CMD").exec_form();
        let listening: BTreeSet<u16> = image
            .listen_flags
            .iter()
            .map(|flag| match flag_value(&cmd, flag) {
                Some(addr) => {
                    assert!(
                        addr.starts_with("0.0.0.0:"),
                        "{}: CMD {flag} {addr}",
                        image.dockerfile
                    );
                    port_of(addr)
                }
                None => port_of(&help_default(&help, flag)),
            })
            .collect();
        assert_eq!(exposed, listening, "{}: EXPOSE", image.dockerfile);

        // The quickstart's containers of this image: same user, same ports.
        for (pod, c) in quickstart
            .iter()
            .filter(|(_, c)| image_name(c["image"].as_str().expect("image")) == image.name)
        {
            assert_eq!(pod["securityContext"]["runAsUser"], CHART_USER, "{c}");
            let ports: BTreeSet<u16> = c["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .map(|p| p["containerPort"].as_u64().expect("containerPort") as u16)
                .collect();
            assert_eq!(ports, exposed, "{}", c["name"]);
            let args: Vec<String> = c["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|a| a.as_str().expect("arg").to_string())
                        .collect()
                })
                .unwrap_or_default();
            for flag in image.listen_flags {
                if let Some(addr) = flag_value(&args, flag) {
                    assert!(
                        exposed.contains(&port_of(addr)),
                        "{}: {flag} {addr}",
                        c["name"]
                    );
                }
            }
        }
    }
    // The demo servers both run in the quickstart.
    for name in ["gatehouse-ext-authz", "gatehouse-echo"] {
        assert!(
            quickstart
                .iter()
                .any(|(_, c)| image_name(c["image"].as_str().unwrap_or_default()) == name),
            "examples/in-cluster runs no {name}"
        );
    }
}
