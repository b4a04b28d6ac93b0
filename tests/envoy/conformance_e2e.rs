//! Gateway API v1.5.1 HTTPRoute conformance: every upstream scenario of the features Gatehouse
//! implements, through `gatehouse standalone` and real Envoy, asserting the backend that
//! answered, status and headers; route status where the test asserts it; and each scenario's
//! config through `gatehouse translate -o bootstrap` and `envoy --mode validate`.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::conformance::{Case, Conformance, Test, conformance_dir, expectations, run_suite};
use support::http::{self, Response};

const DEFAULT_NS: &str = "gateway-conformance-infra";
const TEST_FILE: &str = "10-test.yaml";

/// Sends a case's request: over TLS, trusting the harness's CA, when its scheme is `https`.
fn send_to(w: &Conformance, port: u16, c: &Case) -> std::io::Result<Response> {
    if c.request.scheme.as_deref() != Some("https") {
        return send(port, c);
    }
    let host = if c.request.host.is_empty() {
        "gateway.local"
    } else {
        &c.request.host
    };
    let headers: Vec<(&str, &str)> = c
        .request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sni = c.request.tls_sni.as_deref().unwrap_or(host);
    let client = support::tls::client(&[&w.ca.cert_pem]);
    support::tls::get(&client, port, sni, host, &c.request.path, &headers).map(|(r, _)| r)
}

fn send(port: u16, c: &Case) -> std::io::Result<Response> {
    let set: String = c
        .request
        .backend_set_response_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut headers: Vec<(&str, &str)> = c
        .request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !set.is_empty() {
        headers.push(("X-Echo-Set-Header", &set));
    }
    let method = c.request.method.as_deref().unwrap_or("GET");
    // Upstream sends the Gateway's address as Host when a case names none.
    let host = if c.request.host.is_empty() {
        "gateway.local"
    } else {
        &c.request.host
    };
    http::request(port, method, host, &c.request.path, &headers, "")
}

fn echoed(r: &Response) -> Option<Value> {
    serde_json::from_str(&r.body).ok()
}

