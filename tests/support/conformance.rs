//! Gateway API v1.5.1 HTTPRoute conformance, outside a cluster: the upstream manifests
//! (`tests/testdata/gateway-api/v1.5.1/conformance`) served by `gatehouse standalone` to real
//! Envoys, with one echo process per Service that reports `namespace/name` as its backend.
//! Expectations are the upstream Go tests' transcribed into
//! `tests/testdata/conformance/expectations.yaml`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, Response};
use super::procs::{Proc, free_port, gatehouse, standalone_command, wait_for_port, workspace_bin};
use super::tls::TestCa;

/// Where the upstream manifests are; missing means the test fails loudly.
pub fn conformance_dir() -> PathBuf {
    let dir = super::repo().join("tests/testdata/gateway-api/v1.5.1/conformance");
    assert!(
        dir.join("base-manifests.yaml").is_file(),
        "Gateway API conformance manifests missing at {} (vendored in tests/testdata/gateway-api)",
        dir.display()
    );
    dir
}

/// One request of a conformance test.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct Request {
    #[serde(default)]
    pub host: String,
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers the echo must put on its response (sent as `X-Echo-Set-Header`).
    #[serde(default)]
    pub backend_set_response_headers: BTreeMap<String, String>,
    /// `https`: sent over TLS to the Gateway's HTTPS listener (upstream's port 443).
    #[serde(default)]
    pub scheme: Option<String>,
    /// The SNI of an HTTPS request; the host when unset.
    #[serde(default)]
    pub tls_sni: Option<String>,
}

