//! Prometheus metrics of the control plane.

use std::sync::Arc;

use gatehouse_xds::{XdsStats, type_url};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-kind metrics.
pub type KindLabel = [(&'static str, String); 1];

/// Status-write metrics, by object kind.
#[derive(Clone, Debug)]
pub struct StatusMetrics {
    pub writes: Family<KindLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    pub seconds: Family<KindLabel, Histogram>,
}

impl StatusMetrics {
    /// A write of `kind` finished after `seconds`.
    pub fn record(&self, kind: &str, seconds: f64, ok: bool) {
        let label = [("kind", kind.to_string())];
        self.seconds.get_or_create(&label).observe(seconds);
        if ok {
            self.writes.get_or_create(&label).inc();
        } else {
            self.errors.get_or_create(&label).inc();
        }
    }
}

/// Every metric Gatehouse exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Snapshot builds (model + translate + cache update).
    pub snapshot_builds: Counter,
    /// Seconds one build took.
    pub build_seconds: Histogram,
    /// HTTPRoutes resolved by builds: one per changed route, every route after a change to
    /// anything else.
    pub route_resolutions: Counter,
    /// Manifest documents that currently fail to load.
    pub load_errors: Gauge,
    /// Objects whose status currently has a condition that does not hold.
    pub unhealthy_objects: Gauge,
    /// Status patches written, failed, and how long they took, by kind (controller mode,
    /// leader only).
    pub status: StatusMetrics,
    /// 1 while this replica leads (controller mode); 0 otherwise.
    pub leader: Gauge,
    /// Fields of Gatehouse's CRD schemas the installed CRDs lack, by CRD (controller mode).
    pub crd_missing_fields: Family<[(&'static str, String); 1], Gauge>,
    /// Kubernetes Events emitted, by reason.
    pub events: Family<[(&'static str, String); 1], Counter>,
    /// Builds that panicked (a bug); the previous configuration stays served.
    pub build_panics: Counter,
    /// 1 while the last build panicked and the one before it is served.
    pub degraded: Gauge,
    /// Provisioned objects applied (controller mode, leader only).
    pub provision_applies: Counter,
    /// Gateways whose provisioning failed in a sync.
    pub provision_errors: Counter,
    /// Gateways not provisioned because objects with their proxies' names are not Gatehouse's.
    pub provision_conflicts: Gauge,
}

impl Metrics {
    /// Registers the metrics, including the xDS server's counters.
    pub fn new(xds: Arc<XdsStats>) -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let snapshot_builds = Counter::default();
        let build_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let route_resolutions = Counter::default();
        let load_errors = Gauge::default();
        let unhealthy_objects = Gauge::default();
        registry.register(
            "snapshot_builds",
            "Snapshot builds",
            snapshot_builds.clone(),
        );
        registry.register(
            "snapshot_build_seconds",
            "Duration of one snapshot build",
            build_seconds.clone(),
        );
        registry.register(
            "route_resolutions",
            "HTTPRoutes resolved by builds (one per changed route; every route after another kind changed)",
            route_resolutions.clone(),
        );
        registry.register(
            "load_errors",
            "Manifest documents that currently fail to load",
            load_errors.clone(),
        );
        registry.register(
            "unhealthy_objects",
            "Objects with a status condition that does not hold (Accepted, ResolvedRefs, Programmed, Attached)",
            unhealthy_objects.clone(),
        );
        let status = StatusMetrics {
            writes: Family::default(),
            errors: Family::default(),
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
        };
        // Every kind with a status is exported from the start (0), so that a replica that
        // never led still declares the family and dashboards show zeros, not gaps.
        for kind in [
            crate::store::Kind::GatewayClass,
            crate::store::Kind::Gateway,
            crate::store::Kind::HttpRoute,
            crate::store::Kind::GrpcRoute,
            crate::store::Kind::TrafficPolicy,
            crate::store::Kind::GatewayExtension,
            crate::store::Kind::BackendTlsPolicy,
        ] {
            let label = [("kind", kind.to_string())];
            drop(status.writes.get_or_create(&label));
            drop(status.errors.get_or_create(&label));
        }
        registry.register(
            "status_writes",
            "Status patches written to the API server, by kind",
            status.writes.clone(),
        );
        registry.register(
            "status_write_errors",
            "Status patches that failed, by kind",
            status.errors.clone(),
        );
        registry.register(
            "status_write_seconds",
            "Duration of one status patch, by kind",
            status.seconds.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (writes status, provisions proxies)",
            leader.clone(),
        );
        let crd_missing_fields = Family::default();
        registry.register(
            "crd_missing_fields",
            "Fields of Gatehouse's schema the installed CRD lacks (the API server drops them), by CRD",
            crd_missing_fields.clone(),
        );
        let events = Family::default();
        registry.register(
            "events",
            "Kubernetes Events emitted, by reason",
            events.clone(),
        );
        let build_info = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        build_info
            .get_or_create(&[
                ("version", crate::build_info::VERSION),
                ("commit", crate::build_info::COMMIT),
            ])
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which build runs",
            build_info,
        );
        let build_panics = Counter::default();
        registry.register(
            "build_panics",
            "Snapshot builds that panicked; the previous configuration stays served",
            build_panics.clone(),
        );
        let degraded = Gauge::default();
        registry.register(
            "degraded",
            "1 while the last build panicked and the configuration before it is served (ready stays true)",
            degraded.clone(),
        );
        let provision_applies = Counter::default();
        let provision_errors = Counter::default();
        registry.register(
            "provision_applies",
            "Provisioned proxy objects applied to the API server",
            provision_applies.clone(),
        );
        registry.register(
            "provision_errors",
            "Gateways whose proxy provisioning failed (per sync)",
            provision_errors.clone(),
        );
        let provision_conflicts = Gauge::default();
        registry.register(
            "provision_conflicts",
            "Gateways whose proxies are not provisioned because objects with their names lack Gatehouse's managed-by label or an ownerReference to the Gateway",
            provision_conflicts.clone(),
        );
        registry.register_collector(Box::new(XdsCollector(xds)));
        Self {
            registry,
            snapshot_builds,
            build_seconds,
            route_resolutions,
            load_errors,
            unhealthy_objects,
            status,
            leader,
            crd_missing_fields,
            events,
            build_panics,
            degraded,
            provision_applies,
            provision_errors,
            provision_conflicts,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the xDS server's atomic counters at scrape time.
#[derive(Debug)]
struct XdsCollector(Arc<XdsStats>);

impl Collector for XdsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        for (name, help, value) in [
            ("xds_pushes", "xDS responses sent", s.pushes()),
            ("xds_acks", "xDS responses Envoy accepted", s.acks()),
            (
                "xds_refused_streams",
                "xDS streams refused: unknown node, missing or wrong credential",
                s.refusals(),
            ),
        ] {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let proxies = s.proxies();
        let mut connected = encoder.encode_descriptor(
            "xds_connected_proxies",
            "Open ADS streams, by Gateway",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (gateway, states) in &proxies {
            let g = ConstGauge::new(states.len() as i64);
            g.encode(connected.encode_family(&[("gateway", gateway.as_str())])?)?;
        }
        let mut current = encoder.encode_descriptor(
            "xds_proxies_current",
            "Connected proxies of a Gateway that run what they were last sent (every type accepted, nothing in flight)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (gateway, states) in &proxies {
            let g = ConstGauge::new(states.iter().filter(|p| p.settled).count() as i64);
            g.encode(current.encode_family(&[("gateway", gateway.as_str())])?)?;
        }
        let mut acked = encoder.encode_descriptor(
            "xds_acked_version",
            "The version (a content hash) of each type a proxy of the Gateway accepted last; always 1",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for ((gateway, type_url), version) in s.acked_versions() {
            let g = ConstGauge::new(1);
            g.encode(acked.encode_family(&[
                ("gateway", gateway.as_str()),
                ("type", short_type(&type_url)),
                ("version", version.as_str()),
            ])?)?;
        }
        let mut nacks = encoder.encode_descriptor(
            "xds_nacks",
            "xDS responses Envoy rejected, by Gateway and resource type",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for ((gateway, type_url), n) in s.nack_counts() {
            let c = ConstCounter::new(n);
            c.encode(nacks.encode_family(&[
                ("gateway", gateway.as_str()),
                ("type", short_type(&type_url)),
            ])?)?;
        }
        let mut rejected = encoder.encode_descriptor(
            "xds_rejected",
            "Proxies of a Gateway that currently reject the latest update of a type (they keep the previous one)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (gateway, rejections) in s.rejections() {
            let mut by_type: std::collections::BTreeMap<&str, i64> = Default::default();
            for r in &rejections {
                *by_type.entry(short_type(&r.type_url)).or_default() += 1;
            }
            for (t, n) in by_type {
                let g = ConstGauge::new(n);
                g.encode(rejected.encode_family(&[("gateway", gateway.as_str()), ("type", t)])?)?;
            }
        }
        Ok(())
    }
}

/// The `type` label of an xDS type URL.
fn short_type(type_url: &str) -> &str {
    match type_url {
        type_url::CLUSTER => "cluster",
        type_url::ENDPOINT => "endpoint",
        type_url::LISTENER => "listener",
        type_url::SCOPED_ROUTE => "scoped_route",
        type_url::ROUTE => "route",
        type_url::SECRET => "secret",
        other => other.rsplit('.').next().unwrap_or(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `(family as declared, type)` of what Gatehouse exports once every labelled family has a
    /// series.
    fn exported() -> BTreeMap<String, String> {
        let m = Metrics::new(Arc::new(XdsStats::new()));
        m.status.record("Gateway", 0.01, true);
        m.events
            .get_or_create(&[("reason", "Pending".into())])
            .inc();
        m.crd_missing_fields
            .get_or_create(&[("crd", "x".into())])
            .set(0);
        let text = m.encode().expect("encode");
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| {
                let (name, kind) = l.split_once(' ')?;
                Some((name.to_string(), kind.to_string()))
            })
            .collect()
    }

    /// `(family, type)` of each row of docs/metrics.md (counters listed with `_total`).
    fn documented() -> BTreeMap<String, String> {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
            .expect("docs/metrics.md");
        doc.lines()
            .filter(|l| l.starts_with("| `gatehouse_"))
            .filter_map(|l| {
                let cols: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                let name = cols.first()?.trim_matches('`');
                let kind = cols.get(1)?.to_string();
                let family = match kind.as_str() {
                    "counter" => name.strip_suffix("_total")?,
                    _ => name,
                };
                Some((family.to_string(), kind))
            })
            .collect()
    }

    #[test]
    fn docs_list_every_metric() {
        let (exported, documented) = (exported(), documented());
        assert!(exported.len() > 20, "{exported:?}");
        assert_eq!(
            exported, documented,
            "docs/metrics.md disagrees with /metrics"
        );
    }
}