fn echoed_header(doc: &Value, name: &str) -> Option<String> {
    doc["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| {
            v.as_array()
                .map(|vs| {
                    vs.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        })
}

/// Why `r` does not meet `c`, or `None` when it does.
/// `listener` is (the port in the manifest, the port Envoy binds here).
fn mismatch(c: &Case, r: &Response, listener: (i64, u16)) -> Option<String> {
    let e = &c.expect;
    if e.failure {
        return (r.status == 200 || r.status == 408 || r.status == 504)
            .then(|| format!("status {} where a failure was expected", r.status));
    }
    let want_status = e.status.unwrap_or(200);
    if r.status != want_status {
        return Some(format!(
            "status {} (want {want_status}); body {:?}",
            r.status, r.body
        ));
    }
    if (300..400).contains(&r.status) {
        return e
            .redirect
            .as_ref()
            .and_then(|rd| redirect_mismatch(c, rd, r, listener));
    }
    // Like upstream: only a 200 is checked beyond its status.
    if r.status != 200 {
        return None;
    }
    let got = r.header("x-echo-backend").unwrap_or_default();
    let ns = e.namespace.as_deref().unwrap_or(DEFAULT_NS);
    let want = match &e.backend {
        Some(backend) => format!("{ns}/{backend}"),
        None => format!("{ns}/"),
    };
    if (e.backend.is_some() && got != want) || !got.starts_with(&want) {
        return Some(format!("answered by {got:?}, want {want:?}"));
    }
    let doc = echoed(r);
    if let Some(path) = &e.path {
        let got = doc
            .as_ref()
            .and_then(|d| d["path"].as_str().map(str::to_string))
            .unwrap_or_default();
        let got = if path.contains('?') {
            got
        } else {
            got.split('?').next().unwrap_or_default().to_string()
        };
        if &got != path {
            return Some(format!("backend saw path {got:?}, want {path:?}"));
        }
    }
    if let Some(sni) = &e.sni {
        let got = doc
            .as_ref()
            .and_then(|d| d["tls"]["serverName"].as_str().map(str::to_string))
            .unwrap_or_default();
        if &got != sni {
            return Some(format!("backend saw SNI {got:?}, want {sni:?}"));
        }
    }
    if let Some(host) = &e.host {
        let got = doc
            .as_ref()
            .and_then(|d| d["host"].as_str().map(str::to_string))
            .unwrap_or_default();
        if &got != host {
            return Some(format!("backend saw host {got:?}, want {host:?}"));
        }
    }
    for (k, v) in &e.request_headers {
        let got = doc.as_ref().and_then(|d| echoed_header(d, k));
        if got.as_deref() != Some(v.as_str()) {
            return Some(format!("backend saw header {k}: {got:?}, want {v:?}"));
        }
    }
    for k in &e.absent_request_headers {
        if let Some(got) = doc.as_ref().and_then(|d| echoed_header(d, k)) {
            return Some(format!("backend saw header {k}: {got:?}, want it absent"));
        }
    }
    for (k, v) in &e.response_headers {
        let got: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .collect();
        if got.join(",") != *v {
            return Some(format!("response header {k}: {got:?}, want {v:?}"));
        }
    }
    for k in &e.absent_response_headers {
        if r.header(k).is_some() {
            return Some(format!("response header {k} present, want absent"));
        }
    }
    None
}

fn redirect_mismatch(
    c: &Case,
    rd: &support::conformance::Redirect,
    r: &Response,
    (manifest_port, port_here): (i64, u16),
) -> Option<String> {
    let Some(location) = r.header("location") else {
        return Some("no Location header".into());
    };
    let (scheme, rest) = location.split_once("://").unwrap_or(("", location));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (authority, ""),
    };
    let want_scheme = rd.scheme.as_deref().unwrap_or("http");
    if scheme != want_scheme {
        return Some(format!(
            "Location {location}: scheme {scheme}, want {want_scheme}"
        ));
    }
    if let Some(want_host) = &rd.host
        && host != want_host
    {
        return Some(format!(
            "Location {location}: host {host}, want {want_host}"
        ));
    }
    let well_known = if scheme == "https" { "443" } else { "80" };
    let want_port = match &rd.port {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => well_known.to_string(),
    };
    // The listener's port moved here: where the redirect keeps the listener port, the new one
    // stands for the manifest's (including for a port-80 or 443 listener, no longer the
    // scheme's default).
    let listener_kept = want_port == manifest_port.to_string() && port == port_here.to_string();
    let port_ok =
        listener_kept || port == want_port || (port.is_empty() && want_port == well_known);
    if !port_ok {
        return Some(format!(
            "Location {location}: port {port:?}, want {want_port:?}"
        ));
    }
    let want_path = rd.path.clone().unwrap_or_else(|| c.request.path.clone());
    if path != want_path {
        return Some(format!(
            "Location {location}: path {path}, want {want_path}"
        ));
    }
    None
}

/// Polls until the case holds (Envoy converges within ~a second; upstream allows far more).
fn check_case(w: &Conformance, port: u16, manifest_port: i64, c: &Case) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    let mut streak = 0;
    while Instant::now() < deadline {
        let before: Vec<usize> = c
            .expect
            .mirrored_to
            .iter()
            .filter(|m| m.percent.is_none())
            .map(|m| {
                w.echo_hits(
                    &format!(
                        "{}/{}",
                        m.namespace.as_deref().unwrap_or(DEFAULT_NS),
                        m.backend
                    ),
                    &c.request.path,
                )
            })
            .collect();
        match send_to(w, port, c) {
            Ok(r) => match mismatch(c, &r, (manifest_port, port)) {
                None => {
                    let exact = c.expect.mirrored_to.iter().filter(|m| m.percent.is_none());
                    let mirrored = exact.zip(&before).all(|(m, n)| {
                        let backend = format!(
                            "{}/{}",
                            m.namespace.as_deref().unwrap_or(DEFAULT_NS),
                            m.backend
                        );
                        let until = Instant::now() + Duration::from_secs(2);
                        loop {
                            if w.echo_hits(&backend, &c.request.path) > *n {
                                return true;
                            }
                            if Instant::now() > until {
                                return false;
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    });
                    if mirrored {
                        // Like upstream: a few consecutive good answers, not one lucky one.
                        streak += 1;
                        if streak >= 3 {
                            return Ok(());
                        }
                        continue;
                    }
                    last = format!(
                        "mirror backends {:?} did not see the request",
                        c.expect.mirrored_to
                    );
                }
                Some(why) => last = why,
            },
            Err(e) => last = e.to_string(),
        }
        streak = 0;
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} {} (host {}): {last}",
        c.request.method.as_deref().unwrap_or("GET"),
        c.request.path,
        c.request.host
    ))
}

