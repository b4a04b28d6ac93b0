//! The fail-closed invariant across configuration changes, through a real Envoy with live
//! connections (docs/security-model.md).
//!
//! Random sequences of changes — provider swapped, extension added, removed, made invalid or
//! switched to fail open, policy moved between Gateway, listener, route and rule, `disable`
//! toggled, an extension renamed (its policies following), an inline `ExternalAuth` filter
//! added and removed, a route moved between listeners and hostnames, the auth Services'
//! endpoints moved — while HTTP/1.1 and HTTP/2 connections opened
//! before each change keep sending requests without credentials:
//!
//! * while the change propagates, a path protected before *and* after it is never answered 2xx;
//! * once a fresh connection sees the new configuration, a path it protects is never answered
//!   2xx on any connection, old ones included (draining filter chains read the new table).
//!
//! Each change is one file, so Gatehouse applies it whole. `GATEHOUSE_TRANSITION_SEQUENCES`
//! (default 6) × `GATEHOUSE_TRANSITION_STEPS` (default 5) changes, seeded by
//! `GATEHOUSE_TRANSITION_SEED` (printed); `make transitions` runs 200 sequences.

use crate::support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::conn::{Conn, Proto};
use support::manifests::{gateway_manifest, http_listener};
use support::procs::free_port;
use support::standalone::World;

const NS: &str = "kgateway-system";
const ALLOW: (&str, &str) = ("x-ext-authz", "allow");

/// Extensions: `a` and `b` gRPC, `c` HTTP.
const EXTS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Gateway,
    /// The `http` listener.
    Listener,
    Route1,
    /// Rule `admin` of route 1.
    Rule1,
    Route2,
}

const TARGETS: [Target; 5] = [
    Target::Gateway,
    Target::Listener,
    Target::Route1,
    Target::Rule1,
    Target::Route2,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Ext(usize),
    Disable,
}

#[derive(Clone, Copy, Debug)]
struct Ext {
    present: bool,
    /// Its backendRef resolves.
    valid: bool,
    fail_open: bool,
    /// Which of the two auth server processes of its protocol the Service's endpoints name.
    server: usize,
    /// Served under another name (policies follow it in the same change): a new provider key.
    renamed: bool,
}

impl Ext {
    fn name(&self, i: usize) -> String {
        if self.renamed {
            format!("{}-renamed", EXTS[i])
        } else {
            EXTS[i].to_string()
        }
    }
}

#[derive(Clone, Debug)]
struct State {
    exts: [Ext; 3],
    policies: BTreeMap<Target, Action>,
    /// Listener of route 2: 0 = `http`, 1 = `other`.
    route2_listener: usize,
    /// Hostname of route 2: 0 = two.example.com, 1 = three.example.com.
    route2_host: usize,
    /// An inline ExternalAuth filter (to Service authz-b) on route 1's `open` rule.
    inline: bool,
}

/// What a request gets, without and with credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Open,
    Protected,
    FailClosed,
    NotFound,
}

impl Outcome {
    fn statuses(self) -> (u16, u16) {
        match self {
            Outcome::Open => (200, 200),
            Outcome::Protected => (403, 200),
            Outcome::FailClosed => (500, 500),
            Outcome::NotFound => (404, 404),
        }
    }

    /// A 2xx without credentials would be an unchecked request.
    fn guarded(self) -> bool {
        matches!(self, Outcome::Protected | Outcome::FailClosed)
    }
}

/// A request the test sends: listener index, host, path.
#[derive(Clone, Copy, Debug)]
struct Probe {
    listener: usize,
    host: &'static str,
    path: &'static str,
}

const ROUTE2_HOSTS: [&str; 2] = ["two.example.com", "three.example.com"];

const PROBES: [Probe; 7] = [
    Probe {
        listener: 0,
        host: "one.example.com",
        path: "/open/x",
    },
    Probe {
        listener: 0,
        host: "one.example.com",
        path: "/admin/x",
    },
    Probe {
        listener: 0,
        host: "two.example.com",
        path: "/x",
    },
    Probe {
        listener: 1,
        host: "two.example.com",
        path: "/x",
    },
    Probe {
        listener: 1,
        host: "one.example.com",
        path: "/admin/x",
    },
    Probe {
        listener: 0,
        host: "three.example.com",
        path: "/y",
    },
    Probe {
        listener: 1,
        host: "three.example.com",
        path: "/y",
    },
];

