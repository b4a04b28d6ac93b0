//! Gateway API v1.5.1 GRPCRoute conformance: the upstream scenarios (`grpcroute-*` manifests,
//! vendored) through `gatehouse standalone` and real Envoy, called with a real gRPC client
//! against GrpcEcho backends; expectations transcribed from the Go tests into
//! `tests/testdata/conformance/grpc-expectations.yaml`. As upstream's harness does, every case
//! must pass three times in a row within 30 s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::support;
use support::conformance::{Conformance, conformance_dir, run_suite};
use support::grpc::{self, Code, Method, Outcome};

const TEST_FILE: &str = "10-test.yaml";
const CONSECUTIVE: usize = 3;

#[derive(Debug, Deserialize)]
struct Expectations {
    tests: Vec<Test>,
}

#[derive(Debug, Deserialize)]
struct Test {
    name: String,
    manifest: String,
    gateway: String,
    listener_port: i64,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    weights: BTreeMap<String, f64>,
    #[serde(default)]
    tolerance_percent: Option<f64>,
    #[serde(default)]
    samples: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Case {
    #[serde(default)]
    host: String,
    method: Method,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    #[serde(default = "ok")]
    code: String,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

fn ok() -> String {
    "OK".into()
}

fn expectations() -> Vec<Test> {
    let file = support::repo().join("tests/testdata/conformance/grpc-expectations.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let e: Expectations =
        yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    e.tests
}

/// The name tonic gives a code, as the expectations spell it (`Unimplemented`, `OK`).
fn code_name(code: Code) -> String {
    match code {
        Code::Ok => "OK".into(),
        other => format!("{other:?}"),
    }
}

/// Why `outcome` is not what `c` expects, if it is not.
fn mismatch(c: &Case, outcome: &Outcome) -> Option<String> {
    let got = match outcome {
        Ok(_) => Code::Ok,
        Err((code, _)) => *code,
    };
    if code_name(got) != c.expect.code {
        return Some(format!(
            "code {} ({outcome:?}), want {}",
            code_name(got),
            c.expect.code
        ));
    }
    let Ok(answer) = outcome else { return None };
    if let Some(backend) = &c.expect.backend
        && !grpc::pod(answer).starts_with(backend.as_str())
    {
        return Some(format!(
            "answered by pod {:?}, want {backend}",
            grpc::pod(answer)
        ));
    }
    if let Some(ns) = &c.expect.namespace
        && grpc::namespace(answer) != ns
    {
        return Some(format!(
            "answered from namespace {:?}, want {ns}",
            grpc::namespace(answer)
        ));
    }
    let method = format!("/{}/{:?}", gatehouse_grpc_echo::SERVICE, c.method);
    let seen = answer
        .assertions
        .as_ref()
        .map(|a| a.fully_qualified_method.as_str());
    if seen != Some(method.as_str()) {
        return Some(format!("the backend saw method {seen:?}, want {method}"));
    }
    None
}

fn run_case(port: u16, c: &Case) -> Result<(), String> {
    // No host: upstream's client dials the Gateway's address, which is the authority.
    let authority = if c.host.is_empty() {
        format!("127.0.0.1:{port}")
    } else {
        c.host.clone()
    };
    let metadata: Vec<(&str, &str)> = c
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut streak = 0;
    loop {
        let outcome = grpc::call(port, &authority, c.method, &metadata);
        match mismatch(c, &outcome) {
            None => {
                streak += 1;
                if streak == CONSECUTIVE {
                    return Ok(());
                }
            }
            Some(why) if Instant::now() > deadline => {
                return Err(format!(
                    "{} {:?} {:?}: {why}",
                    authority, c.method, c.metadata
                ));
            }
            Some(_) => {
                streak = 0;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Every route the test names is Accepted by its parent in `/debug/status`.
fn routes_accepted(w: &Conformance, routes: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc: Value = w
            .admin("/debug/status")
            .and_then(|r| serde_json::from_str(&r.body).ok())
            .unwrap_or(Value::Null);
        let missing: Vec<&String> = routes
            .iter()
            .filter(|r| {
                let parents = doc["status"]["grpcRoutes"][r.as_str()].as_array().cloned();
                !parents.is_some_and(|ps| {
                    !ps.is_empty()
                        && ps.iter().all(|p| {
                            p["conditions"].as_array().is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Accepted" && c["status"] == "True")
                            })
                        })
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not Accepted: {missing:?}; status: {}",
                doc["status"]["grpcRoutes"]
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Calls the first case `samples` times, each on a new connection with jitter metadata as
/// upstream's, and compares the share each backend answered with the test's weights.
fn weights(port: u16, t: &Test) -> Result<(), String> {
    let c = t.cases.first().ok_or("a weight test without a case")?;
    let n = t.samples.unwrap_or(500);
    let tolerance = t.tolerance_percent.unwrap_or(5.0) / 100.0;
    let mut last = String::new();
    for attempt in 0..5 {
        let mut hits: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..n {
            let jitter = format!("{attempt}-{i}");
            let authority = if c.host.is_empty() {
                format!("127.0.0.1:{port}")
            } else {
                c.host.clone()
            };
            let answer = grpc::call(port, &authority, c.method, &[("x-jitter", &jitter)])
                .map_err(|e| format!("call {i}: {e:?}"))?;
            let pod = grpc::pod(&answer);
            let backend = t
                .weights
                .keys()
                .find(|b| pod.starts_with(b.as_str()))
                .cloned()
                .unwrap_or_else(|| pod.to_string());
            *hits.entry(backend).or_default() += 1;
        }
        let bad = t.weights.iter().find_map(|(b, want)| {
            let got = *hits.get(b).unwrap_or(&0) as f64 / n as f64;
            let want = want / 100.0;
            let wrong = if want == 0.0 {
                got > 0.0
            } else {
                (got - want).abs() > tolerance
            };
            wrong.then(|| format!("{b}: {got:.3} of calls, want {want} ± {tolerance} ({hits:?})"))
        });
        let unknown = hits.keys().find(|k| !t.weights.contains_key(*k));
        match (bad, unknown) {
            (None, None) => return Ok(()),
            (Some(b), _) => last = b,
            (None, Some(k)) => last = format!("unexpected backend {k} ({hits:?})"),
        }
    }
    Err(last)
}

fn run(w: &mut Conformance, t: &Test) -> Result<usize, String> {
    let file = conformance_dir().join("tests").join(&t.manifest);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let docs = w.prepare(&text);
    let before = w.builds();
    w.write(TEST_FILE, &docs);
    w.wait_build(before);
    routes_accepted(w, &t.routes)?;
    w.envoy_for(&t.gateway);
    let port = w.port(&t.gateway, t.listener_port).ok_or_else(|| {
        format!(
            "Gateway {} has no listener on {}",
            t.gateway, t.listener_port
        )
    })?;
    for c in &t.cases {
        run_case(port, c)?;
    }
    if !t.weights.is_empty() {
        weights(port, t)?;
    }
    Ok(t.cases.len())
}

#[test]
fn grpcroute_conformance() {
    let tests = expectations();
    let mut w = Conformance::start();
    let cases = run_suite(&mut w, &tests, |t| &t.name, run, TEST_FILE);
    assert!(
        tests.len() >= 5 && cases >= 20,
        "only {} tests / {cases} cases ran",
        tests.len()
    );
}