fn check_status(w: &Conformance, t: &Test) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        let doc: Value = w
            .admin("/debug/status")
            .and_then(|r| serde_json::from_str(&r.body).ok())
            .unwrap_or(Value::Null);
        let mut ok = true;
        for s in &t.status {
            let parents = &doc["status"]["httpRoutes"][&s.route];
            let (pns, pname) = s.parent.split_once('/').unwrap_or_default();
            let parent = parents.as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p["parentRef"]["namespace"] == pns && p["parentRef"]["name"] == pname)
            });
            for want in &s.conditions {
                let got = parent
                    .and_then(|p| p["conditions"].as_array())
                    .and_then(|cs| cs.iter().find(|c| c["type"] == want.type_.as_str()));
                let good = got.is_some_and(|c| {
                    c["status"] == want.status.as_str()
                        && want
                            .reason
                            .as_ref()
                            .is_none_or(|r| c["reason"] == r.as_str())
                });
                if !good {
                    ok = false;
                    last = format!(
                        "{} on {}: {} want {:?}/{:?}, got {:?}",
                        s.route, s.parent, want.type_, want.status, want.reason, got
                    );
                }
            }
        }
        for l in &t.listeners {
            if let Err(e) = listener_holds(&doc, l) {
                ok = false;
                last = e;
            }
        }
        if let Err(e) = policies_hold(&doc, &t.backend_tls_policies) {
            ok = false;
            last = e;
        }
        for g in &t.gateways {
            let conditions = &doc["status"]["gateways"][&g.gateway]["conditions"];
            if let Err(e) = conditions_hold(conditions, &g.conditions) {
                ok = false;
                last = format!("{}: {e}", g.gateway);
            }
        }
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// Whether the BackendTLSPolicies in `/debug/status` have the conditions `want` says.
fn policies_hold(
    doc: &Value,
    want: &[support::conformance::PolicyExpectation],
) -> Result<(), String> {
    for p in want {
        let (gns, gname) = p.gateway.split_once('/').unwrap_or_default();
        let entry = doc["status"]["backendTlsPolicies"][&p.policy]
            .as_array()
            .and_then(|a| {
                a.iter().find(|e| {
                    e["ancestorRef"]["namespace"] == gns && e["ancestorRef"]["name"] == gname
                })
            });
        let conditions = entry.map(|e| e["conditions"].clone()).unwrap_or_default();
        conditions_hold(&conditions, &p.conditions)
            .map_err(|e| format!("{} on {}: {e}", p.policy, p.gateway))?;
    }
    Ok(())
}