impl State {
    fn initial() -> State {
        State {
            exts: [Ext {
                present: true,
                valid: true,
                fail_open: false,
                server: 0,
                renamed: false,
            }; 3],
            policies: BTreeMap::new(),
            route2_listener: 0,
            route2_host: 0,
            inline: false,
        }
    }

    fn decide(&self, action: Action) -> Outcome {
        match action {
            Action::Disable => Outcome::Open,
            Action::Ext(i) if self.exts[i].present && self.exts[i].valid => Outcome::Protected,
            Action::Ext(_) => Outcome::FailClosed,
        }
    }

    /// The oracle: docs/policy-attachment.md's precedence, written out for this topology.
    fn outcome(&self, p: Probe) -> Outcome {
        // (route, rule) the probe reaches.
        let (route_target, rule) = match (p.host, p.listener) {
            ("one.example.com", 0) if p.path.starts_with("/admin") => (Target::Route1, Some(1)),
            ("one.example.com", 0) => (Target::Route1, Some(0)),
            (h, l) if h == ROUTE2_HOSTS[self.route2_host] && l == self.route2_listener => {
                (Target::Route2, None)
            }
            _ => return Outcome::NotFound,
        };
        if route_target == Target::Route1 && rule == Some(0) && self.inline {
            return Outcome::Protected;
        }
        let mut levels = Vec::new();
        if rule == Some(1) {
            levels.push(Target::Rule1);
        }
        levels.push(route_target);
        if p.listener == 0 {
            levels.push(Target::Listener);
        }
        levels.push(Target::Gateway);
        levels
            .iter()
            .find_map(|t| self.policies.get(t))
            .map_or(Outcome::Open, |a| self.decide(*a))
    }

    /// One random change.
    fn mutate(&self, rng: &mut Rng) -> (State, String) {
        let mut next = self.clone();
        let what = match rng.below(8) {
            0 | 1 => {
                let t = TARGETS[rng.below(TARGETS.len())];
                let action = if rng.below(4) == 0 {
                    Action::Disable
                } else {
                    Action::Ext(rng.below(EXTS.len()))
                };
                next.policies.insert(t, action);
                format!("policy on {t:?} -> {action:?}")
            }
            2 => {
                let t = TARGETS[rng.below(TARGETS.len())];
                next.policies.remove(&t);
                format!("policy on {t:?} removed")
            }
            3 => {
                // Move a policy to another level.
                let Some((&from, &action)) = next.policies.iter().nth(rng.below(5)) else {
                    return self.mutate(rng);
                };
                let to = TARGETS[rng.below(TARGETS.len())];
                next.policies.remove(&from);
                next.policies.insert(to, action);
                format!("policy moved {from:?} -> {to:?} ({action:?})")
            }
            4 => {
                let i = rng.below(EXTS.len());
                let e = &mut next.exts[i];
                match rng.below(5) {
                    0 => e.present = !e.present,
                    1 => e.valid = !e.valid,
                    2 => e.fail_open = !e.fail_open,
                    3 => e.renamed = !e.renamed,
                    _ => e.server = 1 - e.server,
                }
                format!("extension {} -> {:?}", EXTS[i], next.exts[i])
            }
            5 => {
                next.inline = !next.inline;
                format!("inline ExternalAuth filter {}", next.inline)
            }
            6 if rng.below(2) == 0 => {
                next.route2_listener = 1 - next.route2_listener;
                format!("route 2 moved to listener {}", next.route2_listener)
            }
            6 => {
                next.route2_host = 1 - next.route2_host;
                format!("route 2 moved to {}", ROUTE2_HOSTS[next.route2_host])
            }
            _ => {
                // Swap every policy's provider at once (a provider swap of the issue).
                for a in next.policies.values_mut() {
                    if let Action::Ext(i) = a {
                        *i = (*i + 1) % EXTS.len();
                    }
                }
                "every policy's provider swapped".to_string()
            }
        };
        (next, what)
    }
}

/// Ports of the world's processes that manifests name.
struct Ports {
    listeners: [u16; 2],
    echo: u16,
    grpc: [u16; 2],
    http: [u16; 2],
}

