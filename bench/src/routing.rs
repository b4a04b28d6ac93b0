//! Standalone at 5,000 routes on one Gateway: propagation idle and under churn, where idle
//! propagation goes, and errors under load while routes and backends churn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use gatehouse::scale::{self, Scale, Targets};

use crate::Args;
use crate::http::Conn;
use crate::procs;
use crate::report::{Row, Rows, ms, percentile};
use crate::world::{self, World};

/// Where a generated route's Gateway and backend come from when it is written on its own.
const SINGLE: Scale = Scale {
    gateways: 1,
    routes: 1,
    policies: 1,
    services: 1,
};

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

pub async fn routing(args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
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