/// Applies a step's change to the test's documents (upstream's Go code changes the cluster).
fn apply_step(w: &Conformance, docs: &mut Vec<Value>, action: &str) -> Result<(), String> {
    let key_of = |d: &Value| {
        format!(
            "{}/{}",
            d["metadata"]["namespace"].as_str().unwrap_or_default(),
            d["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    if let Some(rest) = action.strip_prefix("Point BackendTLSPolicy ") {
        let (policy, config_map) = rest
            .split_once(" at ConfigMap ")
            .ok_or_else(|| format!("step {action:?}"))?;
        let doc = docs
            .iter_mut()
            .find(|d| d["kind"] == "BackendTLSPolicy" && key_of(d) == policy)
            .ok_or_else(|| format!("no BackendTLSPolicy {policy}"))?;
        doc["spec"]["validation"]["caCertificateRefs"] =
            serde_json::json!([{"group": "", "kind": "ConfigMap", "name": config_map}]);
        return Ok(());
    }
    if let Some(rest) = action.strip_prefix("Apply ConfigMap ") {
        let (key, what) = rest
            .split_once(" with ")
            .ok_or_else(|| format!("step {action:?}"))?;
        let ca = match what {
            "the tls-checks CA" => w.backend_ca.cert_pem.clone(),
            "an empty ca.crt" => String::new(),
            _ => return Err(format!("step {action:?}")),
        };
        let (ns, name) = key
            .split_once('/')
            .ok_or_else(|| format!("step {action:?}"))?;
        docs.retain(|d| !(d["kind"] == "ConfigMap" && key_of(d) == key));
        docs.push(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": ns, "name": name},
            "data": {"ca.crt": ca},
        }));
        return Ok(());
    }
    Err(format!("unknown step {action:?}"))
}

/// Whether a Gateway listener's status in `/debug/status` meets `want`.
fn listener_holds(
    doc: &Value,
    want: &support::conformance::ListenerExpectation,
) -> Result<(), String> {
    let listener = doc["status"]["gateways"][&want.gateway]["listeners"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == want.listener.as_str()))
        .ok_or_else(|| format!("{} has no listener {}", want.gateway, want.listener))?;
    if let Some(n) = want.attached_routes
        && listener["attachedRoutes"] != n
    {
        return Err(format!(
            "{}/{}: attachedRoutes {} (want {n})",
            want.gateway, want.listener, listener["attachedRoutes"]
        ));
    }
    conditions_hold(&listener["conditions"], &want.conditions)
        .map_err(|e| format!("{}/{}: {e}", want.gateway, want.listener))
}

/// Whether `conditions` (a status's JSON list) has each of `want`.
fn conditions_hold(
    conditions: &Value,
    want: &[support::conformance::StatusCondition],
) -> Result<(), String> {
    for c in want {
        let got = conditions
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["type"] == c.type_.as_str()));
        let good = got.is_some_and(|g| {
            g["status"] == c.status.as_str()
                && c.reason.as_ref().is_none_or(|r| g["reason"] == r.as_str())
        });
        if !good {
            return Err(format!(
                "{} want {:?}/{:?}, got {:?}",
                c.type_, c.status, c.reason, got
            ));
        }
    }
    Ok(())
}

