//! The rebuild step every source shares: store → model → translate → snapshots, plus the view
//! the admin endpoint and the xDS node grouper read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use gatehouse_xds::{NodeGrouper, Peer, Rejection, Snapshot, SnapshotCache};

use crate::bootstrap::gateway_of;
use crate::metrics::Metrics;
use crate::model::{self, GatewayModel, Model, ModelConfig, Status};
use crate::store::{ObjKey, Store};
use crate::translate::{self, GatewayResources, TranslateOptions};

/// What the last build produced, for the admin endpoint.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// True once the first snapshot set is built.
    pub ready: bool,
    pub builds: u64,
    /// Shared with the build that made them: a view copy copies no protos.
    pub resources: BTreeMap<ObjKey, Arc<GatewayResources>>,
    pub model: Arc<Model>,
    /// Input problems (load errors) the sources reported, as readable lines.
    pub problems: Vec<String>,
    /// HTTPRoutes with a condition that does not hold: kept up to date from the status
    /// changes, as counting 10,000 routes per build cost more than a one-route change.
    unhealthy_routes: usize,
    /// What each Gateway's proxies currently reject (NACK), from the xDS server.
    pub rejected: Arc<BTreeMap<ObjKey, Vec<Rejection>>>,
    /// `Programmed=False` of Gateways whose proxies the provisioner would not create because
    /// objects with their names are someone else's (controller mode).
    pub unprovisioned: Arc<BTreeMap<ObjKey, model::Condition>>,
}

impl View {
    /// Status of every object Gatehouse owns: the build's, with `Programmed=False` on the
    /// Gateways whose proxies rejected the last update (Envoy keeps the previous config) or
    /// could not be provisioned. The provisioning conflict wins: it is why there may be no
    /// proxies of Gatehouse's at all.
    pub fn status(&self) -> std::borrow::Cow<'_, Status> {
        if self.rejected.is_empty() && self.unprovisioned.is_empty() {
            return std::borrow::Cow::Borrowed(&self.model.status);
        }
        let mut status = self.model.status.clone();
        let rejected = self
            .rejected
            .iter()
            .map(|(key, rejections)| (key, rejected_condition(rejections)));
        let unprovisioned = self.unprovisioned.iter().map(|(k, c)| (k, c.clone()));
        for (key, programmed) in rejected.chain(unprovisioned) {
            if let Some(gw) = status.gateways.get_mut(key) {
                gw.conditions.retain(|c| c.type_ != programmed.type_);
                gw.conditions.push(programmed);
            }
        }
        std::borrow::Cow::Owned(status)
    }

    /// The effective ext auth of every route (computed on request: builds do not pay for it).
    pub fn explain(&self) -> Vec<crate::explain::Row> {
        let mut rows = crate::explain::explain(&self.model);
        for r in &mut rows {
            r.proxies_rejected = self
                .rejected
                .iter()
                .find(|(k, _)| k.to_string() == r.gateway)
                .map(|(_, rejections)| rejected_condition(rejections).message);
        }
        rows
    }
}

/// Shared between the engine, the admin server and the xDS grouper.
#[derive(Debug, Default)]
pub struct Shared {
    view: RwLock<View>,
    /// Gateways proxies asked for, so that unknown ones get an (empty) answer.
    requested: Mutex<BTreeSet<ObjKey>>,
    /// Why the last build failed (a panic in the model or translator), while the previous
    /// configuration keeps being served; `None` when the last build succeeded.
    degraded: Mutex<Option<String>>,
    rejected: RwLock<Arc<BTreeMap<ObjKey, Vec<Rejection>>>>,
    unprovisioned: RwLock<Arc<BTreeMap<ObjKey, model::Condition>>>,
    /// Notified when status changed outside a build (a proxy rejected or accepted an update,
    /// a Gateway's provisioning conflict appeared or cleared).
    pub status_changed: tokio::sync::Notify,
}

