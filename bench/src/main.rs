//! `gatehouse-bench`: the figures of BENCHMARKS.md, measured with the release binaries, real
//! Envoy and real backends. `make bench` builds everything and runs it.

mod fanout;
mod http;
mod procs;
mod world;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use gatehouse::scale::{self, Scale, Targets};
use gatehouse::store::ObjKey;

use crate::http::Conn;
use crate::world::World;

/// Measures Gatehouse and prints the table of BENCHMARKS.md.
#[derive(Parser, Debug)]
struct Args {
    /// Propagation samples per condition.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Delta ADS clients for the fan-out figure.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds of load while routes and backends churn.
    #[arg(long, default_value_t = 10)]
    churn_seconds: u64,
    /// One-route changes the per-change CPU figure averages over (more to profile them).
    #[arg(long, default_value_t = 20)]
    changes: u32,
    /// Stop after the memory and CPU figures.
    #[arg(long)]
    memory_only: bool,
}

struct Row {
    figure: String,
    target: String,
    measured: String,
    met: bool,
}

/// Where a generated route's Gateway and backend come from when it is written on its own.
const SINGLE: Scale = Scale {
    gateways: 1,
    routes: 1,
    policies: 1,
    services: 1,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// Memory at 1,000 and 10,000 routes and back; translate time and per-change CPU at 10,000.
fn memory_and_cpu(args: &Args, rows: &mut Vec<Row>) -> anyhow::Result<u64> {
    let small = Scale::routes(1_000);
    let large = Scale::routes(10_000);
    let w = World::start(&small)?;
    settle();
    let rss_small = w.gatehouse.rss_kib()?;
    w.write_and_wait("all.yaml", &world::manifests_text(&large, &w.targets))?;
    settle();
    let rss_large = w.gatehouse.rss_kib()?;

    // A one-route change at 10,000 routes: a new route file, 20 times; CPU of the process.
    let cpu_before = w.gatehouse.cpu()?;
    for k in 0..args.changes {
        w.write_and_wait(
            "change.yaml",
            &scale::route(1_000_000 + k as usize, &large, 0),
        )?;
    }
    let per_change = (w.gatehouse.cpu()? - cpu_before) / args.changes.max(1);

    w.remove("change.yaml")?;
    w.write_and_wait("all.yaml", &world::manifests_text(&small, &w.targets))?;
    settle();
    let rss_back = w.gatehouse.rss_kib()?;

    // Full translate (model + translate + snapshot encoding) of 10,000 routes, in process.
    let mut store = gatehouse::store::Store::new();
    let text = scale::manifests(&large, &Targets::default());
    for o in gatehouse::source::files::load_str(std::path::Path::new("bench.yaml"), &text).objects {
        store.apply(o);
    }
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let model = gatehouse::model::build(&store, &Default::default());
        for g in &model.gateways {
            let res = gatehouse::translate::translate_gateway(g, &Default::default());
            std::hint::black_box(gatehouse::snapshot::snapshot(&res));
        }
        runs.push(t.elapsed());
    }
    runs.sort();
    let translate = runs[runs.len() / 2];

    let mib = |k: u64| k as f64 / 1024.0;
    rows.push(Row {
        figure: "controller RSS at 1,000 routes (10 gateways, 100 policies)".into(),
        target: "≤ 64 MiB".into(),
        measured: format!("{:.1} MiB", mib(rss_small)),
        met: mib(rss_small) <= 64.0,
    });
    rows.push(Row {
        figure: "controller RSS at 10,000 routes".into(),
        target: "≤ 256 MiB".into(),
        measured: format!("{:.1} MiB", mib(rss_large)),
        met: mib(rss_large) <= 256.0,
    });
    let back_ratio = rss_back as f64 / rss_small as f64;
    rows.push(Row {
        figure: "RSS back at 1,000 routes after 10,000".into(),
        target: "within 10% of the 1,000 figure".into(),
        measured: format!(
            "{:.1} MiB ({:+.0}%)",
            mib(rss_back),
            (back_ratio - 1.0) * 100.0
        ),
        met: back_ratio <= 1.10,
    });
    rows.push(Row {
        figure: "full translate of 10,000 routes (model + translate + snapshot)".into(),
        target: "≤ 100 ms".into(),
        measured: ms(translate),
        met: translate <= Duration::from_millis(100),
    });
    rows.push(Row {
        figure: "CPU for a one-route change at 10,000 routes (process CPU / change)".into(),
        target: "≤ 5 ms".into(),
        measured: ms(per_change),
        met: per_change <= Duration::from_millis(5),
    });
    Ok(rss_back)
}

