//! `gatehouse controller` through a real kube-apiserver at one size: initial status, RSS,
//! propagation idle and back to back, CPU per one-route change; at the largest size also the
//! steady state (rebuilds and API writes without changes) and a restart.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Args;
use crate::apiserver;
use crate::cluster::Cluster;
use crate::compare::{self, Figures};
use crate::http::Conn;
use crate::propagate::{self, Mode};
use crate::report::{Row, Rows, count, mib, ms, settle};
use crate::shared;

/// Requests in flight while creating the world.
const IN_FLIGHT: usize = 16;

/// Controller rows at `n` routes; `standalone` is standalone's at the same size when measured.
pub async fn run(
    n: usize,
    args: &Args,
    standalone: Option<&Figures>,
    largest: bool,
    rows: &mut Rows,
) -> anyhow::Result<()> {
    let scale = shared::scale(n);
    let mut c = Cluster::start().await?;
    let name = "controller";

    // The world, created through the API before the controller starts.
    let mut base = shared::documents(&shared::base(&scale, &c.targets))?;
    shared::headless(&mut base);
    let (namespace, rest) = base.split_first().context("no objects")?;
    c.create(namespace).await?;
    c.create_all(rest, IN_FLIGHT).await?;
    let routes = shared::documents(&shared::routes(&scale)?)?;
    let t0 = Instant::now();
    c.create_all(&routes, IN_FLIGHT).await?;
    let created = t0.elapsed();
    rows.push(Row::info(
        format!(
            "{name}: creating {} HTTPRoutes and {} TrafficPolicies through the API ({IN_FLIGHT} in flight; not the controller's time)",
            count(n),
            count(scale.policies)
        ),
        format!("{:.1} s", created.as_secs_f64()),
    ));
    wait(
        Duration::from_secs(60),
        "the watch to list every route",
        || c.routes.counts().0 >= n,
    )
    .await?;

    // Initial status: from the controller's start, every route already there.
    c.start_controller()?;
    let all_accepted = || c.routes.counts().1 >= n;
    wait(
        Duration::from_secs(900),
        "every HTTPRoute Accepted",
        all_accepted,
    )
    .await
    .with_context(|| tail(&c))?;
    let initial = c.controller()?.started.elapsed();
    let writes_then = c.controller()?.status_writes();
    let writes_settled = settled(|| c.controller().map(|k| k.status_writes()).unwrap_or(0)).await;
    let initial_target = Duration::from_secs(20);
    let figure = format!(
        "{name}: initial status at {} routes (controller start → every HTTPRoute Accepted by us; routes created before the start)",
        count(n)
    );
    let measured = format!(
        "{:.1} s, {writes_then} status writes ({writes_settled} once settled)",
        initial.as_secs_f64()
    );
    rows.push(if n == 10_000 {
        Row::new(figure, "≤ 20 s", measured, initial <= initial_target)
    } else {
        Row::info(figure, measured)
    });

    c.start_envoy("gw-0").await?;
    let port = c.targets.listener_port;
    let mut conn = Conn::new(port);
    propagate::until_served(&mut conn, shared::PLAIN, Instant::now())
        .await
        .with_context(|| tail(&c))?;
    settle();
    let rss = c.controller()?.proc.rss_kib()?;
    let (rss_target, rss_met) = rss_target(n, rss, standalone);
    rows.push(Row::new(
        format!("{name}: RSS at {} routes", count(n)),
        rss_target,
        format!(
            "{:.1} MiB ({})",
            mib(rss),
            c.controller()?.proc.memory_detail()?
        ),
        rss_met,
    ));

    let idle_target = Some((Duration::from_millis(20), Duration::from_millis(50)));
    let mode = Mode::Controller(&c);
    let before = counters(&c)?;
    compare::propagation_rows(&mode, name, n, port, args, idle_target, rows).await?;
    let after = counters(&c)?;
    let changes = compare::added(args).len() as f64;
    rows.push(Row::info(
        format!("{name}: per change over those {changes} new routes: rebuilds, status writes"),
        format!(
            "{:.2}, {:.2}",
            (after.0 - before.0) as f64 / changes,
            (after.1 - before.1) as f64 / changes
        ),
    ));

    cpu_per_change(&c, n, args, rows).await?;

    if largest {
        // Back to the world's own routes, then nothing changes.
        let added = compare::added(args).chain(cpu_routes(args));
        let docs = added
            .map(|i| shared::route(i, &scale).and_then(|t| shared::documents(&t)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for doc in docs.iter().flatten() {
            c.delete(doc).await?;
        }
        settled(|| counters(&c).map(|(b, w)| b + w).unwrap_or(0)).await;
        steady(&c, n, args, rows).await?;
        restart(&mut c, n, args, rows).await?;
    }
    Ok(())
}

/// Rebuilds and status writes so far.
/// Waits until builds and status writes have not moved for a second (the back-to-back run's
/// last statuses are still being written when its routes answer): the next figure measures
/// its own changes only.
async fn quiet(c: &Cluster) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = counters(c)?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counters(c)?;
        if now == last {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("builds and status writes still moving after 60 s: {now:?}");
        }
        last = now;
    }
}

fn counters(c: &Cluster) -> anyhow::Result<(u64, u64)> {
    let k = c.controller()?;
    Ok((k.builds(), k.status_writes()))
}

fn rss_target(n: usize, rss: u64, standalone: Option<&Figures>) -> (String, bool) {
    let mut target = Vec::new();
    let mut met = true;
    if let Some(s) = standalone {
        target.push(format!(
            "≤ 1.3 × standalone = {:.1} MiB",
            mib(s.rss_kib) * 1.3
        ));
        met &= rss as f64 <= s.rss_kib as f64 * 1.3;
    }
    if n == 10_000 {
        target.push("≤ 256 MiB".into());
        met &= mib(rss) <= 256.0;
    }
    if target.is_empty() {
        return ("—".into(), true);
    }
    (target.join(", "), met)
}