fn service(name: &str, port: u16, app_protocol: Option<&str>) -> String {
    let app = app_protocol.map_or(String::new(), |a| format!(", appProtocol: {a}"));
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{ports: [{{port: 4444{app}}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: {NS}, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    )
}

/// The echo backend as Service `echo:80`.
fn echo_service(port: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: echo, namespace: {NS}}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: echo, namespace: {NS}, labels: {{kubernetes.io/service-name: echo}}}}\naddressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    )
}

/// The whole configuration of `s` as one file.
fn manifests(s: &State, ports: &Ports) -> String {
    let mut out = gateway_manifest(&[
        http_listener("http", None, ports.listeners[0]),
        http_listener("other", None, ports.listeners[1]),
    ]);
    out += &echo_service(ports.echo);
    let inline = if s.inline {
        "    filters:
    - type: ExternalAuth
      externalAuth: {protocol: GRPC, backendRef: {name: authz-b, port: 4444}}
"
    } else {
        ""
    };
    out += &format!(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: one, namespace: {NS}}}
spec:
  parentRefs: [{{name: http, sectionName: http}}]
  hostnames: [one.example.com]
  rules:
  - name: open
    matches: [{{path: {{type: PathPrefix, value: /open}}}}]
{inline}    backendRefs: [{{name: echo, port: 80}}]
  - name: admin
    matches: [{{path: {{type: PathPrefix, value: /admin}}}}]
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: two, namespace: {NS}}}
spec:
  parentRefs: [{{name: http, sectionName: {}}}]
  hostnames: [{}]
  rules:
  - backendRefs: [{{name: echo, port: 80}}]
",
        ["http", "other"][s.route2_listener],
        ROUTE2_HOSTS[s.route2_host]
    );
    for (i, e) in s.exts.iter().enumerate() {
        let name = e.name(i);
        let (svc_port, kind) = if i < 2 {
            (ports.grpc[e.server], "grpcService")
        } else {
            (ports.http[e.server], "httpService")
        };
        let app = (i < 2).then_some("kubernetes.io/h2c");
        out += &service(&format!("authz-{}", EXTS[i]), svc_port, app);
        if !e.present {
            continue;
        }
        let backend = if e.valid {
            format!("authz-{}", EXTS[i])
        } else {
            "no-such-service".into()
        };
        out += &format!(
            "---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {{name: {name}, namespace: {NS}}}
spec:
  type: ExtAuth
  extAuth:
    failOpen: {}
    headersToForward: [x-ext-authz]
    {kind}: {{backendRef: {{name: {backend}, port: 4444}}}}
",
            e.fail_open
        );
    }
    for (t, a) in &s.policies {
        let target = match t {
            Target::Gateway => "{group: gateway.networking.k8s.io, kind: Gateway, name: http}",
            Target::Listener => {
                "{group: gateway.networking.k8s.io, kind: Gateway, name: http, sectionName: http}"
            }
            Target::Route1 => "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: one}",
            Target::Rule1 => {
                "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: one, sectionName: admin}"
            }
            Target::Route2 => "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: two}",
        };
        let ext_auth = match a {
            Action::Ext(i) => format!("{{extensionRef: {{name: {}}}}}", s.exts[*i].name(*i)),
            Action::Disable => "{disable: {}}".into(),
        };
        let _ = write!(
            out,
            "---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: p-{}, namespace: {NS}}}
spec:
  targetRefs: [{target}]
  extAuth: {ext_auth}
",
            format!("{t:?}").to_lowercase()
        );
    }
    out
}

/// splitmix64: reproducible sequences from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A request that should have been checked and was answered 2xx.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug, in the failure message
struct Violation {
    step: String,
    probe: Probe,
    proto: Proto,
    status: u16,
    phase: &'static str,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    checked: u64,
    changes: u64,
    reconnects: u64,
    violations: Vec<Violation>,
}

/// Connections opened before a change: two of each protocol per listener.
async fn open_conns(ports: &Ports, conns: &mut Vec<(usize, Conn)>, tally: &mut Tally) {
    conns.retain(|(_, c)| c.is_open());
    for listener in 0..2 {
        for proto in [Proto::Http1, Proto::Http2] {
            let have = conns
                .iter()
                .filter(|(l, c)| *l == listener && c.proto == proto)
                .count();
            for _ in have..2 {
                let c = Conn::open(ports.listeners[listener], proto)
                    .await
                    .expect("connect to Envoy");
                conns.push((listener, c));
                tally.reconnects += 1;
            }
        }
    }
}