/// `gatehouse translate -o bootstrap` of the gateway, accepted by `envoy --mode validate`.
fn validate(w: &Conformance, gateway: &str) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["translate", "-o", "bootstrap", "--gateway", gateway, "-f"])
        .arg(&w.manifests)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "translate: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let file = w.dir.path().join("validate.yaml");
    std::fs::write(&file, &out.stdout).map_err(|e| e.to_string())?;
    let v = Command::new(support::envoy())
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    if !v.status.success() {
        return Err(format!(
            "envoy --mode validate: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        ));
    }
    Ok(())
}

/// `ns/name` of the ReferenceGrant a "Delete ReferenceGrant NS/NAME" pre-action names.
fn deleted_grant(action: &str) -> Option<&str> {
    action
        .strip_prefix("Delete ReferenceGrant ")?
        .split_whitespace()
        .next()
}

fn run(w: &mut Conformance, t: &Test) -> Result<usize, String> {
    let manifests = if t.manifests.is_empty() {
        std::slice::from_ref(&t.name)
    } else {
        &t.manifests[..]
    };
    let mut text = String::new();
    for m in manifests {
        let file = conformance_dir().join("tests").join(format!("{m}.yaml"));
        let part = std::fs::read_to_string(&file)
            .map_err(|e| format!("manifest {}: {e}", file.display()))?;
        text.push_str("\n---\n");
        text.push_str(&part);
    }
    let mut docs = w.prepare(&text);
    let before = w.builds();
    w.write(TEST_FILE, &docs);
    w.wait_build(before);
    let gateway = t
        .gateway
        .clone()
        .unwrap_or_else(|| format!("{DEFAULT_NS}/same-namespace"));
    if !t.cases.is_empty() {
        validate(w, &gateway)?;
    }
    check_status(w, t)?;
    let mut sent = 0;
    for c in &t.cases {
        if let Some(action) = &c.pre_action {
            if let Some(grant) = deleted_grant(action) {
                docs.retain(|d| {
                    !(d["kind"] == "ReferenceGrant"
                        && format!(
                            "{}/{}",
                            d["metadata"]["namespace"].as_str().unwrap_or_default(),
                            d["metadata"]["name"].as_str().unwrap_or_default()
                        ) == grant)
                });
            } else if action.starts_with(
                "Before any request: read Deployment gateway-conformance-infra/infra-backend-v1",
            ) {
                w.point_slices_at(&mut docs, "gateway-conformance-infra/infra-backend-v1");
            } else {
                return Err(format!("unknown pre_action {action:?}"));
            }
            let before = w.builds();
            w.write(TEST_FILE, &docs);
            w.wait_build(before);
        }
        let gw = c.gateway.clone().unwrap_or_else(|| gateway.clone());
        w.envoy_for(&gw);
        let (manifest_port, port) = w
            .listener(&gw, c.request.scheme.as_deref() == Some("https"))
            .ok_or_else(|| format!("Gateway {gw} has no listener for the case here"))?;
        check_case(w, port, manifest_port, c)?;
        sent += 1;
    }
    for step in &t.steps {
        apply_step(w, &mut docs, &step.action)?;
        let before = w.builds();
        w.write(TEST_FILE, &docs);
        w.wait_build(before);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let doc: Value = w
                .admin("/debug/status")
                .and_then(|r| serde_json::from_str(&r.body).ok())
                .unwrap_or(Value::Null);
            match policies_hold(&doc, &step.backend_tls_policies) {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("after {:?}: {e}", step.action));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    if let Some(d) = &t.distribution {
        let port = w.port(&gateway, 80).ok_or("no port")?;
        distribution(w, t, d, port)?;
    }
    Ok(sent)
}

/// `backend name → hits` over `n` requests like `c`.
fn spread(
    port: u16,
    c: &Case,
    n: usize,
) -> Result<std::collections::BTreeMap<String, usize>, String> {
    let mut hits = std::collections::BTreeMap::new();
    for _ in 0..n {
        let r = send(port, c).map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("status {} during the distribution check", r.status));
        }
        let backend = r.header("x-echo-backend").unwrap_or_default();
        let name = backend.rsplit('/').next().unwrap_or_default().to_string();
        if let Some(seen) = echoed(&r).and_then(|d| echoed_header(&d, "Backend"))
            && seen != name
        {
            return Err(format!(
                "{name} answered a request its filter marked for {seen}"
            ));
        }
        *hits.entry(name).or_insert(0) += 1;
    }
    Ok(hits)
}