/// Routes of the CPU figure.
fn cpu_routes(args: &Args) -> std::ops::Range<usize> {
    let first = compare::added(args).end;
    first..first + args.changes as usize
}

/// Controller CPU (user + system) per one-route change: a new route, waiting for its first 200
/// and its Accepted status each time, over `--changes` changes.
async fn cpu_per_change(c: &Cluster, n: usize, args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
    let scale = shared::scale(n);
    let mode = Mode::Controller(c);
    let mut conn = Conn::new(c.targets.listener_port);
    let k = c.controller()?;
    quiet(c).await?;
    let (b0, w0) = counters(c)?;
    let cpu0 = k.proc.cpu()?;
    for i in cpu_routes(args) {
        let t0 = Instant::now();
        mode.add(i, &scale).await?;
        propagate::until_served(&mut conn, i, t0).await?;
        let name = format!("r{i}");
        wait(Duration::from_secs(30), "the new route's status", || {
            c.routes.accepted(&name)
        })
        .await?;
    }
    // Work the last change set off (its status write echoing back) counts too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per = (k.proc.cpu()? - cpu0) / args.changes.max(1);
    let (b1, w1) = counters(c)?;
    let figure = format!(
        "{}: CPU per one-route change at {} routes (user + system over {} changes; rebuilds, status writes per change: {:.2}, {:.2})",
        "controller",
        count(n),
        args.changes,
        (b1 - b0) as f64 / args.changes as f64,
        (w1 - w0) as f64 / args.changes as f64
    );
    rows.push(if n == 10_000 {
        Row::new(figure, "≤ 5 ms", ms(per), per <= Duration::from_millis(5))
    } else {
        Row::info(figure, ms(per))
    });
    Ok(())
}

/// `--steady-seconds` without changes: rebuilds, status writes, and every write the API server
/// served, by resource (Leases apart: leader election renews one, the API server its own).
async fn steady(c: &Cluster, n: usize, args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
    let (b0, w0) = counters(c)?;
    let api0 = apiserver::writes(&c.client).await?;
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let (b1, w1) = counters(c)?;
    let api1 = apiserver::writes(&c.client).await?;
    let delta = apiserver::delta(&api0, &api1);
    // Writes Gatehouse makes none of: the leader's Lease renewals (expected) and the API
    // server's own background writes (its identity Lease; the `kubernetes` Service's Endpoints,
    // which its reconciler rewrites with no controller-manager running).
    let expected = |k: &str| matches!(k, "leases" | "endpoints");
    let (apart, others): (Vec<String>, Vec<String>) = {
        let list = |keep: bool| {
            delta
                .iter()
                .filter(|(k, _)| expected(k) == keep)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
        };
        (list(true), list(false))
    };
    let secs = args.steady_seconds;
    rows.push(Row::new(
        format!("controller: steady state at {} routes, {secs} s without changes: rebuilds, status writes", count(n)),
        "0, 0",
        format!("{}, {}", b1 - b0, w1 - w0),
        b1 == b0 && w1 == w0,
    ));
    rows.push(Row::new(
        format!("controller: steady state at {} routes, {secs} s: API writes by resource (kube-apiserver's apiserver_request_total; Leases and Endpoints apart)", count(n)),
        "0",
        if others.is_empty() { "0".into() } else { others.join(", ") },
        others.is_empty(),
    ));
    rows.push(Row::info(
        format!("controller: steady state, {secs} s: Lease and Endpoints writes (leader election renewals; the API server's own identity Lease and `kubernetes` Endpoints)"),
        if apart.is_empty() { "0".into() } else { apart.join(", ") },
    ));
    Ok(())
}

/// Restarts the controller with every status already right; its status writes in the first
/// `--restart-seconds` after it is Ready.
async fn restart(c: &mut Cluster, n: usize, args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
    c.stop_controller()?;
    c.start_controller()?;
    let k = c.controller()?;
    wait(
        Duration::from_secs(120),
        "the restarted controller's /readyz",
        || k.ready(),
    )
    .await
    .with_context(|| k.proc.tail())?;
    let ready_after = k.started.elapsed();
    let at_ready = k.status_writes();
    tokio::time::sleep(Duration::from_secs(args.restart_seconds)).await;
    let writes = k.status_writes();
    let builds = k.builds();
    rows.push(Row::new(
        format!(
            "controller: restart at {} routes, statuses right: status writes in the first {} s after Ready",
            count(n),
            args.restart_seconds
        ),
        "0",
        format!(
            "{} (Ready after {:.1} s; {at_ready} writes before Ready; {builds} builds)",
            writes - at_ready,
            ready_after.as_secs_f64()
        ),
        writes == at_ready,
    ));
    Ok(())
}

/// Polls `done` every 10 ms for up to `limit`.
async fn wait(limit: Duration, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while !done() {
        if t0.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until `value` has not moved for 3 s (60 s at most); its last value.
async fn settled(value: impl Fn() -> u64) -> u64 {
    let t0 = Instant::now();
    let (mut last, mut since) = (value(), Instant::now());
    while since.elapsed() < Duration::from_secs(3) && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let v = value();
        if v != last {
            (last, since) = (v, Instant::now());
        }
    }
    last
}

fn tail(c: &Cluster) -> String {
    let (seen, accepted) = c.routes.counts();
    let log = c
        .controller
        .as_ref()
        .map(|k| k.proc.tail())
        .unwrap_or_default();
    format!("{seen} routes seen, {accepted} Accepted\n{log}")
}
