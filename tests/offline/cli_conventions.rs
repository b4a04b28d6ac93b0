//! The conventions every `gatehouse` command follows, run against the built binary: `-f -`
//! reads standard input, `version`, shell completion, `GATEHOUSE_*` environment variables,
//! `-o json|yaml` on `bootstrap`, and `--kubeconfig`.

use crate::support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "examples/ext-auth/base";
const STEP1: &str = "examples/ext-auth/steps/01-gateway-policy.yaml";

/// Runs `gatehouse ARGS` with `env` set and `stdin` piped in. `GATEHOUSE_*` variables of the
/// test's own environment are removed, so that only what a test sets reaches the flags.
fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (name, _) in std::env::vars() {
        if name.starts_with("GATEHOUSE_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    let mut input = child.stdin.take().expect("stdin piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    wait_bounded(child, Duration::from_secs(30))
}

/// Waits for `child`, killing it and failing when it outlives `limit` (a command that hangs).
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if started.elapsed() > limit {
            child.kill().expect("kill");
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "gatehouse still ran after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn path(rel: &str) -> String {
    support::repo()
        .join(rel)
        .to_str()
        .expect("utf8")
        .to_string()
}

/// The manifests of `paths` (files or directories) as one multi-document stream, as
/// `cat`/`kustomize build` would pipe them.
fn concatenated(paths: &[&str]) -> String {
    let mut files = Vec::new();
    for p in paths {
        let full = support::repo().join(p);
        if full.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&full)
                .expect("read dir")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(full);
        }
    }
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read manifest"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn translate_and_explain_read_stdin_as_they_read_files() {
    let from_files = ok(&run(
        &[
            "translate",
            "-o",
            "json",
            "-f",
            &path(BASE),
            "-f",
            &path(STEP1),
        ],
        &[],
        "",
    ));
    let from_stdin = ok(&run(
        &["translate", "-o", "json", "-f", "-"],
        &[],
        &concatenated(&[BASE, STEP1]),
    ));
    assert_eq!(from_stdin, from_files);
    // The policy of step 1 is in the output, so the comparison is not of two empty documents.
    assert!(from_files.contains("ext_authz"), "{from_files}");

    // `-` among other paths: the directory from disk, the policy from stdin.
    let mixed = ok(&run(
        &["translate", "-o", "json", "-f", &path(BASE), "-f", "-"],
        &[],
        &concatenated(&[STEP1]),
    ));
    assert_eq!(mixed, from_files);

    let explain_files = ok(&run(
        &[
            "explain",
            "-o",
            "json",
            "-f",
            &path(BASE),
            "-f",
            &path(STEP1),
        ],
        &[],
        "",
    ));
    let explain_stdin = ok(&run(
        &["explain", "-o", "json", "-f", "-"],
        &[],
        &concatenated(&[BASE, STEP1]),
    ));
    assert_eq!(explain_stdin, explain_files);
}