/// RSS of a 1,000-route process that never scaled up, after full rebuilds (a Service added
/// each time: every route is resolved again). What "back at 1,000" is fairly compared with: a
/// fresh process's first build is a lower bound no long-running process keeps.
fn steady_small(rows: &mut Vec<Row>, rss_back: u64) -> anyhow::Result<()> {
    let small = Scale::routes(1_000);
    let w = World::start(&small)?;
    settle();
    let rebuilds = 3;
    for k in 0..rebuilds {
        let svc = scale::service(0, &w.targets).replace("svc-0", &format!("extra-{k}"));
        w.write_and_wait(&format!("extra-{k}.yaml"), &svc)?;
    }
    settle();
    let rss = w.gatehouse.rss_kib()?;
    let mib = |k: u64| k as f64 / 1024.0;
    rows.push(Row {
        figure: format!(
            "  RSS at 1,000 routes after {rebuilds} full rebuilds, never scaled up (back at 1,000 relative to it)"
        ),
        target: "—".into(),
        measured: format!(
            "{:.1} MiB ({:+.0}%)",
            mib(rss),
            (rss_back as f64 / rss as f64 - 1.0) * 100.0
        ),
        met: true,
    });
    Ok(())
}

/// Time from writing a new route to its first 200 through Envoy.
async fn propagation(
    w: &World,
    port: u16,
    first: usize,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut conn = Conn::new(port);
    let mut out = Vec::new();
    for k in 0..n {
        let i = first + k;
        let name = format!("new-{i}.yaml");
        let t0 = Instant::now();
        w.write(&name, &scale::route(i, &SINGLE, 0))?;
        let host = scale::host(i);
        loop {
            if conn.get(&host, "/", &[]).await == 200 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("route {i} never answered 200");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push(t0.elapsed());
        w.remove(&name)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out.sort();
    Ok(out)
}

/// Where propagation time goes: write → snapshot built (file event, load, rebuild), → Envoy's
/// ACK (push, Envoy applying the RouteConfiguration), → first 200. Polling /metrics costs the
/// process CPU, so these samples are separate from the propagation figure.
struct Phases {
    built: Vec<Duration>,
    acked: Vec<Duration>,
    served: Vec<Duration>,
}

async fn propagation_phases(
    w: &World,
    port: u16,
    first: usize,
    n: usize,
) -> anyhow::Result<Phases> {
    let mut conn = Conn::new(port);
    let mut p = Phases {
        built: Vec::new(),
        acked: Vec::new(),
        served: Vec::new(),
    };
    for k in 0..n {
        let i = first + k;
        let name = format!("phase-{i}.yaml");
        let (builds, acks) = (w.builds(), w.acks());
        let t0 = Instant::now();
        w.write(&name, &scale::route(i, &SINGLE, 0))?;
        while w.builds() <= builds {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("route {i} was never built");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let built = t0.elapsed();
        while w.acks() <= acks {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("route {i} was never acknowledged");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let acked = t0.elapsed();
        while conn.get(&scale::host(i), "/", &[]).await != 200 {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("route {i} never answered 200");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        p.served.push(t0.elapsed() - acked);
        p.acked.push(acked - built);
        p.built.push(built);
        w.remove(&name)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for v in [&mut p.built, &mut p.acked, &mut p.served] {
        v.sort();
    }
    Ok(p)
}

/// Rewrites routes and a backend's endpoints every `every` until `stop`.
fn churn(
    w: world::Writer,
    targets: Targets,
    stop: Arc<AtomicBool>,
    every: Duration,
    second_echo: u16,
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Route churn: one route rewritten, one added and removed.
        w.write(
            "churn-a.yaml",
            &scale::route(40_000, &SINGLE, (n % 7) as usize),
        )?;
        if n.is_multiple_of(2) {
            w.write("churn-b.yaml", &scale::route(40_001, &SINGLE, 0))?;
        } else {
            let _ = w.remove("churn-b.yaml");
        }
        // Backend churn: svc-1 (route r1's backend) gains and loses a second endpoint.
        let mut svc = scale::service(1, &targets);
        if n.is_multiple_of(2) {
            svc = svc.replace(
                "endpoints: [{addresses: [127.0.0.1]}]",
                &format!("endpoints: [{{addresses: [127.0.0.1]}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: svc-1-extra, namespace: bench, labels: {{kubernetes.io/service-name: svc-1}}}}\naddressType: IPv4\nports: [{{name: http, port: {second_echo}}}]\nendpoints: [{{addresses: [127.0.0.2]}}]"),
            );
        }
        w.write("churn-svc.yaml", &svc)?;
        n += 1;
        std::thread::sleep(every);
    }
    Ok(n)
}

async fn routing(args: &Args, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let big = Scale {
        gateways: 1,
        routes: 5_000,
        policies: 500,
        services: 500,
    };
    let mut w = World::start(&big)?;
    // A second echo on 127.0.0.2 for backend churn.
    let second_port = procs::free_port()?;
    let mut echo = std::process::Command::new(procs::bin("gatehouse-echo")?);
    echo.args([
        "--addr",
        &format!("127.0.0.2:{second_port}"),
        "--name",
        "echo-2",
    ])
    .env("RUST_LOG", "warn");
    w.others
        .push(procs::Proc::spawn("echo-2", echo, w.dir.path())?);
    let envoy_admin = procs::free_port()?;
    let _envoy = w.envoy("bench/gw-0", envoy_admin)?;
    let port = w.targets.listener_port;
    let mut conn = Conn::new(port);
    let start = Instant::now();
    while conn.get(&scale::host(1), "/", &[]).await != 200 {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("Envoy never served route r1\n{}", w.gatehouse.tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let idle = propagation(&w, port, 20_000, args.samples).await?;
    let phases = propagation_phases(&w, port, 25_000, args.samples.min(20)).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (stop, writer, targets) = (stop.clone(), w.writer(), w.targets.clone());
        std::thread::spawn(move || {
            churn(
                writer,
                targets,
                stop,
                Duration::from_millis(50),
                second_port,
            )
        })
    };
    let busy = propagation(&w, port, 30_000, args.samples).await?;

    // Load on a plain and a protected route while everything churns.
    let total = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let load_stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for c in 0..4 {
        let (total, bad, load_stop) = (total.clone(), bad.clone(), load_stop.clone());
        loaders.push(tokio::spawn(async move {
            let mut conn = Conn::new(port);
            // r0 is protected by a policy; the demo auth server allows `x-ext-authz: allow`.
            let (host, headers): (String, Vec<(&str, &str)>) = if c % 2 == 0 {
                (scale::host(1), vec![])
            } else {
                (scale::host(0), vec![("x-ext-authz", "allow")])
            };
            while !load_stop.load(Ordering::Relaxed) {
                let status = conn.get(&host, "/", &headers).await;
                total.fetch_add(1, Ordering::Relaxed);
                if !(200..300).contains(&status) {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.churn_seconds)).await;
    load_stop.store(true, Ordering::Relaxed);
    for l in loaders {
        let _ = l.await;
    }
    stop.store(true, Ordering::Relaxed);
    let churned = churner
        .join()
        .map_err(|_| anyhow::anyhow!("churn thread panicked"))??;

    rows.push(Row {
        figure: format!(
            "propagation at 5,000 routes, idle (write → first 200, {} samples)",
            idle.len()
        ),
        target: "p50 ≤ 20 ms, p99 ≤ 100 ms".into(),
        measured: format!(
            "p50 {}, p99 {}",
            ms(percentile(&idle, 0.5)),
            ms(percentile(&idle, 0.99))
        ),
        met: percentile(&idle, 0.5) <= Duration::from_millis(20)
            && percentile(&idle, 0.99) <= Duration::from_millis(100),
    });
    let p50 = |v: &[Duration]| ms(percentile(v, 0.5));
    rows.push(Row {
        figure: format!(
            "  where idle propagation goes (p50 of {} more samples): write → built, → Envoy ACK, → first 200",
            phases.built.len()
        ),
        target: "—".into(),
        measured: format!(
            "{}, {}, {}",
            p50(&phases.built),
            p50(&phases.acked),
            p50(&phases.served)
        ),
        met: true,
    });
    rows.push(Row {
        figure: "propagation at 5,000 routes under continuous churn".into(),
        target: "p99 ≤ 300 ms".into(),
        measured: format!(
            "p50 {}, p99 {}",
            ms(percentile(&busy, 0.5)),
            ms(percentile(&busy, 0.99))
        ),
        met: percentile(&busy, 0.99) <= Duration::from_millis(300),
    });
    let (total, bad) = (total.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    rows.push(Row {
        figure: format!(
            "non-2xx under load while routes and backends churn ({churned} churn steps, {}s)",
            args.churn_seconds
        ),
        target: "0".into(),
        measured: format!("{bad} of {total}"),
        met: bad == 0 && total > 0,
    });

    Ok(())
}

/// Fan-out to N delta ADS clients of one Gateway, and the memory an idle stream costs. A fresh
/// Gatehouse process: in the one that just churned, streams reuse pages the allocator kept
/// from earlier builds and the growth per stream reads near zero.
async fn fan_out(args: &Args, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let w = World::start(&Scale::routes(10))?;
    settle();
    let fan = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: fan, namespace: bench}\nspec:\n  gatewayClassName: gatehouse\n  listeners: [{name: a, protocol: HTTP, port: 18080}]\n";
    w.write_and_wait("fan.yaml", fan)?;
    settle();
    let rss_before = w.gatehouse.rss_kib()?;
    let gateway = ObjKey::new("bench", "fan");
    let clients = fanout::connect(w.xds_port, &gateway, args.clients, "http-18081".into()).await?;
    let connected = fanout::until(&clients.connected, args.clients, Duration::from_secs(60)).await;
    if connected.is_none() {
        bail!(
            "only {} of {} ADS clients got config",
            clients.connected.load(Ordering::Relaxed),
            args.clients
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rss_after = w.gatehouse.rss_kib()?;
    let t0 = Instant::now();
    w.write(
        "fan.yaml",
        &fan.replace(
            "port: 18080}]",
            "port: 18080}, {name: b, protocol: HTTP, port: 18081}]",
        ),
    )?;
    let reached = fanout::until(&clients.updated, args.clients, Duration::from_secs(30)).await;
    let per_stream = (rss_after.saturating_sub(rss_before)) as f64 / args.clients as f64;
    match reached {
        Some(_) => {
            let d = t0.elapsed();
            rows.push(Row {
                figure: format!("{} delta ADS clients receive one change", args.clients),
                target: "≤ 1 s".into(),
                measured: ms(d),
                met: d <= Duration::from_secs(1),
            });
        }
        None => rows.push(Row {
            figure: format!("{} delta ADS clients receive one change", args.clients),
            target: "≤ 1 s".into(),
            measured: format!(
                "only {} within 30 s",
                clients.updated.load(Ordering::Relaxed)
            ),
            met: false,
        }),
    }
    rows.push(Row {
        figure: "RSS per idle delta ADS stream".into(),
        target: "≤ 20 KiB".into(),
        measured: format!("{per_stream:.1} KiB"),
        met: per_stream <= 20.0,
    });
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut rows = Vec::new();
    let rss_back = memory_and_cpu(&args, &mut rows)?;
    steady_small(&mut rows, rss_back)?;
    if !args.memory_only {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(routing(&args, &mut rows))?;
        rt.block_on(fan_out(&args, &mut rows))?;
    }
    println!("machine: {machine}, {cores} cores");
    println!("| figure | target | measured | met |");
    println!("| --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.figure,
            r.target,
            r.measured,
            match (r.target.as_str(), r.met) {
                // A breakdown, not a target.
                ("—", _) => "—",
                (_, true) => "yes",
                (_, false) => "**no**",
            }
        );
    }
    Ok(())
}
