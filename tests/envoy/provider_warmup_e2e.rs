//! Make-before-break for auth providers (issue 17), with real Envoy and traffic.
//!
//! Every round adds two new GatewayExtensions, each backed by its own freshly started auth
//! server, and rule-level policies that switch two rules over to them at once (round 1 turns
//! auth on, later rounds replace the previous round's providers, whose clusters leave the
//! config), while several threads keep sending requests that the auth servers allow. No such
//! request may be refused, and no provider's ext_authz `error` counter may move.
//!
//! Before the fix, checks in flight on the replaced providers' clusters were reset when
//! Gatehouse removed those clusters right after Envoy ACKed the new listener and routes: 403
//! without a check, counted in the *old* provider's `error` counter, in nearly every round
//! (`GATEHOUSE_TEST_REMOVAL_GRACE=0`, i.e. `--cluster-removal-grace 0`, brings it back: 194 of
//! 3,186 allowed requests refused in 86 rounds, an error in nearly every round).

use crate::support;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::http;
use support::manifests;
use support::procs::free_port;
use support::standalone::World;

const HOST: &str = "warm.example.com";
const NS: &str = "kgateway-system";
const ALLOW: (&str, &str) = ("x-ext-authz", "allow");
const RULES: [&str; 2] = ["a", "b"];
/// Rounds are bounded by time rather than count, so that the test stays short on a slow
/// machine; `MIN_ROUNDS` keeps it meaningful on a very slow one.
const BUDGET: Duration = Duration::from_secs(20);
const MIN_ROUNDS: usize = 12;
const LOAD_THREADS: usize = 4;

/// The route whose two rules the rounds' policies protect, and the grant that lets policies
/// in the route's namespace name providers in the Gateway's.
fn route() -> String {
    format!(
        "{}---\n{}",
        manifests::policy_grant(NS, "warm-policies"),
        manifests::route("warm", HOST, manifests::RULES_A_B)
    )
}

/// Provider `name` (its Service, endpoints on `port`, GatewayExtension) and the policy that
/// puts it on rule `rule`.
fn provider(name: &str, port: u16, rule: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NS}}}
spec: {{ports: [{{port: 4444, appProtocol: kubernetes.io/h2c}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}, namespace: {NS}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {{name: {name}, namespace: {NS}}}
spec: {{extAuth: {{grpcService: {{backendRef: {{name: {name}, port: 4444}}}}}}}}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: rule-{rule}, namespace: httpbin}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: warm, sectionName: {rule}}}]
  extAuth: {{extensionRef: {{name: {name}, namespace: {NS}}}}}
"
    )
}

fn provider_name(round: usize, rule: &str) -> String {
    format!("r{round}{rule}")
}

/// Every non-zero ext_authz `error` counter of the Gateway listener (Envoy keeps the counters
/// of filters that left the config).
fn auth_errors(w: &World) -> Vec<String> {
    let prefix = format!("http.http-{}.ext_authz.", w.listener_port);
    let body = w
        .envoy_admin("/stats?filter=ext_authz")
        .map(|r| r.body)
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(".error: ") && !l.ends_with(": 0"))
        .map(str::to_string)
        .collect()
}

/// Allowed requests that were not answered 2xx, with what the client saw.
#[derive(Default)]
struct Load {
    sent: AtomicU64,
    round: AtomicU64,
    refused: Mutex<Vec<String>>,
}

fn run_load(port: u16, stop: Arc<AtomicBool>, load: Arc<Load>, thread: usize) {
    let mut i = thread;
    while !stop.load(Ordering::Relaxed) {
        let path = format!("/{}", RULES[i % 2]);
        i += 1;
        load.sent.fetch_add(1, Ordering::Relaxed);
        match http::get(port, HOST, &path, &[ALLOW]) {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => load.refused.lock().expect("lock").push(format!(
                "round {} {path}: {} {:?} {}",
                load.round.load(Ordering::Relaxed),
                r.status,
                r.headers,
                r.body.chars().take(200).collect::<String>()
            )),
            // The listener itself never goes away here; a transport error is a refusal too.
            Err(e) => load
                .refused
                .lock()
                .expect("lock")
                .push(format!("{path}: {e}")),
        }
    }
}