async fn fresh_get(port: u16, p: Probe, headers: &[(&str, &str)]) -> Option<u16> {
    let mut c = Conn::open(port, Proto::Http1).await.ok()?;
    c.get(p.host, p.path, headers).await.map(|r| r.status)
}

/// Polls with fresh connections until every probe answers as `s` says, with and without
/// credentials.
async fn wait_live(s: &State, ports: &Ports, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut ok = true;
        for p in PROBES {
            let want = s.outcome(p).statuses();
            let port = ports.listeners[p.listener];
            // A listener that is not there yet refuses the connection: not live yet.
            let without = fresh_get(port, p, &[]).await;
            let with = fresh_get(port, p, &[ALLOW]).await;
            if (without, with) != (Some(want.0), Some(want.1)) {
                last = format!("{p:?}: got {without:?}/{with:?}, want {want:?}");
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("after {what}: never reached the new state: {last}"))
}

#[test]
fn no_protected_request_is_served_unchecked_across_random_changes() {
    let seed = env("GATEHOUSE_TRANSITION_SEED", {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let sequences = env("GATEHOUSE_TRANSITION_SEQUENCES", 6);
    let steps = env("GATEHOUSE_TRANSITION_STEPS", 5);
    eprintln!("GATEHOUSE_TRANSITION_SEED={seed}: {sequences} sequences of {steps} changes");
    for sotw in [false, true] {
        run(seed, sequences, steps, sotw);
    }
}

fn run(seed: u64, sequences: u64, steps: u64, sotw: bool) {
    let mut w = World::start(sotw);
    let ports = Ports {
        listeners: [w.listener_port, free_port()],
        echo: w.echo_port,
        grpc: [free_port(), free_port()],
        http: [free_port(), free_port()],
    };
    for (i, p) in ports.grpc.iter().enumerate() {
        w.start_authz(&format!("grpc-{i}"), Some(*p), None);
    }
    for (i, p) in ports.http.iter().enumerate() {
        w.start_authz(&format!("http-{i}"), None, Some(*p));
    }
    // The walkthrough's own route and Gateway are replaced by this test's.
    w.remove("httpbin.yaml");
    w.remove("gateway.yaml");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rng = Rng(seed ^ u64::from(sotw));
    let mut tally = Tally::default();
    rt.block_on(async {
        for seq in 0..sequences {
            let mut state = State::initial();
            // Start each sequence from a random configuration.
            for _ in 0..4 {
                state = state.mutate(&mut rng).0;
            }
            w.write("config.yaml", &manifests(&state, &ports));
            if let Err(e) = wait_live(&state, &ports, "initial state").await {
                panic!("seed {seed} sequence {seq}: {e}\n{state:?}\n{}", w.logs());
            }
            let mut conns: Vec<(usize, Conn)> = Vec::new();
            for step in 0..steps {
                open_conns(&ports, &mut conns, &mut tally).await;
                let (next, what) = state.mutate(&mut rng);
                let label = format!("sequence {seq} step {step}: {what}");
                let stop = Arc::new(AtomicBool::new(false));
                // Hammer every old connection while the change propagates.
                let mut tasks = Vec::new();
                for (listener, mut c) in conns.drain(..) {
                    let (before, after, stop) = (state.clone(), next.clone(), stop.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut seen = Vec::new();
                        'outer: while !stop.load(Ordering::Relaxed) {
                            for p in PROBES.iter().filter(|p| p.listener == listener) {
                                let Some(r) = c.get(p.host, p.path, &[]).await else {
                                    break 'outer;
                                };
                                let guarded =
                                    before.outcome(*p).guarded() && after.outcome(*p).guarded();
                                seen.push((*p, r.status, guarded));
                            }
                        }
                        (listener, c, seen)
                    }));
                }
                w.write("config.yaml", &manifests(&next, &ports));
                let live = wait_live(&next, &ports, &label).await;
                stop.store(true, Ordering::Relaxed);
                for t in tasks {
                    let (listener, c, seen) = t.await.expect("connection task");
                    for (probe, status, guarded) in seen {
                        tally.requests += 1;
                        if guarded {
                            tally.checked += 1;
                            if (200..300).contains(&status) {
                                tally.violations.push(Violation {
                                    step: label.clone(),
                                    probe,
                                    proto: c.proto,
                                    status,
                                    phase: "during the change",
                                });
                            }
                        }
                    }
                    conns.push((listener, c));
                }
                if let Err(e) = live {
                    panic!("seed {seed}: {e}\n{next:?}\n{}", w.logs());
                }
                // The change is live: every old connection still open answers as it says.
                for (listener, c) in conns.iter_mut() {
                    for p in PROBES.iter().filter(|p| p.listener == *listener) {
                        let Some(r) = c.get(p.host, p.path, &[]).await else {
                            break;
                        };
                        tally.requests += 1;
                        if next.outcome(*p).guarded() {
                            tally.checked += 1;
                            if (200..300).contains(&r.status) {
                                tally.violations.push(Violation {
                                    step: label.clone(),
                                    probe: *p,
                                    proto: c.proto,
                                    status: r.status,
                                    phase: "after the change",
                                });
                            }
                        }
                    }
                }
                tally.changes += 1;
                state = next;
            }
        }
    });
    eprintln!(
        "{}: {} changes, {} requests on connections opened before a change ({} to guarded paths), {} connections opened, {} unchecked 2xx",
        if sotw { "sotw" } else { "delta" },
        tally.changes,
        tally.requests,
        tally.checked,
        tally.reconnects,
        tally.violations.len()
    );
    assert!(
        tally.violations.is_empty(),
        "seed {seed}: {} unchecked 2xx, first: {:#?}",
        tally.violations.len(),
        &tally.violations[..tally.violations.len().min(5)]
    );
    assert!(tally.checked > 0, "no request reached a guarded path");
}

