//! charts/gatehouse through real Helm: tests/helm/render.py drives the Helm v4 Go SDK of the
//! pinned PyPI wheel `helm-python-sdk` in the project venv (`make test` installs it).
#![allow(dead_code)]

use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

use super::repo;

/// Runs tests/helm/render.py with the project venv's Python; never skips.
pub fn helm(args: &[&str]) -> Output {
    helm_in("gatehouse-system", args)
}

/// [`helm`] for a release installed into `namespace`.
pub fn helm_in(namespace: &str, args: &[&str]) -> Output {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (it creates .venv and installs helm-python-sdk)",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo().join("tests/helm/render.py"))
        .args(args)
        .env("HELM_NAMESPACE", namespace)
        .current_dir(repo())
        .output()
        .expect("run tests/helm/render.py");
    assert_ne!(
        out.status.code(),
        Some(2),
        "tests/helm/render.py could not run (helm-python-sdk missing? run `make test`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `render.py render FILES…` → every object (CRDs first), failing loudly on a render error.
pub fn render(values: &[&str]) -> Vec<Value> {
    render_in("gatehouse-system", values)
}

/// [`render`] for a release installed into `namespace`.
pub fn render_in(namespace: &str, values: &[&str]) -> Vec<Value> {
    let mut args = vec!["render"];
    args.extend_from_slice(values);
    let out = helm_in(namespace, &args);
    assert!(
        out.status.success(),
        "helm render {values:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    yaml_serde::Deserializer::from_str(&text)
        .map(|de| Value::deserialize(de).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}
