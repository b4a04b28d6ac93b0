//! `gatehouse translate` as users run it: exit codes, messages, partial output.

use crate::support;

use std::process::Command;

fn translate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("translate")
        .args(args)
        .output()
        .expect("run gatehouse")
}

#[test]
fn invalid_documents_exit_1_name_the_object_and_others_still_translate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = support::repo().join("examples/ext-auth/base");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: both, namespace: httpbin}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: httpbin}]\n  extAuth: {extensionRef: {name: basic-ext-auth}, disable: {}}\n---\nkind: [broken\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ignored}\n",
    )
    .expect("write");
    let out = translate(&[
        "-o",
        "json",
        "-f",
        base.to_str().expect("utf8"),
        "-f",
        dir.path().to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("document 1 (TrafficPolicy httpbin/both): rejected by CRD validation"),
        "{stderr}"
    );
    assert!(stderr.contains("document 2: invalid YAML"), "{stderr}");
    assert!(
        stderr.contains("warning: skipped apps/v1 Deployment ignored"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["gateways"][0]["gateway"], "kgateway-system/http");
}

#[test]
fn valid_input_exits_0_and_gateway_filter_works() {
    let base = support::repo().join("examples/ext-auth/base");
    let out = translate(&[
        "-f",
        base.to_str().expect("utf8"),
        "--gateway",
        "kgateway-system/http",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = translate(&["-f", base.to_str().expect("utf8"), "--gateway", "nope/nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("Gateway nope/nope is not in the manifests")
    );
    let bad_flag = translate(&["-f", base.to_str().expect("utf8"), "--gateway", "no-slash"]);
    assert_eq!(bad_flag.status.code(), Some(1));
}

#[test]
fn missing_path_is_an_error() {
    let out = translate(&["-f", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
}