/// The reproduction: one rule's policy edited from extension A to extension B (not yet
/// used on the port) while four HTTP/1.1 keep-alive connections opened before the edit keep
/// sending requests without credentials for 3 s. Before the guard, 86 of them reached the
/// backend unchecked. Over delta and SotW ADS, and with the port served as route scopes.
#[test]
fn provider_swap_with_open_connections_serves_nothing_unchecked() {
    for (sotw, args) in [
        (false, &[][..]),
        (true, &[][..]),
        (false, &["--route-scopes-from", "1"][..]),
    ] {
        provider_swap(sotw, args);
    }
}

fn provider_swap(sotw: bool, args: &[&str]) {
    let mut w = World::start_with(sotw, args);
    let grpc = [free_port(), free_port()];
    for (i, p) in grpc.iter().enumerate() {
        w.start_authz(&format!("grpc-{i}"), Some(*p), None);
    }
    let ports = Ports {
        listeners: [w.listener_port, 0],
        echo: w.echo_port,
        grpc,
        http: [0, 0],
    };
    let policy = |ext: &str| {
        service("authz-a", ports.grpc[0], Some("kubernetes.io/h2c"))
            + &service("authz-b", ports.grpc[1], Some("kubernetes.io/h2c"))
            + &echo_service(ports.echo)
            + &format!(
                "---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {{name: a, namespace: {NS}}}
spec: {{type: ExtAuth, extAuth: {{grpcService: {{backendRef: {{name: authz-a, port: 4444}}}}}}}}
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayExtension
metadata: {{name: b, namespace: {NS}}}
spec: {{type: ExtAuth, extAuth: {{grpcService: {{backendRef: {{name: authz-b, port: 4444}}}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: one, namespace: {NS}}}
spec:
  parentRefs: [{{name: http}}]
  hostnames: [one.example.com]
  rules:
  - name: open
    matches: [{{path: {{type: PathPrefix, value: /open}}}}]
    backendRefs: [{{name: echo, port: 80}}]
  - name: admin
    matches: [{{path: {{type: PathPrefix, value: /admin}}}}]
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: protect-admin, namespace: {NS}}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: one, sectionName: admin}}]
  extAuth: {{extensionRef: {{name: {ext}}}}}
"
            )
    };
    let admin = Probe {
        listener: 0,
        host: "one.example.com",
        path: "/admin/x",
    };
    w.write("swap.yaml", &policy("a"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = w.listener_port;
    let (unchecked, denied, sent) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(15);
        while fresh_get(port, admin, &[]).await != Some(403)
            || fresh_get(port, admin, &[ALLOW]).await != Some(200)
        {
            assert!(
                Instant::now() < deadline,
                "A never protected /admin\n{}",
                w.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut conns = Vec::new();
        for _ in 0..4 {
            let mut c = Conn::open(port, Proto::Http1).await.expect("connect");
            assert_eq!(
                c.get(admin.host, admin.path, &[]).await.map(|r| r.status),
                Some(403)
            );
            conns.push(c);
        }
        w.write("swap.yaml", &policy("b"));
        let until = Instant::now() + Duration::from_secs(3);
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let (mut ok, mut denied, mut sent) = (0, 0, 0);
                    while Instant::now() < until {
                        let Some(r) = c.get(admin.host, admin.path, &[]).await else {
                            break;
                        };
                        sent += 1;
                        if (200..300).contains(&r.status) {
                            ok += 1;
                        } else {
                            denied += 1;
                        }
                    }
                    (ok, denied, sent)
                })
            })
            .collect();
        let mut totals = (0, 0, 0);
        for t in tasks {
            let (ok, denied, sent) = t.await.expect("task");
            totals = (totals.0 + ok, totals.1 + denied, totals.2 + sent);
        }
        totals
    });
    let mode = format!("sotw={sotw} {args:?}");
    eprintln!(
        "{mode}: {sent} requests on old connections, {unchecked} unchecked 2xx, {denied} refused"
    );
    assert_eq!(
        unchecked,
        0,
        "{mode}: requests reached /admin unchecked\n{}",
        w.logs()
    );
    assert!(
        sent > 100,
        "{mode}: the old connections were not exercised ({sent})"
    );
    // B checks new connections once the change is in.
    w.wait_for_response(
        "B allows /admin with credentials",
        || support::http::get(port, admin.host, admin.path, &[ALLOW]),
        |r| r.status == 200,
    );
    // The old connections hold the chain without B: the guard refused them.
    let guard = w
        .envoy_stat(&format!("http.http-{port}.rbac.gatehouse_guard.denied"))
        .unwrap_or(0);
    eprintln!("{mode}: the chain guard refused {guard}");
    assert!(guard > 0, "{mode}: the guard was not exercised");
}