impl Shared {
    /// A copy of what the admin endpoint shows.
    pub fn view(&self) -> View {
        let mut view = self.view.read().map(|v| v.clone()).unwrap_or_default();
        if let Ok(rejected) = self.rejected.read() {
            view.rejected = rejected.clone();
        }
        if let Ok(unprovisioned) = self.unprovisioned.read() {
            view.unprovisioned = unprovisioned.clone();
        }
        view
    }

    /// Replaces the `Programmed` conditions of Gateways the provisioner would not provision
    /// (see [`crate::provision::conflict_condition`]); wakes the status writer on a change. The
    /// provisioner logs the changes: it knows the objects.
    pub fn set_unprovisioned(&self, next: BTreeMap<ObjKey, model::Condition>) {
        let Ok(mut current) = self.unprovisioned.write() else {
            return;
        };
        if **current == next {
            return;
        }
        *current = Arc::new(next);
        drop(current);
        self.status_changed.notify_one();
    }

    /// Replaces what the Gateways' proxies reject (from [`gatehouse_xds::XdsStats`], keyed by
    /// cache group); logs what changed and wakes the status writer.
    pub fn set_rejections(&self, by_group: BTreeMap<String, Vec<Rejection>>) {
        let next: BTreeMap<ObjKey, Vec<Rejection>> = by_group
            .into_iter()
            .filter_map(|(g, r)| {
                let (ns, name) = g.split_once('/')?;
                Some((ObjKey::new(ns, name), r))
            })
            .collect();
        let Ok(mut current) = self.rejected.write() else {
            return;
        };
        if **current == next {
            return;
        }
        for (key, rejections) in &next {
            if current.get(key) != Some(rejections) {
                let c = rejected_condition(rejections);
                tracing::warn!(gateway = %key, status = "Programmed=False", reason = %c.reason, message = %c.message, "Gateway status changed: its proxies rejected the last update");
            }
        }
        for key in current.keys().filter(|k| !next.contains_key(*k)) {
            tracing::info!(gateway = %key, "Gateway status changed: its proxies accept the configuration again");
        }
        *current = Arc::new(next);
        drop(current);
        self.status_changed.notify_one();
    }

    /// True once the first build is done.
    pub fn ready(&self) -> bool {
        self.view.read().map(|v| v.ready).unwrap_or(false)
    }

    /// Why the control plane is degraded, if it is.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().ok().and_then(|d| d.clone())
    }

    fn set_degraded(&self, why: Option<String>) {
        if let Ok(mut d) = self.degraded.lock() {
            *d = why;
        }
    }

    /// True when the last build serves `key`.
    pub fn serves(&self, key: &ObjKey) -> bool {
        self.view
            .read()
            .map(|v| v.resources.contains_key(key))
            .unwrap_or(false)
    }
}

/// Builds snapshots and publishes them to the cache.
pub struct Engine {
    pub cache: SnapshotCache,
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    pub model_config: ModelConfig,
    pub translate_options: TranslateOptions,
    memo: Mutex<Memo>,
}

/// What the previous build made, for the next one to reuse.
#[derive(Default)]
struct Memo {
    builder: model::Builder,
    /// Each served Gateway's model and its translation.
    translated: BTreeMap<ObjKey, (Arc<GatewayModel>, Arc<GatewayResources>)>,
}

impl Engine {
    pub fn new(
        cache: SnapshotCache,
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
        model_config: ModelConfig,
        translate_options: TranslateOptions,
    ) -> Self {
        Self {
            cache,
            shared,
            metrics,
            model_config,
            translate_options,
            memo: Mutex::default(),
        }
    }

