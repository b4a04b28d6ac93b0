//! GRPCRoutes at scale (`--only grpc`): `--grpc-routes` GRPCRoutes (each its own hostname, half
//! of them protected by a TrafficPolicy that selects GRPCRoutes by label) served by standalone
//! to a real Envoy, called with a real gRPC client (tonic) against the GrpcEcho backend.
//! Measured: every route written → the last one answering; one new GRPCRoute → its first
//! successful call, polled every 1 ms on a warm connection; memory at that scale.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gatehouse_grpc_echo::pb::Context as EchoContext;
use gatehouse_grpc_echo::pb::EchoRequest;
use gatehouse_grpc_echo::pb::grpc_echo_client::GrpcEchoClient;
use tonic::transport::Channel;

use crate::Args;
use crate::procs::{Proc, bin, free_port, wait_port};
use crate::report::{Row, Rows, mib, p50_p99, percentile};
use crate::world::World;

/// The propagation target the HTTPRoute figures hold (BENCHMARKS.md, idle p50).
const PROPAGATION_TARGET: Duration = Duration::from_millis(20);
const GATEWAY: &str = "bench/grpc";

fn host(i: usize) -> String {
    format!("g{i}.grpc.example")
}

fn route(i: usize) -> String {
    let label = if i.is_multiple_of(2) {
        "protected"
    } else {
        "open"
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g{i}, namespace: bench, labels: {{auth: {label}}}}}\nspec:\n  parentRefs: [{{name: grpc}}]\n  hostnames: [{}]\n  rules:\n  - matches: [{{method: {{service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho}}}}]\n    backendRefs: [{{name: grpc-echo, port: 9000}}]\n",
        host(i)
    )
}

fn manifests(n: usize, port: u16, echo_port: u16, authz_port: u16) -> String {
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: gatehouse}}\nspec: {{controllerName: gatehouse.dev/gatehouse}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: bench}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: grpc, namespace: bench}}\nspec:\n  gatewayClassName: gatehouse\n  listeners: [{{name: http, protocol: HTTP, port: {port}}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: grpc-echo, namespace: bench}}\nspec: {{ports: [{{name: grpc, port: 9000}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: grpc-echo-1, namespace: bench, labels: {{kubernetes.io/service-name: grpc-echo}}}}\naddressType: IPv4\nports: [{{name: grpc, port: {echo_port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: authz, namespace: bench}}\nspec: {{ports: [{{name: grpc, port: 9001, appProtocol: kubernetes.io/h2c}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: authz-1, namespace: bench, labels: {{kubernetes.io/service-name: authz}}}}\naddressType: IPv4\nports: [{{name: grpc, port: {authz_port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: GatewayExtension\nmetadata: {{name: authz, namespace: bench}}\nspec: {{type: ExtAuth, extAuth: {{grpcService: {{backendRef: {{name: authz, port: 9001}}}}}}}}\n---\napiVersion: gateway.kgateway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: protect, namespace: bench}}\nspec:\n  targetSelectors: [{{group: gateway.networking.k8s.io, kind: GRPCRoute, matchLabels: {{auth: protected}}}}]\n  extAuth: {{extensionRef: {{name: authz}}}}\n"
    );
    for i in 0..n {
        out += "---\n";
        out += &route(i);
    }
    out
}

/// A warm HTTP/2 connection to Envoy whose calls carry `authority`.
async fn channel(port: u16, authority: &str) -> anyhow::Result<Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .origin(format!("http://{authority}").parse()?)
            .timeout(Duration::from_secs(5))
            .connect()
            .await?,
    )
}

/// One `Echo` call; the answering pod's context when it succeeds.
async fn echo(channel: &Channel, allow: bool) -> Option<EchoContext> {
    let mut request = tonic::Request::new(EchoRequest {});
    if allow {
        request.metadata_mut().insert(
            "x-ext-authz",
            tonic::metadata::MetadataValue::from_static("allow"),
        );
    }
    let answer = GrpcEchoClient::new(channel.clone())
        .echo(request)
        .await
        .ok()?;
    answer.into_inner().assertions?.context
}

/// Polls `Echo` on `authority` every 1 ms until it succeeds, `limit` at most.
async fn until_served(
    port: u16,
    authority: &str,
    allow: bool,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut warm = None;
    loop {
        // Until Envoy listens, connecting is what fails; then the connection stays warm.
        if warm.is_none() {
            warm = channel(port, authority).await.ok();
        }
        if let Some(c) = &warm
            && echo(c, allow).await.is_some()
        {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!("{authority} did not answer within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub async fn run(args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
    let n = args.grpc_routes;
    let port = free_port()?;
    let echo_port = free_port()?;
    let t_all = Instant::now();
    let mut world = World::start_with(|t| Ok(manifests(n, port, echo_port, t.authz_port)))?;
    let mut server = Command::new(bin("gatehouse-grpc-echo")?);
    server
        .args([
            "--addr",
            &format!("127.0.0.1:{echo_port}"),
            "--pod",
            "grpc-echo-0",
        ])
        .env("RUST_LOG", "warn");
    world
        .others
        .push(Proc::spawn("grpc-echo", server, world.dir.path())?);
    wait_port(echo_port, "grpc-echo")?;
    let envoy = world.envoy(GATEWAY, free_port()?)?;
    let last = n - 1;
    until_served(
        port,
        &host(last),
        last.is_multiple_of(2),
        Duration::from_secs(300),
    )
    .await
    .context("the first configuration")?;
    rows.push(Row::info(
        format!("GRPCRoute {n} routes: written → the last one answering (gRPC)"),
        format!("{:.1} s", t_all.elapsed().as_secs_f64()),
    ));
    // A protected route refuses a call without credentials: the policy reached the routes.
    let protected = channel(port, &host(0)).await?;
    if echo(&protected, false).await.is_some() {
        bail!("{} answered without credentials", host(0));
    }
    crate::report::settle();

    let mut samples = Vec::with_capacity(args.samples);
    for s in 0..args.samples {
        let i = n + s;
        let t0 = Instant::now();
        world.write(&format!("new-{i}.yaml"), &route(i))?;
        until_served(port, &host(i), i.is_multiple_of(2), Duration::from_secs(30)).await?;
        samples.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(args.sample_spacing_ms)).await;
    }
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    rows.push(Row::new(
        format!("GRPCRoute {n} routes: one new GRPCRoute → its first answer (p50 / p99)"),
        format!("p50 ≤ {} ms", PROPAGATION_TARGET.as_millis()),
        p50_p99(&samples),
        p50 <= PROPAGATION_TARGET,
    ));
    rows.push(Row::info(
        format!("GRPCRoute {n} routes: Gatehouse RSS"),
        format!("{:.1} MiB", mib(world.gatehouse.rss_kib()?)),
    ));
    rows.push(Row::info(
        format!("GRPCRoute {n} routes: Envoy RSS"),
        format!("{:.1} MiB", mib(envoy.rss_kib()?)),
    ));
    Ok(())
}
