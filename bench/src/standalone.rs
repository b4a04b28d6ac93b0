//! Standalone at the scale (10 Gateways): memory at 1,000 and 10,000 routes and back,
//! full translate time, per-change CPU, and xDS fan-out to many delta ADS clients.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use gatehouse::scale::{self, Scale, Targets};
use gatehouse::store::ObjKey;

use crate::Args;
use crate::fanout;
use crate::report::{Row, Rows, ms, settle};
use crate::world::{self, World};

/// Memory at 1,000 and 10,000 routes and back; translate time and per-change CPU at 10,000.
pub fn memory_and_cpu(args: &Args, rows: &mut Rows) -> anyhow::Result<u64> {
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
pub fn steady_small(rows: &mut Rows, rss_back: u64) -> anyhow::Result<()> {
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

/// Fan-out to N delta ADS clients of one Gateway, and the memory an idle stream costs. A fresh
/// Gatehouse process: in the one that just churned, streams reuse pages the allocator kept
/// from earlier builds and the growth per stream reads near zero.
pub async fn fan_out(args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
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
