//! Prometheus metrics of the control plane.

use std::sync::Arc;

use gatehouse_xds::{XdsStats, type_url};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    /// Status patches written (controller mode, leader only).
    pub status_writes: Counter,
    /// Status patches that failed.
    pub status_write_errors: Counter,
    /// Builds that panicked (a bug); the previous configuration stays served.
    pub build_panics: Counter,
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
        let status_writes = Counter::default();
        let status_write_errors = Counter::default();
        registry.register(
            "status_writes",
            "Status patches written to the API server",
            status_writes.clone(),
        );
        registry.register(
            "status_write_errors",
            "Status patches that failed",
            status_write_errors.clone(),
        );
        let build_panics = Counter::default();
        registry.register(
            "build_panics",
            "Snapshot builds that panicked; the previous configuration stays served",
            build_panics.clone(),
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
            status_writes,
            status_write_errors,
            build_panics,
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
        let connected = ConstGauge::new(s.connected());
        connected.encode(encoder.encode_descriptor(
            "xds_connected_proxies",
            "Open ADS streams",
            None,
            connected.metric_type(),
        )?)?;
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
        let total = ConstCounter::new(s.nacks());
        total.encode(encoder.encode_descriptor(
            "xds_nacks",
            "xDS responses Envoy rejected",
            None,
            total.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "xds_nacks_by_type",
            "xDS responses Envoy rejected, by resource type",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (short, url) in [
            ("cluster", type_url::CLUSTER),
            ("endpoint", type_url::ENDPOINT),
            ("listener", type_url::LISTENER),
            ("scoped_route", type_url::SCOPED_ROUTE),
            ("route", type_url::ROUTE),
        ] {
            let c = ConstCounter::new(s.nacks_for(url));
            c.encode(family.encode_family(&[("type", short)])?)?;
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
                let short = r.type_url.rsplit('.').next().unwrap_or(&r.type_url);
                *by_type.entry(short).or_default() += 1;
            }
            for (t, n) in by_type {
                let g = ConstGauge::new(n);
                g.encode(rejected.encode_family(&[("gateway", gateway.as_str()), ("type", t)])?)?;
            }
        }
        Ok(())
    }
}