fn slash() -> String {
    "/".into()
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<Value>,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct MirroredTo {
    pub backend: String,
    pub namespace: Option<String>,
    /// Share of requests mirrored (percentage mirror tests).
    pub percent: Option<f64>,
}

/// What must come back.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct Expect {
    pub status: Option<u16>,
    pub backend: Option<String>,
    pub namespace: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_request_headers: Vec<String>,
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_response_headers: Vec<String>,
    pub redirect: Option<Redirect>,
    #[serde(default)]
    pub mirrored_to: Vec<MirroredTo>,
    /// The SNI the backend saw (`ExpectedRequest.SNI`; the echo's `tls.serverName`).
    pub sni: Option<String>,
    /// `MakeRequestAndExpectFailure`: any answer but 200 (and but a timeout).
    #[serde(default)]
    pub failure: bool,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Case {
    /// Another Gateway than the test's.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Something done to the cluster before the case (e.g. deleting a ReferenceGrant).
    #[serde(default)]
    pub pre_action: Option<String>,
    pub request: Request,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct StatusCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Conditions one Gateway listener must have (upstream's `GatewayStatusMustHaveListeners`).
#[derive(Debug, Deserialize, Clone)]
pub struct ListenerExpectation {
    pub gateway: String,
    pub listener: String,
    pub attached_routes: Option<i64>,
    pub conditions: Vec<StatusCondition>,
}

/// Conditions a BackendTLSPolicy must have for one ancestor Gateway
/// (`BackendTLSPolicyMustHaveCondition`).
#[derive(Debug, Deserialize, Clone)]
pub struct PolicyExpectation {
    pub policy: String,
    pub gateway: String,
    pub conditions: Vec<StatusCondition>,
}

/// A change upstream's Go code makes to the cluster after the cases, and the policy
/// conditions that must follow it.
#[derive(Debug, Deserialize, Clone)]
pub struct Step {
    pub action: String,
    #[serde(default)]
    pub backend_tls_policies: Vec<PolicyExpectation>,
}

/// Conditions a Gateway must have (upstream's `GatewayMustHaveCondition`).
#[derive(Debug, Deserialize, Clone)]
pub struct GatewayExpectation {
    pub gateway: String,
    pub conditions: Vec<StatusCondition>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct StatusExpectation {
    pub route: String,
    pub parent: String,
    pub conditions: Vec<StatusCondition>,
}

/// One conformance test.
#[derive(Debug, Deserialize, Clone)]
pub struct Test {
    pub name: String,
    /// Upstream manifests (`tests/<m>.yaml`) the test applies, when not just `tests/<name>.yaml`.
    #[serde(default)]
    pub manifests: Vec<String>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub status: Vec<StatusExpectation>,
    #[serde(default)]
    pub listeners: Vec<ListenerExpectation>,
    #[serde(default)]
    pub gateways: Vec<GatewayExpectation>,
    #[serde(default)]
    pub backend_tls_policies: Vec<PolicyExpectation>,
    #[serde(default)]
    pub cases: Vec<Case>,
    /// Changes after the cases, each with the conditions that must follow.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Statistical checks (weights, backend header filters, mirror percentages).
    #[serde(default)]
    pub distribution: Option<Value>,
    #[serde(default)]
    pub notes: Option<String>,
}

pub fn expectations() -> Vec<Test> {
    let file = super::repo().join("tests/testdata/conformance/expectations.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Runs each of `tests` in `w`, removing `test_file` after each, and fails with every failure
/// and the logs; returns how many requests or cases passed.
pub fn run_suite<T>(
    w: &mut Conformance,
    tests: &[T],
    name: impl Fn(&T) -> &str,
    mut run: impl FnMut(&mut Conformance, &T) -> Result<usize, String>,
    test_file: &str,
) -> usize {
    let mut failures = Vec::new();
    let mut passed = 0;
    for t in tests {
        match run(w, t) {
            Ok(n) => {
                passed += n;
                eprintln!("PASS {} ({n})", name(t));
            }
            Err(e) => {
                eprintln!("FAIL {}: {e}", name(t));
                failures.push(format!("{}: {e}", name(t)));
            }
        }
        w.remove(test_file);
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance tests failed:\n{}\n{}",
        failures.len(),
        tests.len(),
        failures.join("\n"),
        w.logs()
    );
    passed
}

/// Every YAML document of `text`, placeholders filled.
pub fn documents(text: &str) -> Vec<Value> {
    let text = text.replace("{GATEWAY_CLASS_NAME}", "gatehouse");
    yaml_serde::Deserializer::from_str(&text)
        .filter_map(|de| Value::deserialize(de).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn key(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["metadata"]["namespace"].as_str().unwrap_or("default"),
        doc["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The running world: Gatehouse, echo backends, and one Envoy per Gateway in use.
pub struct Conformance {
    pub dir: tempfile::TempDir,
    pub manifests: PathBuf,
    pub xds_port: u16,
    pub admin_port: u16,
    pub debug_port: u16,
    /// Pods `ns/app` (a selector's `app` label, or the Service for selector-less ones) → echo
    /// port.
    pub echoes: BTreeMap<String, u16>,
    /// (Gateway `ns/name`, manifest port) → port Envoy binds.
    pub ports: BTreeMap<(String, i64), u16>,
    /// Gateway → Envoy.
    pub envoys: BTreeMap<String, Proc>,
    pub procs: Vec<Proc>,
    /// Issues the certificates upstream's suite makes at start (`suite.go`).
    pub ca: TestCa,
    /// The CA of `tls-checks-ca-certificate`, which signed the TLS backend's certificate.
    pub backend_ca: TestCa,
}

impl Conformance {
    pub fn start() -> Conformance {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("mkdir");
        let mut w = Conformance {
            dir,
            manifests,
            xds_port: free_port(),
            admin_port: free_port(),
            debug_port: free_port(),
            echoes: BTreeMap::new(),
            ports: BTreeMap::new(),
            envoys: BTreeMap::new(),
            procs: Vec::new(),
            ca: TestCa::new("conformance CA"),
            backend_ca: TestCa::new("tls checks CA"),
        };
        let class = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gatehouse}\n";
        std::fs::write(w.manifests.join("00-class.yaml"), class).expect("write class");
        let base = std::fs::read_to_string(conformance_dir().join("base-manifests.yaml"))
            .expect("base manifests");
        let docs = w.prepare(&base);
        w.write("01-base.yaml", &docs);
        std::fs::write(w.manifests.join("02-certificates.yaml"), w.certificates())
            .expect("write certificates");

        let mut gh = standalone_command(&w.manifests, w.xds_port, w.admin_port, w.debug_port);
        gh.env("RUST_LOG", "info");
        w.procs.push(Proc::spawn("gatehouse", gh, w.dir.path()));
        wait_for_port(w.admin_port, Duration::from_secs(10), "gatehouse admin");
        w
    }

    /// The Secrets upstream's suite creates before the tests (`suite.go`) that HTTPS listeners
    /// use. Upstream's Go client matches `*.org` to `example.org`; the exact names are added
    /// for rustls, which the client here uses. Envoy does not read the names.
    fn certificates(&self) -> String {
        let validity = self.ca.leaf(&[
            "*",
            "*.org",
            "*.wildcard.org",
            "example.org",
            "second-example.org",
            "unknown-example.org",
            "https-listener.org",
        ]);
        let web = self.ca.leaf(&["*"]);
        let infra = "gateway-conformance-infra";
        let unused = TestCa::new("unused CA");
        [
            super::tls::secret(infra, "tls-validity-checks-certificate", &validity),
            super::tls::secret("gateway-conformance-web-backend", "certificate", &web),
            super::tls::ca_config_map(
                infra,
                "tls-checks-ca-certificate",
                &self.backend_ca.cert_pem,
            ),
            super::tls::ca_config_map(infra, "mismatch-ca-certificate", &unused.cert_pem),
        ]
        .join("---\n")
    }

    /// The TLS backend's certificate (`tls-checks-certificate` in `suite.go`), as files for
    /// its echo: (certificate, key).
    fn tls_backend_files(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        let (crt, key) = (dir.join("tls-backend.crt"), dir.join("tls-backend.key"));
        if !crt.exists() {
            let leaf = self.backend_ca.leaf_with_uris(
                &["abc.example.com", "other.example.com"],
                &["spiffe://abc.example.com/test-identity"],
            );
            std::fs::write(&crt, &leaf.cert_pem).expect("write certificate");
            std::fs::write(&key, &leaf.key_pem).expect("write key");
        }
        (crt, key)
    }

    /// Turns upstream documents into what runs here: Deployments dropped (the echoes replace
    /// the pods), listener ports mapped to free ports, and every Service given an echo process
    /// and an EndpointSlice pointing at it.
    pub fn prepare(&mut self, text: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for mut doc in documents(text) {
            match doc["kind"].as_str().unwrap_or_default() {
                "Deployment" | "Pod" => continue,
                "Gateway" => {
                    let gw = key(&doc);
                    let listeners = doc["spec"]["listeners"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    // Every listener moves off its privileged port to a free one.
                    let kept: Vec<Value> = listeners
                        .into_iter()
                        .map(|mut l| {
                            let port = l["port"].as_i64().unwrap_or(80);
                            let mapped = *self
                                .ports
                                .entry((gw.clone(), port))
                                .or_insert_with(free_port);
                            l["port"] = json!(mapped);
                            l
                        })
                        .collect();
                    if kept.is_empty() {
                        continue;
                    }
                    doc["spec"]["listeners"] = Value::Array(kept);
                    out.push(doc);
                }
                // A Service without a selector has hand-written EndpointSlices: no echo for it.
                "Service" if doc["spec"]["selector"].is_null() => out.push(doc),
                "Service" => {
                    let svc = key(&doc);
                    // The echo stands for the pods the selector picks (named by their `app`
                    // label, as upstream's pods are), so Services sharing pods share it.
                    let pods = match doc["spec"]["selector"]["app"].as_str() {
                        Some(app) => format!("{}/{app}", svc.split('/').next().unwrap_or_default()),
                        None => svc.clone(),
                    };
                    let port = match self.echoes.get(&pods) {
                        Some(p) => *p,
                        None => {
                            let p = free_port();
                            let (ns, app) = pods.split_once('/').unwrap_or_default();
                            // Upstream's gRPC backends run its GrpcEcho server; the tests tell
                            // them apart by pod name, which starts with the app's.
                            let mut echo = if app.starts_with("grpc-") {
                                let mut echo = Command::new(workspace_bin("gatehouse-grpc-echo"));
                                echo.args(["--addr", &format!("127.0.0.1:{p}")]).args([
                                    "--pod",
                                    &format!("{app}-0"),
                                    "--namespace",
                                    ns,
                                ]);
                                echo
                            } else {
                                let mut echo = Command::new(workspace_bin("gatehouse-echo"));
                                echo.args(["--addr", &format!("127.0.0.1:{p}"), "--name", &pods]);
                                echo
                            };
                            // Upstream's tls-backend pods serve tls-checks-certificate.
                            if pods.ends_with("/tls-backend") {
                                let (crt, key) = self.tls_backend_files();
                                echo.arg("--tls-cert").arg(crt).arg("--tls-key").arg(key);
                            }
                            let log_name = pods.replace('/', "_");
                            self.procs
                                .push(Proc::spawn(&log_name, echo, self.dir.path()));
                            wait_for_port(p, Duration::from_secs(10), &pods);
                            self.echoes.insert(pods.clone(), p);
                            p
                        }
                    };
                    let ports: Vec<Value> = doc["spec"]["ports"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|sp| {
                            let mut p = json!({"port": port, "protocol": "TCP"});
                            if let Some(name) = sp["name"].as_str() {
                                p["name"] = json!(name);
                            }
                            if let Some(ap) = sp["appProtocol"].as_str() {
                                p["appProtocol"] = json!(ap);
                            }
                            p
                        })
                        .collect();
                    let (ns, name) = svc.split_once('/').unwrap_or_default();
                    out.push(doc.clone());
                    out.push(json!({
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {"name": format!("{name}-echo"), "namespace": ns,
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "ports": ports,
                        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                    }));
                }
                _ => out.push(doc),
            }
        }
        out
    }

    /// Writes documents into the watched directory (temporary file renamed into place).
    pub fn write(&self, name: &str, docs: &[Value]) {
        let text: String = docs
            .iter()
            .map(|d| format!("---\n{}", yaml_serde::to_string(d).expect("yaml")))
            .collect();
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, self.manifests.join(name)).expect("rename manifest");
    }

    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.manifests.join(name));
    }

    /// Gatehouse's admin endpoint, or its debug endpoint for `/debug/*` paths.
    pub fn admin(&self, path: &str) -> Option<Response> {
        let port = if path.starts_with("/debug/") {
            self.debug_port
        } else {
            self.admin_port
        };
        http::get(port, "localhost", path, &[]).ok()
    }

    pub fn builds(&self) -> u64 {
        self.admin("/debug/status")
            .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
            .and_then(|d| d["builds"].as_u64())
            .unwrap_or(0)
    }

    /// Waits for a build newer than `before`.
    pub fn wait_build(&self, before: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.builds() <= before {
            assert!(Instant::now() < deadline, "no build\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Points hand-written EndpointSlices (`*-ip4`) at `service`'s echo, as upstream points
    /// them at its pods; IPv6 slices are dropped (the echoes listen on 127.0.0.1).
    pub fn point_slices_at(&self, docs: &mut Vec<Value>, service: &str) {
        let port = self.echoes[service];
        docs.retain(|d| !(d["kind"] == "EndpointSlice" && d["addressType"] == "IPv6"));
        for d in docs
            .iter_mut()
            .filter(|d| d["kind"] == "EndpointSlice" && d["addressType"] == "IPv4")
        {
            if d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-echo"))
            {
                continue;
            }
            d["endpoints"] = json!([{"addresses": ["127.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false}}]);
            if let Some(ports) = d["ports"].as_array_mut() {
                for p in ports {
                    p["port"] = json!(port);
                }
            }
        }
    }

    /// (manifest port, port here) of the listener requests go to: port 80 when the Gateway has
    /// one, else its lowest; 443 for HTTPS requests.
    pub fn listener(&self, gateway: &str, https: bool) -> Option<(i64, u16)> {
        if https {
            return self.port(gateway, 443).map(|p| (443, p));
        }
        let mut ports: Vec<(i64, u16)> = self
            .ports
            .iter()
            .filter(|((g, _), _)| g == gateway)
            .map(|((_, p), here)| (*p, *here))
            .collect();
        ports.sort_unstable();
        ports
            .iter()
            .find(|(p, _)| *p == 80)
            .or(ports.first())
            .copied()
    }

    /// The Envoy port serving `gateway`'s listener that was `port` in the manifest.
    pub fn port(&self, gateway: &str, port: i64) -> Option<u16> {
        self.ports.get(&(gateway.to_string(), port)).copied()
    }

    /// Starts an Envoy for `gateway` unless one runs.
    pub fn envoy_for(&mut self, gateway: &str) {
        if self.envoys.contains_key(gateway) {
            return;
        }
        let out = Command::new(gatehouse())
            .args(["bootstrap", "--gateway", gateway])
            .args(["--xds-address", &format!("127.0.0.1:{}", self.xds_port)])
            .output()
            .expect("bootstrap");
        assert!(
            out.status.success(),
            "bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = self
            .dir
            .path()
            .join(format!("bootstrap-{}.yaml", gateway.replace('/', "_")));
        std::fs::write(&file, &out.stdout).expect("write bootstrap");
        let envoy = super::envoy_command(&file);
        let name = format!("envoy-{}", gateway.replace('/', "_"));
        self.envoys
            .insert(gateway.into(), Proc::spawn(&name, envoy, self.dir.path()));
    }

    /// How often `backend`'s echo logged a request for `path` so far.
    pub fn echo_hits(&self, backend: &str, path: &str) -> usize {
        let log = self
            .dir
            .path()
            .join(format!("{}.log", backend.replace('/', "_")));
        let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
        let needle = format!("path={path} ");
        text.lines()
            .filter(|l| l.contains(" echo") && l.contains(&needle))
            .count()
    }

    pub fn logs(&self) -> String {
        let mut out: String = self.procs.iter().take(1).map(|p| p.tail(30)).collect();
        for p in self.envoys.values() {
            out.push_str(&p.tail(20));
        }
        out
    }
}

/// Log text without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