#[test]
fn stdin_errors_name_stdin_and_exit_1_like_files() {
    let out = run(
        &["translate", "-f", "-"],
        &[],
        &format!("kind: [broken\n---\n{}", concatenated(&[BASE])),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: <stdin> document 1: invalid YAML"),
        "{stderr}"
    );
    // What loaded is still printed, as for files.
    assert!(String::from_utf8_lossy(&out.stdout).contains("kgateway-system/http"));

    let twice = run(&["explain", "-f", "-", "-f", "-"], &[], "");
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("standard input can be read only once"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
}

/// The commit the binary should carry: the build's override, else this checkout's HEAD.
fn expected_commit() -> String {
    if let Some(commit) = option_env!("GATEHOUSE_GIT_COMMIT").filter(|c| !c.trim().is_empty()) {
        return commit.trim().to_string();
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(support::repo())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .expect("run git");
    assert!(out.status.success(), "git rev-parse failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[test]
fn version_prints_the_commit_it_was_built_from() {
    let commit = expected_commit();
    assert_eq!(commit.len(), 12, "{commit}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(&["version", "-o", "json"], &[], ""))).expect("JSON");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["commit"], commit.as_str());
    assert!(json["dirty"].is_boolean(), "built from git: {json}");
    assert!(
        json["rustc"]
            .as_str()
            .is_some_and(|r| r.starts_with("rustc ")),
        "{json}"
    );

    let yaml: serde_json::Value =
        yaml_serde::from_str(&ok(&run(&["version", "-o", "yaml"], &[], ""))).expect("YAML");
    assert_eq!(yaml, json);

    let text = ok(&run(&["version"], &[], ""));
    let long = ok(&run(&["--version"], &[], ""));
    assert_eq!(text, long);
    assert!(
        text.starts_with(&format!(
            "gatehouse {}\ncommit: {commit} (tree ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert_eq!(
        ok(&run(&["-V"], &[], "")),
        format!("gatehouse {}\n", env!("CARGO_PKG_VERSION"))
    );
    // The library's constants, for the build_info metric, are the same stamp.
    assert_eq!(gatehouse::build_info::COMMIT, commit);
}

#[test]
fn completion_scripts_name_every_subcommand() {
    let bash = ok(&run(&["completion", "bash"], &[], ""));
    for sub in [
        "translate",
        "controller",
        "explain",
        "standalone",
        "bootstrap",
        "certificate",
        "crds",
        "version",
        "completion",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    assert!(bash.contains("--kubeconfig") && bash.contains("--route-scopes-from"));
    assert!(bash.contains("complete -F"), "not a bash completion script");
    for shell in ["zsh", "fish", "powershell"] {
        let script = ok(&run(&["completion", shell], &[], ""));
        assert!(script.contains("translate"), "{shell}");
    }
    let unknown = run(&["completion", "tcsh"], &[], "");
    assert_eq!(unknown.status.code(), Some(2));
}

/// The address of the xDS cluster a bootstrap dials.
fn xds_target(bootstrap: &serde_json::Value) -> (String, u64) {
    let clusters = bootstrap["staticResources"]["clusters"]
        .as_array()
        .expect("static clusters");
    let xds = clusters
        .iter()
        .find(|c| c["name"] == "gatehouse-xds")
        .expect("the gatehouse-xds cluster");
    let socket = &xds["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"];
    (
        socket["address"].as_str().expect("address").to_string(),
        socket["portValue"].as_u64().expect("port"),
    )
}

#[test]
fn environment_sets_flags_and_the_command_line_wins() {
    let base = ["bootstrap", "--gateway", "ns/gw", "-o", "json"];
    let from_env = ok(&run(
        &base,
        &[("GATEHOUSE_XDS_ADDRESS", "xds.from-env.example:1111")],
        "",
    ));
    let doc: serde_json::Value = serde_json::from_str(&from_env).expect("JSON");
    assert_eq!(xds_target(&doc), ("xds.from-env.example".to_string(), 1111));

    let mut flag_args = base.to_vec();
    flag_args.extend(["--xds-address", "xds.from-flag.example:2222"]);
    let from_flag = ok(&run(
        &flag_args,
        &[("GATEHOUSE_XDS_ADDRESS", "xds.from-env.example:1111")],
        "",
    ));
    let doc: serde_json::Value = serde_json::from_str(&from_flag).expect("JSON");
    assert_eq!(
        xds_target(&doc),
        ("xds.from-flag.example".to_string(), 2222)
    );

    // A required flag can come from the environment, and a bad value there is refused with
    // the variable named.
    let gateway_from_env = ok(&run(
        &["bootstrap", "-o", "json"],
        &[("GATEHOUSE_GATEWAY", "ns/gw")],
        "",
    ));
    assert_eq!(gateway_from_env, ok(&run(&base, &[], "")));
    let bad = run(&base, &[("GATEHOUSE_SOTW", "maybe")], "");
    assert_eq!(bad.status.code(), Some(2));
    let sotw = ok(&run(&base, &[("GATEHOUSE_SOTW", "1")], ""));
    assert_ne!(
        sotw,
        ok(&run(&base, &[], "")),
        "GATEHOUSE_SOTW=1 had no effect"
    );
}

/// The long flags of one `--help` text that do not show a `GATEHOUSE_` variable.
fn flags_without_env(help: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            entries.push(line.to_string());
        } else if let Some(last) = entries.last_mut() {
            last.push(' ');
            last.push_str(trimmed);
        }
    }
    entries
        .into_iter()
        .filter_map(|entry| {
            let flag = entry
                .split_whitespace()
                .find(|w| w.starts_with("--"))?
                .trim_end_matches(',')
                .trim_start_matches("--")
                .to_string();
            if flag == "help" || flag == "version" {
                return None;
            }
            let env = format!("[env: GATEHOUSE_{}=", flag.to_uppercase().replace('-', "_"));
            (!entry.contains(&env)).then_some(flag)
        })
        .collect()
}

#[test]
fn help_parser_finds_a_flag_without_its_variable() {
    let help = "Options:\n      --xds-address <XDS_ADDRESS>\n          Where [env: GATEHOUSE_XDS_ADDRESS=]\n  -o, --output <OUTPUT>\n          Output format\n          [possible values: yaml, json]\n  -h, --help\n          Print help\n";
    assert_eq!(flags_without_env(help), vec!["output".to_string()]);
}

#[test]
fn every_flag_of_every_command_has_its_environment_variable_in_help() {
    let commands = [
        "translate",
        "controller",
        "explain",
        "standalone",
        "bootstrap",
        "certificate",
        "crds",
        "version",
    ];
    let mut missing = Vec::new();
    let mut seen = 0;
    for command in commands {
        let help = ok(&run(&[command, "--help"], &[], ""));
        seen += help.matches("[env: GATEHOUSE_").count();
        missing.extend(
            flags_without_env(&help)
                .into_iter()
                .map(|f| format!("{command} --{f}")),
        );
    }
    assert!(missing.is_empty(), "flags without GATEHOUSE_*: {missing:?}");
    // The parser above found the flags: controller alone has over twenty.
    assert!(seen > 40, "only {seen} env annotations found");
}

#[test]
fn bootstrap_prints_yaml_or_json_of_the_same_document() {
    let args = ["bootstrap", "--gateway", "ns/gw", "--admin-port", "19000"];
    let json_text = ok(&run(&[&args[..], &["-o", "json"]].concat(), &[], ""));
    let json: serde_json::Value = serde_json::from_str(&json_text).expect("JSON");
    let yaml_text = ok(&run(&[&args[..], &["-o", "yaml"]].concat(), &[], ""));
    let yaml: serde_json::Value = yaml_serde::from_str(&yaml_text).expect("YAML");
    assert_eq!(yaml, json);
    assert_ne!(yaml_text, json_text, "-o yaml printed JSON");
    // YAML is the default, and the older `--json` still means `-o json`.
    assert_eq!(ok(&run(&args, &[], "")), yaml_text);
    assert_eq!(
        ok(&run(&[&args[..], &["--json"]].concat(), &[], "")),
        json_text
    );
}

fn controller(args: &[&str], env: &[(&str, &str)]) -> Output {
    // Other ports than the defaults, so that a controller that wrongly got further than its
    // client would not collide with anything; the bounded wait catches one that hangs.
    let mut all = vec![
        "controller",
        "--xds-address",
        "127.0.0.1:0",
        "--admin-address",
        "127.0.0.1:0",
        "--debug-address",
        "127.0.0.1:0",
    ];
    all.extend(args);
    run(&all, env, "")
}

#[test]
fn kubeconfig_that_cannot_be_used_fails_at_once_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-kubeconfig.yaml");
    let missing = missing.to_str().expect("utf8");

    let out = controller(&["--kubeconfig", missing], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(missing), "{stderr}");

    // The same through the environment.
    let out = controller(&[], &[("GATEHOUSE_KUBECONFIG", missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing));

    // A readable kubeconfig is the one used: its contexts are the ones --context chooses from.
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    write_kubeconfig(&kubeconfig);
    let out = controller(
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("utf8"),
            "--context",
            "not-in-this-file",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not-in-this-file") && stderr.contains("kubeconfig.yaml"),
        "{stderr}"
    );
}

fn write_kubeconfig(path: &Path) {
    std::fs::write(
        path,
        "apiVersion: v1\nkind: Config\ncurrent-context: only\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: only\n  context: {cluster: c, user: u}\n",
    )
    .expect("write kubeconfig");
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    // The CRDs are larger than a pipe's buffer, so the write after the reader left fails.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("crds")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    let mut first = [0u8; 64];
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_exact(&mut first)
        .expect("read the start");
    assert!(String::from_utf8_lossy(&first).starts_with("# Generated by `gatehouse crds`"));
    let out = wait_bounded(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panic"), "{stderr}");
}
