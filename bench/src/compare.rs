//! Standalone on the side-by-side world (bench/src/shared.rs) at one size: RSS, idle
//! propagation, back-to-back propagation. The controller rows at the same size compare with it.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Args;
use crate::http::Conn;
use crate::propagate::{self, Mode};
use crate::report::{Row, Rows, count, mib, ms, p50_p99, percentile, settle};
use crate::shared;
use crate::world::World;

/// Index of the first route added after the world's own (past any size measured).
pub const NEW: usize = 1_000_000;

/// What a mode measured at one size, for the rows that compare modes.
pub struct Figures {
    pub rss_kib: u64,
}

/// The propagation rows every mode has: idle, then back to back (judged against idle's p99).
pub async fn propagation_rows(
    mode: &Mode<'_>,
    name: &str,
    n: usize,
    port: u16,
    args: &Args,
    idle_target: Option<(Duration, Duration)>,
    rows: &mut Rows,
) -> anyhow::Result<Vec<Duration>> {
    let scale = shared::scale(n);
    let spacing = Duration::from_millis(args.sample_spacing_ms);
    let idle = propagate::idle(mode, &scale, port, NEW, args.samples, spacing).await?;
    let (p50, p99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let figure = format!(
        "{name}: propagation at {} routes, idle ({} samples {} ms apart: change → first 200)",
        count(n),
        idle.len(),
        args.sample_spacing_ms
    );
    rows.push(match idle_target {
        Some((t50, t99)) => {
            let target = if t99 == Duration::MAX {
                format!("p50 ≤ {}", ms(t50))
            } else {
                format!("p50 ≤ {}, p99 ≤ {}", ms(t50), ms(t99))
            };
            Row::new(figure, target, p50_p99(&idle), p50 <= t50 && p99 <= t99)
        }
        None => Row::info(figure, p50_p99(&idle)),
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b2b = propagate::back_to_back(
        mode,
        &scale,
        port,
        NEW + args.samples,
        args.b2b_changes,
        Duration::from_millis(args.b2b_spacing_ms),
    )
    .await?;
    rows.push(Row::new(
        format!(
            "{name}: propagation at {} routes, back to back ({} new routes {} ms apart, each from its change to its first 200)",
            count(n),
            args.b2b_changes,
            args.b2b_spacing_ms
        ),
        format!("p99 ≤ 2 × idle p99 = {}", ms(p99 * 2)),
        p50_p99(&b2b),
        percentile(&b2b, 0.99) <= p99 * 2,
    ));
    Ok(idle)
}

/// Routes added by [`propagation_rows`].
pub fn added(args: &Args) -> std::ops::Range<usize> {
    NEW..NEW + args.samples + args.b2b_changes
}

/// Standalone at `n` routes on the side-by-side world.
pub async fn standalone(n: usize, args: &Args, rows: &mut Rows) -> anyhow::Result<Figures> {
    let scale = shared::scale(n);
    let mut w = World::start_with(|t| shared::manifests(&scale, t))?;
    let _envoy = w.envoy(shared::GATEWAY, crate::procs::free_port()?)?;
    let port = w.targets.listener_port;
    let mut conn = Conn::new(port);
    propagate::until_served(&mut conn, shared::PLAIN, Instant::now())
        .await
        .with_context(|| w.gatehouse.tail())?;
    settle();
    let rss_kib = w.gatehouse.rss_kib()?;
    rows.push(Row::info(
        format!(
            "standalone: RSS at {} routes (one Gateway, Envoy connected)",
            count(n)
        ),
        format!("{:.1} MiB ({})", mib(rss_kib), w.gatehouse.memory_detail()?),
    ));
    let idle_target = (n == 5_000).then_some((Duration::from_millis(15), Duration::MAX));
    propagation_rows(
        &Mode::Standalone(&w),
        "standalone",
        n,
        port,
        args,
        idle_target,
        rows,
    )
    .await?;
    Ok(Figures { rss_kib })
}
