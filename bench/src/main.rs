//! `gatehouse-bench`: the figures of BENCHMARKS.md, measured with the release binaries, real
//! Envoy and real backends; controller mode through a real kube-apiserver, side by side with
//! standalone on the same world. `make bench` builds everything and runs it all.

mod apiserver;
mod cluster;
mod compare;
mod controller;
mod fanout;
mod grpc;
mod http;
mod procs;
mod propagate;
mod report;
mod routing;
mod shared;
mod standalone;
mod tls;
mod world;

use clap::{Parser, ValueEnum};

use crate::report::Rows;

/// Parts of a run (`--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Standalone at the scale: memory, translate, CPU, churn, fan-out.
    Standalone,
    /// Standalone on the side-by-side world at each of --sizes (the controller's comparison).
    Compare,
    /// Controller mode through a real kube-apiserver at each of --sizes.
    Controller,
    /// HTTPS: --tls-hostnames listeners with their own certificates on one port; rotation.
    Tls,
    /// GRPCRoute: --grpc-routes routes, half protected, called with a gRPC client.
    Grpc,
}

/// Measures Gatehouse and prints the table of BENCHMARKS.md.
#[derive(Parser, Debug)]
pub struct Args {
    /// Propagation samples per condition.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Time between one idle propagation sample's first 200 and the next sample's change.
    #[arg(long, default_value_t = 100)]
    sample_spacing_ms: u64,
    /// New routes of the back-to-back propagation figure.
    #[arg(long, default_value_t = 200)]
    b2b_changes: usize,
    /// Time between two back-to-back changes.
    #[arg(long, default_value_t = 5)]
    b2b_spacing_ms: u64,
    /// Delta ADS clients for the fan-out figure.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds of load while routes and backends churn.
    #[arg(long, default_value_t = 10)]
    churn_seconds: u64,
    /// One-route changes the per-change CPU figures average over (more to profile them).
    #[arg(long, default_value_t = 20)]
    changes: u32,
    /// Stop the standalone part after the memory and CPU figures.
    #[arg(long)]
    memory_only: bool,
    /// Only these parts (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Route counts of the side-by-side parts (compare, controller); the steady-state and
    /// restart figures are taken at the largest.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 5_000, 10_000])]
    sizes: Vec<usize>,
    /// Seconds without changes of the controller's steady-state figure.
    #[arg(long, default_value_t = 60)]
    steady_seconds: u64,
    /// Seconds after a restarted controller is Ready in which its status writes are counted.
    #[arg(long, default_value_t = 30)]
    restart_seconds: u64,
    /// HTTPS listeners (each with its own certificate and route) of the TLS part.
    #[arg(long, default_value_t = 1000)]
    tls_hostnames: usize,
    /// GRPCRoutes (each its own hostname; every other one protected) of the gRPC part.
    #[arg(long, default_value_t = 1000)]
    grpc_routes: usize,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Rows::default();
    if args.runs(Part::Standalone) {
        let rss_back = standalone::memory_and_cpu(&args, &mut rows)?;
        standalone::steady_small(&mut rows, rss_back)?;
        if !args.memory_only {
            rt.block_on(routing::routing(&args, &mut rows))?;
            rt.block_on(standalone::fan_out(&args, &mut rows))?;
        }
    }
    if args.runs(Part::Tls) {
        tls::run(&args, &mut rows)?;
    }
    if args.runs(Part::Grpc) {
        rt.block_on(grpc::run(&args, &mut rows))?;
    }
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    for &n in &args.sizes {
        let figures = if args.runs(Part::Compare) {
            Some(rt.block_on(compare::standalone(n, &args, &mut rows))?)
        } else {
            None
        };
        if args.runs(Part::Controller) {
            rt.block_on(controller::run(
                n,
                &args,
                figures.as_ref(),
                n == largest,
                &mut rows,
            ))?;
        }
    }
    println!("machine: {machine}, {cores} cores");
    println!("| figure | target | measured | met |");
    println!("| --- | --- | --- | --- |");
    for r in &rows.0 {
        println!("{}", r.line());
    }
    Ok(())
}