/// Which provider answered an allowed request to `path` (`open` when none checked it).
fn answered_by(w: &World, path: &str) -> String {
    match http::get(w.listener_port, HOST, path, &[ALLOW]) {
        Ok(r) if r.status == 200 => r
            .echoed_header("x-ext-authz-provider")
            .unwrap_or_else(|| "open".into()),
        Ok(r) => format!("status {}", r.status),
        Err(e) => e.to_string(),
    }
}

fn rounds_under_load(sotw: bool) {
    // GATEHOUSE_TEST_REMOVAL_GRACE=0 serves the way Gatehouse did before the fix.
    let grace = std::env::var("GATEHOUSE_TEST_REMOVAL_GRACE").unwrap_or_else(|_| "15".into());
    let mut w = World::start_with(sotw, &["--cluster-removal-grace", &grace]);
    w.write_and_wait("warm-route.yaml", &route());
    w.wait_for_response(
        "the warm route",
        || http::get(w.listener_port, HOST, "/a", &[ALLOW]),
        |r| r.status == 200,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let threads: Vec<_> = (0..LOAD_THREADS)
        .map(|t| {
            let (stop, load, port) = (Arc::clone(&stop), Arc::clone(&load), w.listener_port);
            std::thread::spawn(move || run_load(port, stop, load, t))
        })
        .collect();

    let start = Instant::now();
    let mut round = 0;
    while round < MIN_ROUNDS || start.elapsed() < BUDGET {
        round += 1;
        load.round.store(round as u64, Ordering::Relaxed);
        let mut doc = String::new();
        for rule in RULES {
            let name = provider_name(round, rule);
            let port = free_port();
            w.start_authz(&name, Some(port), None);
            doc.push_str(&provider(&name, port, rule));
        }
        // Both providers and both policies in one file: one snapshot enables them at once.
        w.write("warm-providers.yaml", &doc);
        w.wait_until(
            &format!("round {round}'s providers answering"),
            Duration::from_secs(30),
            |w| {
                RULES
                    .iter()
                    .all(|rule| answered_by(w, &format!("/{rule}")) == provider_name(round, rule))
            },
        );
        // Checks on a replaced provider end within its 2 s timeout; its server stays up three
        // rounds longer than that could take, then goes, so that the two cores are not
        // shared with dozens of idle processes.
        if round > 3 {
            for rule in RULES {
                let old = provider_name(round - 3, rule);
                w.procs.retain(|p| p.name != old);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }
    let errors = auth_errors(&w);
    // The chain guard refuses a new connection that meets the new filter chain before the new
    // route table (the old table needs the replaced providers): a refusal, never a request
    // through unchecked, and not what this test is about — checks of a provider failing
    // because its cluster went away under them. Counted and shown; docs/security-model.md.
    let (guard, refused): (Vec<String>, Vec<String>) = load
        .refused
        .lock()
        .expect("lock")
        .iter()
        .cloned()
        .partition(|r| r.ends_with("RBAC: access denied"));
    let sent = load.sent.load(Ordering::Relaxed);
    eprintln!(
        "{round} rounds, {sent} allowed requests, {} refused ({} more by the chain guard in the listener-to-routes window), {} auth error counters above 0",
        refused.len(),
        guard.len(),
        errors.len()
    );
    assert!(
        refused.is_empty() && errors.is_empty(),
        "{} of {sent} allowed requests refused in {round} rounds; auth errors {:#?}; first refusals: {:#?}\n{}",
        refused.len(),
        &errors[..errors.len().min(10)],
        &refused[..refused.len().min(10)],
        w.logs()
    );
}

#[test]
fn new_providers_never_refuse_allowed_requests_delta() {
    rounds_under_load(false);
}

#[test]
fn new_providers_never_refuse_allowed_requests_sotw() {
    rounds_under_load(true);
}
