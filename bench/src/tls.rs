//! HTTPS at scale (`--only tls`): one Gateway port with `--tls-hostnames` HTTPS listeners, each
//! with its own certificate Secret and route, served by standalone to a real Envoy. Measured:
//! a certificate rotation (the Secret rewritten) until a new TLS connection for that hostname
//! is served the new certificate, polled every 1 ms; and the memory at that scale.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::Args;
use crate::procs::free_port;
use crate::report::{Row, Rows, mib, p50_p99, percentile};
use crate::world::World;

/// The target of the issue: one rotation visible in at most this, at the median.
const ROTATION_TARGET: Duration = Duration::from_millis(50);
const GATEWAY: &str = "bench/tls";

struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> anyhow::Result<Ca> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// (certificate PEM, key PEM, certificate DER) for `host`.
    fn leaf(&self, host: &str) -> anyhow::Result<(String, String, Vec<u8>)> {
        let params = CertificateParams::new(vec![host.to_string()])?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
    }
}

fn host(i: usize) -> String {
    format!("h{i}.tls.example")
}

fn secret(i: usize, cert: &str, key: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert-{i}, namespace: bench}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        q(cert),
        q(key)
    )
}

/// Gateway, Service and routes (the Secrets are files of their own, rewritten to rotate).
fn manifests(n: usize, port: u16, backend_port: u16) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gatehouse}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: tls, namespace: bench}\nspec:\n  gatewayClassName: gatehouse\n  listeners:\n",
    );
    for i in 0..n {
        out += &format!(
            "  - {{name: l{i}, protocol: HTTPS, port: {port}, hostname: {}, tls: {{certificateRefs: [{{name: cert-{i}}}]}}}}\n",
            host(i)
        );
    }
    out += &format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: echo, namespace: bench}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: echo-1, namespace: bench, labels: {{kubernetes.io/service-name: echo}}}}\naddressType: IPv4\nports: [{{name: http, port: {backend_port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    );
    for i in 0..n {
        out += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}, namespace: bench}}\nspec:\n  parentRefs: [{{name: tls, sectionName: l{i}}}]\n  hostnames: [{}]\n  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n",
            host(i)
        );
    }
    out
}

/// The DER of the certificate a new TLS connection with `sni` is served (no request sent).
fn served(config: &Arc<rustls::ClientConfig>, port: u16, sni: &str) -> Option<Vec<u8>> {
    let name = ServerName::try_from(sni.to_string()).ok()?;
    let mut conn = rustls::ClientConnection::new(config.clone(), name).ok()?;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).ok()?;
    }
    let der = conn.peer_certificates()?.first()?.to_vec();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    Some(der)
}

fn client(ca: &Ca) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Polls until `sni` is served `want` (1 ms apart), `limit` at most.
fn until_served(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    sni: &str,
    want: &[u8],
    limit: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while served(config, port, sni).as_deref() != Some(want) {
        if t0.elapsed() > limit {
            bail!("{sni} was not served its new certificate within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(t0.elapsed())
}

pub fn run(args: &Args, rows: &mut Rows) -> anyhow::Result<()> {
    let n = args.tls_hostnames;
    let ca = Ca::new()?;
    let port = free_port()?;
    let mut certs = Vec::with_capacity(n);
    for i in 0..n {
        certs.push(ca.leaf(&host(i))?);
    }
    let mut world = World::start_with(|targets| Ok(manifests(n, port, targets.backend_port)))?;
    let t_all = Instant::now();
    for (i, (cert, key, _)) in certs.iter().enumerate() {
        world.write(&format!("secret-{i}.yaml"), &secret(i, cert, key))?;
    }
    let _envoy = world.envoy(GATEWAY, free_port()?)?;
    let config = client(&ca)?;
    let last = n - 1;
    until_served(
        &config,
        port,
        &host(last),
        &certs[last].2,
        Duration::from_secs(300),
    )
    .context("the first configuration")?;
    let first = t_all.elapsed();
    rows.push(Row::info(
        format!("HTTPS {n} hostnames: every certificate written → the last one served"),
        format!("{:.1} s", first.as_secs_f64()),
    ));
    crate::report::settle();

    let mut samples = Vec::with_capacity(args.samples);
    for s in 0..args.samples {
        let i = (s * 7919) % n;
        let (cert, key, der) = ca.leaf(&host(i))?;
        let t0 = Instant::now();
        world.write(&format!("secret-{i}.yaml"), &secret(i, &cert, &key))?;
        until_served(&config, port, &host(i), &der, Duration::from_secs(30))?;
        samples.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(args.sample_spacing_ms));
    }
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    rows.push(Row::new(
        format!(
            "HTTPS {n} hostnames: one certificate rotation → served to a new connection (p50 / p99)"
        ),
        format!("p50 ≤ {} ms", ROTATION_TARGET.as_millis()),
        p50_p99(&samples),
        p50 <= ROTATION_TARGET,
    ));
    let rss = world.gatehouse.rss_kib()?;
    rows.push(Row::info(
        format!("HTTPS {n} hostnames: Gatehouse RSS"),
        format!("{:.1} MiB", mib(rss)),
    ));
    rows.push(Row::info(
        format!("HTTPS {n} hostnames: Envoy RSS"),
        format!("{:.1} MiB", mib(_envoy.rss_kib()?)),
    ));
    Ok(())
}