/// The statistical checks: traffic weights, and mirror percentages.
fn distribution(w: &Conformance, t: &Test, d: &Value, port: u16) -> Result<(), String> {
    let first = t.cases.first().ok_or("distribution without a case")?;
    if let Some(weights) = d["weights"].as_object() {
        let n = d["requests"].as_u64().unwrap_or(500) as usize;
        let tolerance = d["tolerance"].as_f64().unwrap_or(0.05);
        let mut last = String::new();
        for _ in 0..d["attempts"].as_u64().unwrap_or(10) {
            let hits = spread(port, first, n)?;
            let bad = weights.iter().find_map(|(name, want)| {
                let want = want.as_f64().unwrap_or(0.0);
                let got = *hits.get(name).unwrap_or(&0) as f64 / n as f64;
                let wrong = if want == 0.0 {
                    got > 0.0
                } else {
                    (got - want).abs() > tolerance
                };
                wrong.then(|| {
                    format!("{name}: {got:.3} of traffic, want {want} ± {tolerance} ({hits:?})")
                })
            });
            let unknown = hits.keys().find(|k| !weights.contains_key(*k));
            match (bad, unknown) {
                (None, None) => return Ok(()),
                (Some(b), _) => last = b,
                (None, Some(k)) => last = format!("unexpected backend {k}"),
            }
        }
        return Err(last);
    }
    if let Some(n) = d["requests"].as_u64() {
        // Backend-level header filters: every answer must come from the backend its header names.
        spread(port, first, n as usize)?;
        return Ok(());
    }
    if let Some(n) = d["requests_per_check"].as_u64() {
        for c in &t.cases {
            for m in c.expect.mirrored_to.iter().filter(|m| m.percent.is_some()) {
                let backend = format!(
                    "{}/{}",
                    m.namespace.as_deref().unwrap_or(DEFAULT_NS),
                    m.backend
                );
                let p = m.percent.unwrap_or(0.0) / 100.0;
                let expected = n as f64 * p;
                // Three binomial standard deviations, as the newest upstream check.
                let band = 3.0 * (n as f64 * p * (1.0 - p)).sqrt();
                let mut last = String::new();
                let mut ok = false;
                for _ in 0..d["attempts"].as_u64().unwrap_or(5) {
                    let before = w.echo_hits(&backend, &c.request.path);
                    for _ in 0..n {
                        send(port, c).map_err(|e| e.to_string())?;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    let got = (w.echo_hits(&backend, &c.request.path) - before) as f64;
                    if (got - expected).abs() <= band {
                        ok = true;
                        break;
                    }
                    last = format!(
                        "{} mirrored {got} of {n} requests on {}, want {expected} ± {band:.0}",
                        backend, c.request.path
                    );
                }
                if !ok {
                    return Err(last);
                }
            }
        }
        return Ok(());
    }
    Err(format!("unknown distribution check {d}"))
}

/// The client reads a response up to its end rather than EOF (see `http::read_response`).
#[test]
fn a_response_ends_where_its_framing_says() {
    let fixed = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabcEXTRA";
    assert_eq!(http::framed_len(fixed, "GET"), Some(fixed.len() - 5));
    assert_eq!(http::framed_len(&fixed[..fixed.len() - 7], "GET"), None);
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n";
    assert_eq!(http::framed_len(chunked, "GET"), Some(chunked.len()));
    assert_eq!(http::framed_len(&chunked[..chunked.len() - 2], "GET"), None);
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
    assert_eq!(http::framed_len(head, "HEAD"), Some(head.len()));
    // Without a length the body runs to EOF.
    assert_eq!(http::framed_len(b"HTTP/1.1 200 OK\r\n\r\nabc", "GET"), None);
}

/// `GATEHOUSE_CONFORMANCE_ONLY`: comma-separated test names to run instead of all of them.
fn selected() -> Option<Vec<String>> {
    let only = std::env::var("GATEHOUSE_CONFORMANCE_ONLY").ok()?;
    Some(
        only.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

#[test]
fn httproute_conformance() {
    let mut tests = expectations();
    let only = selected();
    if let Some(names) = &only {
        let unknown: Vec<_> = names
            .iter()
            .filter(|n| !tests.iter().any(|t| &t.name == *n))
            .collect();
        assert!(
            unknown.is_empty(),
            "GATEHOUSE_CONFORMANCE_ONLY names unknown tests {unknown:?}"
        );
        tests.retain(|t| names.contains(&t.name));
    }
    let mut w = Conformance::start();
    let cases = run_suite(&mut w, &tests, |t| &t.name, run, TEST_FILE);
    eprintln!("{} tests, {cases} requests passed", tests.len());
    if only.is_some() {
        // The totals below describe the whole suite.
        return;
    }
    assert!(
        tests.len() >= 30 && cases >= 100,
        "only {} tests / {cases} requests ran",
        tests.len()
    );
}