/// A `failOpen` provider that stops being used (here: its backendRef stops resolving, so its
/// routes fail closed) while checks are in flight: the checks must finish against its cluster,
/// not fail because the cluster was removed under them — a failure `failOpen` would turn into
/// an unchecked 200.
#[test]
fn removing_a_fail_open_provider_lets_no_check_in_flight_through() {
    let mut w = World::start(false);
    let grpc = free_port();
    w.start_authz("grpc-0", Some(grpc), None);
    let ports = Ports {
        listeners: [w.listener_port, free_port()],
        echo: w.echo_port,
        grpc: [grpc, grpc],
        http: [0, 0],
    };
    let mut state = State::initial();
    state.exts[0].fail_open = true;
    state.policies.insert(Target::Route1, Action::Ext(0));
    let admin = PROBES[1];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    w.remove("httpbin.yaml");
    w.remove("gateway.yaml");
    let mut unchecked = 0;
    let mut sent = 0;
    rt.block_on(async {
        for round in 0..10 {
            state.exts[0].valid = true;
            w.write("config.yaml", &manifests(&state, &ports));
            wait_live(&state, &ports, "a fail-open provider in use")
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", w.logs()));
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();
            for i in 0..8 {
                let stop = stop.clone();
                let proto = if i % 2 == 0 {
                    Proto::Http1
                } else {
                    Proto::Http2
                };
                let port = ports.listeners[0];
                tasks.push(tokio::spawn(async move {
                    let (mut ok, mut n) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut c) = Conn::open(port, proto).await else {
                            continue;
                        };
                        while let Some(r) = c.get(admin.host, admin.path, &[]).await {
                            n += 1;
                            if (200..300).contains(&r.status) {
                                ok += 1;
                            }
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                    }
                    (ok, n)
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            state.exts[0].valid = false;
            w.write("config.yaml", &manifests(&state, &ports));
            let live = wait_live(&state, &ports, &format!("round {round}: provider invalid")).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let (ok, n) = t.await.expect("task");
                unchecked += ok;
                sent += n;
            }
            live.unwrap_or_else(|e| panic!("{e}\n{}", w.logs()));
        }
    });
    eprintln!(
        "{sent} requests while a fail-open provider was retired 10 times: {unchecked} unchecked 2xx"
    );
    assert_eq!(
        unchecked, 0,
        "checks in flight failed open when their cluster went away"
    );
}