    /// Rebuilds from `store`; `problems` are the sources' current input errors. Only Gateways
    /// whose model changed are translated and published again.
    pub fn rebuild(&self, store: &Store, problems: Vec<String>) {
        let started = Instant::now();
        let Ok(mut memo) = self.memo.lock() else {
            tracing::error!("the build state is poisoned; not rebuilding");
            return;
        };
        // A bug in the model or translator must not take the control plane down: the proxies
        // keep the previous snapshots, /readyz reports the failure, the next change retries.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            #[cfg(test)]
            tests::maybe_panic();
            let model = memo.builder.build(store, &self.model_config);
            let mut changed = Vec::new();
            let mut translated = BTreeMap::new();
            for gw in &model.gateways {
                let res = match memo.translated.get(&gw.key) {
                    Some((m, res)) if Arc::ptr_eq(m, gw) => res.clone(),
                    previous => {
                        let res = Arc::new(translate::translate_gateway_reusing(
                            gw,
                            &self.translate_options,
                            previous.map(|(_, res)| &**res),
                        ));
                        changed.push((gw.key.clone(), crate::snapshot::snapshot(&res)));
                        res
                    }
                };
                translated.insert(gw.key.clone(), (gw.clone(), res));
            }
            (model, translated, changed)
        }));
        let (model, translated, changed) = match built {
            Ok(built) => built,
            Err(panic) => {
                // What the builder kept may be half-updated: start over next time.
                *memo = Memo::default();
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(panic = %why, objects = store.len(), "building the configuration panicked; proxies keep the previous configuration");
                self.metrics.build_panics.inc();
                self.shared
                    .set_degraded(Some(format!("the last build panicked: {why}")));
                return;
            }
        };
        self.shared.set_degraded(None);
        let republished = changed.len();
        for (key, snap) in changed {
            self.cache.set(&group(&key), snap);
        }
        let resources = translated
            .iter()
            .map(|(k, (_, res))| (k.clone(), res.clone()))
            .collect();
        memo.translated = translated;
        drop(memo);
        let (before, bad_routes_before) = self
            .shared
            .view
            .read()
            .map(|v| (v.model.clone(), v.unhealthy_routes))
            .unwrap_or_default();
        let bad_routes = bad_routes_before
            .saturating_add_signed(log_status_changes(&before.status, &model.status));
        drop(before);
        let unhealthy = count_unhealthy(&model.status) + bad_routes;
        let next = View {
            ready: true,
            builds: 0,
            resources,
            model: Arc::new(model),
            problems,
            unhealthy_routes: bad_routes,
            rejected: Arc::default(),
            unprovisioned: Arc::default(),
        };
        // Swap rather than copy: the previous view is only read below, never cloned.
        let previous = match self.shared.view.write() {
            Ok(mut view) => {
                let builds = view.builds + 1;
                let previous = std::mem::replace(&mut *view, next);
                view.builds = builds;
                previous
            }
            Err(_) => View::default(),
        };
        let current = self.shared.view.read();
        let Ok(current) = current else { return };
        // Gateways that went away, and proxies of Gateways that never existed, get an empty
        // snapshot: their proxies stop serving rather than keep a deleted Gateway's routes.
        let mut gone: BTreeSet<ObjKey> = previous
            .resources
            .keys()
            .filter(|k| !current.resources.contains_key(*k))
            .cloned()
            .collect();
        if let Ok(requested) = self.shared.requested.lock() {
            gone.extend(
                requested
                    .iter()
                    .filter(|k| !current.resources.contains_key(*k))
                    .cloned(),
            );
        }
        for key in gone {
            if !previous.ready || previous.resources.contains_key(&key) {
                tracing::warn!(gateway = %key, "Gateway is not served (deleted, unknown or of another class); its proxies get an empty configuration");
            }
            self.cache.set(&group(&key), Snapshot::new());
        }
        let elapsed = started.elapsed();
        self.metrics.snapshot_builds.inc();
        self.metrics.build_seconds.observe(elapsed.as_secs_f64());
        self.metrics.load_errors.set(current.problems.len() as i64);
        self.metrics.unhealthy_objects.set(unhealthy as i64);
        tracing::info!(
            gateways = current.resources.len(),
            republished,
            objects = store.len(),
            problems = current.problems.len(),
            ms = elapsed.as_secs_f64() * 1e3,
            "snapshots built"
        );
        drop(current);
        drop(previous);
        release_freed_memory(store.len());
    }

    /// The grouper the ADS server uses for this engine's proxies.
    pub fn grouper(&self, auth: XdsAuth) -> Arc<dyn NodeGrouper> {
        Arc::new(Grouper {
            shared: self.shared.clone(),
            cache: self.cache.clone(),
            auth,
        })
    }
}

