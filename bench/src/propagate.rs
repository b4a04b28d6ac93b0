//! Propagation in either mode: a new route (a file written into standalone's directory, or an
//! HTTPRoute POSTed to the API server) → the first 200 for it through Envoy, polled every 1 ms.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use gatehouse::scale::Scale;

use crate::cluster::Cluster;
use crate::http::Conn;
use crate::shared;
use crate::world::World;

/// Longest a new route may take to answer 200.
const LIMIT: Duration = Duration::from_secs(30);

/// Where new routes go.
pub enum Mode<'a> {
    Standalone(&'a World),
    Controller(&'a Cluster),
}

impl Mode<'_> {
    /// Issues route `i`: returns once the file is in place or the API server accepted the POST.
    pub async fn add(&self, i: usize, scale: &Scale) -> anyhow::Result<()> {
        let text = shared::route(i, scale)?;
        match self {
            Mode::Standalone(w) => w.write(&format!("extra-{i}.yaml"), &text),
            Mode::Controller(c) => {
                for doc in shared::documents(&text)? {
                    c.create(&doc).await?;
                }
                Ok(())
            }
        }
    }
}

/// Polls route `i` every 1 ms until it answers 200 (`LIMIT` after `t0` at most).
pub async fn until_served(conn: &mut Conn, i: usize, t0: Instant) -> anyhow::Result<()> {
    let (host, path) = shared::target(i);
    while conn.get(&host, &path, &[]).await != 200 {
        if t0.elapsed() > LIMIT {
            bail!("route {i} ({host}{path}) never answered 200");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// `samples` new routes from index `first`, one at a time, `spacing` between one's first 200
/// and the next one's change; each timed from its change to its first 200. Sorted.
pub async fn idle(
    mode: &Mode<'_>,
    scale: &Scale,
    port: u16,
    first: usize,
    samples: usize,
    spacing: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut conn = Conn::new(port);
    let mut out = Vec::with_capacity(samples);
    for i in first..first + samples {
        let t0 = Instant::now();
        mode.add(i, scale).await?;
        until_served(&mut conn, i, t0).await?;
        out.push(t0.elapsed());
        tokio::time::sleep(spacing).await;
    }
    out.sort();
    Ok(out)
}

/// Pollers sharing the pending routes of a back-to-back run (each with one connection; a
/// poller per route would load Envoy with thousands of requests a second).
const POLLERS: usize = 2;

/// `n` new routes from index `first`, issued `spacing` apart whatever the previous ones did
/// (POSTs overlap when the API server is slower than that); each timed from its own change to
/// its own first 200. Sorted.
pub async fn back_to_back(
    mode: &Mode<'_>,
    scale: &Scale,
    port: u16,
    first: usize,
    n: usize,
    spacing: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let issued: RefCell<Vec<Option<Instant>>> = RefCell::new(vec![None; n]);
    let served: RefCell<Vec<Option<Instant>>> = RefCell::new(vec![None; n]);
    let start = tokio::time::Instant::now();
    let issue = async {
        let mut changes: FuturesUnordered<_> = (0..n)
            .map(|k| {
                let (issued, spacing) = (&issued, spacing);
                async move {
                    tokio::time::sleep_until(start + spacing * k as u32).await;
                    issued.borrow_mut()[k] = Some(Instant::now());
                    mode.add(first + k, scale).await
                }
            })
            .collect();
        while let Some(r) = changes.next().await {
            r?;
        }
        anyhow::Ok(())
    };
    let poll = |p: usize| {
        let (issued, served) = (&issued, &served);
        async move {
            let mut conn = Conn::new(port);
            loop {
                let pending: Vec<(usize, Instant)> = {
                    let (issued, served) = (issued.borrow(), served.borrow());
                    (p..n)
                        .step_by(POLLERS)
                        .filter(|k| served[*k].is_none())
                        .filter_map(|k| issued[k].map(|t| (k, t)))
                        .collect()
                };
                let left = (p..n)
                    .step_by(POLLERS)
                    .filter(|k| served.borrow()[*k].is_none())
                    .count();
                if left == 0 {
                    return anyhow::Ok(());
                }
                for (k, t0) in pending {
                    let (host, path) = shared::target(first + k);
                    if conn.get(&host, &path, &[]).await == 200 {
                        served.borrow_mut()[k] = Some(Instant::now());
                    } else if t0.elapsed() > LIMIT {
                        bail!("route {} ({host}{path}) never answered 200", first + k);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let pollers = futures::future::try_join_all((0..POLLERS).map(poll));
    futures::future::try_join(issue, pollers).await?;
    let (issued, served) = (issued.into_inner(), served.into_inner());
    let mut out: Vec<Duration> = issued
        .iter()
        .zip(&served)
        .filter_map(|(i, s)| Some(s.as_ref()?.duration_since(*i.as_ref()?)))
        .collect();
    if out.len() != n {
        bail!("only {} of {n} back-to-back routes were timed", out.len());
    }
    out.sort();
    Ok(out)
}