/// How a proxy proves which Gateway it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsAuth {
    /// It says so in its node metadata; fine on loopback (standalone mode), nowhere else.
    NodeMetadata,
    /// Its client certificate names the Gateway (see [`crate::pki`]); node metadata, when
    /// present, must agree.
    ClientCertificate,
}

/// `Programmed=False` with Envoy's message: Gateway API's reason `Invalid` is for a Gateway
/// the data plane cannot be programmed with as it stands.
fn rejected_condition(rejections: &[Rejection]) -> model::Condition {
    let message = rejections
        .iter()
        .map(|r| {
            let kind = r.type_url.rsplit('.').next().unwrap_or(&r.type_url);
            format!(
                "proxy {} rejected {kind} version {}: {}",
                r.node, r.version, r.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    model::Condition::fail(
        "Programmed",
        "Invalid",
        format!("{message}; it keeps serving its previous configuration"),
    )
}

/// The cache group of a Gateway's proxies.
pub fn group(gateway: &ObjKey) -> String {
    gateway.to_string()
}

struct Grouper {
    shared: Arc<Shared>,
    cache: SnapshotCache,
    auth: XdsAuth,
}

impl Grouper {
    fn gateway(&self, node: &Node, peer: &Peer) -> Result<ObjKey, String> {
        let claimed = gateway_of(node);
        match self.auth {
            XdsAuth::NodeMetadata => claimed.ok_or_else(|| {
                format!(
                    "proxy did not say which Gateway it serves (node metadata {})",
                    crate::bootstrap::GATEWAY_METADATA_KEY
                )
            }),
            XdsAuth::ClientCertificate => {
                let leaf = peer
                    .certs
                    .as_ref()
                    .and_then(|chain| chain.first())
                    .ok_or("no client certificate")?;
                let proven = crate::pki::gateway_of_cert(leaf)
                    .ok_or("the client certificate names no Gateway")?;
                match claimed {
                    Some(claimed) if claimed != proven => Err(format!(
                        "certificate of Gateway {proven} cannot fetch the config of Gateway {claimed}"
                    )),
                    _ => Ok(proven),
                }
            }
        }
    }
}

impl NodeGrouper for Grouper {
    fn group(&self, node: &Node, peer: &Peer) -> Result<String, String> {
        let gateway = self.gateway(node, peer)?;
        if let Ok(mut requested) = self.shared.requested.lock() {
            requested.insert(gateway.clone());
        }
        let key = group(&gateway);
        if self.shared.ready() && !self.shared.serves(&gateway) {
            tracing::warn!(node = %node.id, gateway = %gateway, "proxy asked for a Gateway Gatehouse does not serve; it gets an empty configuration");
            if self.cache.get(&key).is_none() {
                self.cache.set(&key, Snapshot::new());
            }
        }
        Ok(key)
    }
}

/// True when a condition is in its good state (`Conflicted` is good when False).
fn holds(c: &model::Condition) -> bool {
    if c.type_ == "Conflicted" {
        !c.is_true()
    } else {
        c.is_true()
    }
}

/// Objects other than HTTPRoutes with a condition that does not hold.
fn count_unhealthy(status: &Status) -> usize {
    let bad = |c: &[model::Condition]| !c.iter().all(holds);
    status
        .gateways
        .values()
        .filter(|g| bad(&g.conditions) || g.listeners.iter().any(|l| bad(&l.conditions)))
        .count()
        + status
            .traffic_policies
            .values()
            .filter(|a| a.iter().any(|a| bad(&a.conditions)))
            .count()
        + status
            .gateway_extensions
            .values()
            .filter(|c| bad(c))
            .count()
}

/// Logs each object whose conditions changed, at warn level when one does not hold; returns
/// the change in the number of HTTPRoutes with a condition that does not hold.
fn log_status_changes(old: &Status, new: &Status) -> isize {
    /// Walks both maps together: looking each of 10,000 routes up cost more than the rest of
    /// a one-route rebuild.
    fn diff<K: Ord + std::fmt::Display, V: std::fmt::Debug>(
        kind: &str,
        old: &BTreeMap<K, V>,
        new: &BTreeMap<K, V>,
        same: impl Fn(&V, &V) -> bool,
        healthy: impl Fn(&V) -> bool,
    ) {
        let mut old = old.iter().peekable();
        for (key, v) in new {
            while old.next_if(|(k, _)| *k < key).is_some() {}
            if old
                .next_if(|(k, _)| *k == key)
                .is_some_and(|(_, o)| same(o, v))
            {
                continue;
            }
            if healthy(v) {
                tracing::info!(kind, object = %key, "status: all conditions hold");
            } else {
                tracing::warn!(kind, object = %key, status = ?v, "status: a condition does not hold");
            }
        }
    }
    let ok = |c: &[model::Condition]| c.iter().all(holds);
    diff(
        "Gateway",
        &old.gateways,
        &new.gateways,
        PartialEq::eq,
        |g| ok(&g.conditions) && g.listeners.iter().all(|l| ok(&l.conditions)),
    );
    // The route map is persistent: the diff skips the subtrees both builds share.
    let route_ok = |p: &[model::RouteParentStatus]| p.iter().all(|p| ok(&p.conditions));
    let mut bad_routes = 0isize;
    for item in old.http_routes.diff(&new.http_routes) {
        let (was, now) = match item {
            imbl::ordmap::DiffItem::Add(key, v) => (None, (key, v)),
            imbl::ordmap::DiffItem::Update { old, new } => (Some(old.1), new),
            imbl::ordmap::DiffItem::Remove(_, v) => {
                bad_routes -= isize::from(!route_ok(v));
                continue;
            }
        };
        bad_routes -= isize::from(was.is_some_and(|v| !route_ok(v)));
        let (key, v) = now;
        if route_ok(v) {
            tracing::info!(kind = "HTTPRoute", object = %key, "status: all conditions hold");
        } else {
            bad_routes += 1;
            tracing::warn!(kind = "HTTPRoute", object = %key, status = ?v, "status: a condition does not hold");
        }
    }
    diff(
        "TrafficPolicy",
        &old.traffic_policies,
        &new.traffic_policies,
        PartialEq::eq,
        |a| a.iter().all(|a| ok(&a.conditions)),
    );
    diff(
        "GatewayExtension",
        &old.gateway_extensions,
        &new.gateway_extensions,
        PartialEq::eq,
        |c| ok(c),
    );
    bad_routes
}

/// The most objects a build saw since memory was last handed back.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Hands memory freed by a build back to the kernel at once, when the configuration shrank a
/// quarter below the largest it was since the last time: the process then drops to its new
/// size. Forcing it after every build made each next build fault the same pages back in (8% of
/// the standalone process's CPU under churn, `perf`); mimalloc's own purge delay covers the rest.
fn release_freed_memory(objects: usize) {
    let largest = LARGEST.fetch_max(objects, Ordering::Relaxed).max(objects);
    if shrank(largest, objects) {
        LARGEST.store(objects, Ordering::Relaxed);
        // SAFETY: mi_collect has no preconditions; `force` also collects abandoned thread heaps.
        unsafe {
            libmimalloc_sys::mi_collect(true);
        }
    }
}

/// True when `objects` is less than three quarters of `largest`.
fn shrank(largest: usize, objects: usize) -> bool {
    objects.saturating_mul(4) < largest.saturating_mul(3)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_is_collected_only_after_a_shrink_by_a_quarter() {
        assert!(!super::shrank(1_000, 1_000));
        assert!(!super::shrank(1_000, 760));
        assert!(super::shrank(1_000, 740));
        assert!(super::shrank(16_000, 1_600));
        assert!(!super::shrank(0, 0));
    }

    use std::cell::Cell;

    use gatehouse_xds::XdsStats;

    use super::*;

    thread_local! {
        static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
    }

    /// The seam the test uses to make a build panic as a bug in the model would.
    pub(super) fn maybe_panic() {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("injected by the test");
        }
    }

    #[test]
    fn a_route_change_retranslates_only_its_gateway() {
        use crate::scale::{self, Scale, Targets};
        let scale = Scale {
            gateways: 3,
            routes: 12,
            policies: 2,
            services: 2,
        };
        let cache = SnapshotCache::new();
        let engine = Engine::new(
            cache.clone(),
            Arc::new(Shared::default()),
            Arc::new(Metrics::new(Arc::new(XdsStats::new()))),
            ModelConfig::default(),
            TranslateOptions::default(),
        );
        let mut store = crate::testing::store(&scale::manifests(&scale, &Targets::default()));
        engine.rebuild(&store, Vec::new());
        let before = engine.shared.view().resources;
        let snapshots: Vec<_> = before
            .keys()
            .map(|k| cache.get(&group(k)).expect("published"))
            .collect();
        // Route 4 is on gw-1.
        let changed = crate::testing::store(&scale::route(4, &scale, 1));
        for (_, r) in changed.http_routes {
            store.apply(crate::store::Object::HttpRoute(Box::new(r)));
        }
        engine.rebuild(&store, Vec::new());
        let after = engine.shared.view().resources;
        for ((key, old), snap) in before.iter().zip(&snapshots) {
            let kept = Arc::ptr_eq(old, &after[key]);
            let same = cache
                .get(&group(key))
                .is_some_and(|s| s.same_versions(snap));
            assert_eq!(kept, key.name != "gw-1", "{key} translation reused");
            assert_eq!(same, key.name != "gw-1", "{key} snapshot unchanged");
        }
    }

    #[test]
    fn a_provisioning_conflict_sets_programmed_false_over_rejections_and_clears() {
        let engine = Engine::new(
            SnapshotCache::new(),
            Arc::new(Shared::default()),
            Arc::new(Metrics::new(Arc::new(XdsStats::new()))),
            ModelConfig::default(),
            TranslateOptions::default(),
        );
        engine.rebuild(
            &crate::testing::store(crate::testing::GATEWAY_AND_WEB),
            Vec::new(),
        );
        let shared = &engine.shared;
        let key = shared
            .view()
            .model
            .status
            .gateways
            .keys()
            .next()
            .cloned()
            .expect("a Gateway");
        let programmed = |shared: &Shared| {
            shared.view().status().gateways[&key]
                .conditions
                .iter()
                .filter(|c| c.type_ == "Programmed")
                .map(|c| (c.status, c.reason.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(programmed(shared), [("True", "Programmed".to_string())]);
        shared.set_rejections(BTreeMap::from([(
            group(&key),
            vec![Rejection {
                node: "n".into(),
                type_url: "t".into(),
                version: "1".into(),
                message: "bad".into(),
            }],
        )]));
        let conflict = crate::provision::conflict_condition(&[crate::provision::Conflict {
            kind: "ConfigMap",
            name: "gatehouse-x".into(),
        }]);
        shared.set_unprovisioned(BTreeMap::from([(key.clone(), conflict)]));
        assert_eq!(
            programmed(shared),
            [("False", "NoResources".to_string())],
            "one Programmed condition, the conflict's"
        );
        shared.set_rejections(BTreeMap::new());
        shared.set_unprovisioned(BTreeMap::new());
        assert_eq!(programmed(shared), [("True", "Programmed".to_string())]);
    }

    #[test]
    fn the_unhealthy_count_follows_routes_going_bad_and_good() {
        use crate::scale::{self, Scale, Targets};
        let scale = Scale {
            gateways: 2,
            routes: 6,
            policies: 1,
            services: 2,
        };
        let metrics = Arc::new(Metrics::new(Arc::new(XdsStats::new())));
        let engine = Engine::new(
            SnapshotCache::new(),
            Arc::new(Shared::default()),
            metrics.clone(),
            ModelConfig::default(),
            TranslateOptions::default(),
        );
        let mut store = crate::testing::store(&scale::manifests(&scale, &Targets::default()));
        let unhealthy = |engine: &Engine, store: &Store| {
            engine.rebuild(store, Vec::new());
            let counted = metrics.unhealthy_objects.get();
            // What counting every object from scratch finds.
            let status = crate::model::build(store, &ModelConfig::default()).status;
            let bad = |c: &[model::Condition]| !c.iter().all(holds);
            let routes = status
                .http_routes
                .values()
                .filter(|p| p.iter().any(|p| bad(&p.conditions)))
                .count();
            assert_eq!(counted, (count_unhealthy(&status) + routes) as i64);
            counted
        };
        let apply = |store: &mut Store, yaml: &str| {
            for (_, r) in crate::testing::store(yaml).http_routes {
                store.apply(crate::store::Object::HttpRoute(Box::new(r)));
            }
        };
        let good = unhealthy(&engine, &store);
        let broken = scale::route(2, &scale, 0).replace("name: svc-0", "name: missing");
        apply(&mut store, &broken);
        assert_eq!(
            unhealthy(&engine, &store),
            good + 1,
            "a route loses its backend"
        );
        apply(&mut store, &broken.replace("name: r2,", "name: r9,"));
        assert_eq!(
            unhealthy(&engine, &store),
            good + 2,
            "a broken route is added"
        );
        apply(&mut store, &scale::route(2, &scale, 0));
        assert_eq!(unhealthy(&engine, &store), good + 1, "a route is fixed");
        store.delete(&crate::store::ObjectRef {
            kind: crate::store::Kind::HttpRoute,
            key: ObjKey::new(scale::NAMESPACE, "r9"),
        });
        assert_eq!(
            unhealthy(&engine, &store),
            good,
            "a broken route is deleted"
        );
    }

    #[test]
    fn a_panicking_build_keeps_the_previous_snapshots_and_reports_degraded() {
        let cache = SnapshotCache::new();
        let shared = Arc::new(Shared::default());
        let metrics = Arc::new(Metrics::new(Arc::new(XdsStats::new())));
        let engine = Engine::new(
            cache.clone(),
            shared.clone(),
            metrics.clone(),
            ModelConfig::default(),
            TranslateOptions::default(),
        );
        let store = crate::testing::store(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gatehouse}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: ns}\nspec:\n  gatewayClassName: gatehouse\n  listeners: [{name: http, protocol: HTTP, port: 8080}]\n",
        );
        engine.rebuild(&store, Vec::new());
        let key = group(&ObjKey::new("ns", "gw"));
        let before = cache.get(&key).expect("snapshot built");
        assert!(shared.ready() && shared.degraded().is_none());

        PANIC_NEXT.with(|p| p.set(true));
        engine.rebuild(&Store::new(), Vec::new());
        let degraded = shared.degraded().expect("degraded after a panic");
        assert!(degraded.contains("injected by the test"), "{degraded}");
        assert_eq!(metrics.build_panics.get(), 1);
        let kept = cache.get(&key).expect("snapshot kept");
        assert!(
            kept.same_versions(&before),
            "the previous snapshot is still served"
        );
        assert!(
            shared.serves(&ObjKey::new("ns", "gw")),
            "the previous view is still shown"
        );

        engine.rebuild(&store, Vec::new());
        assert!(shared.degraded().is_none(), "a good build clears it");
    }
}
