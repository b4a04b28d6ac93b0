//! The rebuild step every source shares: store → model → translate → snapshots, plus the view
//! the admin endpoint and the xDS node grouper read.
//!
//! This module orchestrates a build; `view` holds what it publishes for the admin endpoint and
//! the status writer, `grouper` authenticates proxies and picks their cache group, `health`
//! counts and logs status changes, `memory` hands freed memory back to the kernel.

mod grouper;
mod health;
mod memory;
pub mod programmed;
mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gatehouse_xds::{Snapshot, SnapshotCache};

pub use self::grouper::{XdsAuth, group};
pub use self::memory::release_now as release_freed_memory;
pub use self::view::{Shared, View};
use crate::metrics::Metrics;
use crate::model::{self, GatewayModel, Model, ModelConfig};
use crate::store::{ObjKey, Store};
use crate::translate::{self, GatewayResources, TranslateOptions};

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
    translated: Translated,
}

/// Each served Gateway's model, its translation and the snapshot made of it.
type Translated = BTreeMap<ObjKey, Translation>;

#[derive(Clone)]
struct Translation {
    model: Arc<GatewayModel>,
    resources: Arc<GatewayResources>,
    /// What was published; the next snapshot shares its unchanged clusters' resources.
    snapshot: Snapshot,
}

/// What one build made: the model, every Gateway's translation, and the snapshots of the
/// Gateways whose model changed.
struct Built {
    model: Model,
    translated: Translated,
    changed: Vec<(ObjKey, Snapshot)>,
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
        let Some(built) = self.build(&mut memo, store) else {
            return;
        };
        self.shared.set_degraded(None);
        self.metrics.degraded.set(0);
        let republished = built.changed.len();
        for (key, snap) in built.changed {
            self.cache.set(&group(&key), snap);
        }
        let resources = built
            .translated
            .iter()
            .map(|(k, t)| (k.clone(), t.resources.clone()))
            .collect();
        memo.translated = built.translated;
        drop(memo);
        let (next, unhealthy) = self.next_view(built.model, resources, problems);
        let previous = self.replace_view(next);
        let Ok(current) = self.shared.view.read() else {
            return;
        };
        self.empty_gone(&previous, &current);
        self.record_build(started, store, &current, unhealthy, republished);
        drop(current);
        drop(previous);
        memory::release_freed_memory(store.len());
    }

    /// Builds the model and translates the Gateways whose model changed; `None` when that
    /// panicked, which is logged, counted and reported as degraded.
    fn build(&self, memo: &mut Memo, store: &Store) -> Option<Built> {
        // A bug in the model or translator must not take the control plane down: the proxies
        // keep the previous snapshots, /readyz reports the failure, the next change retries.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            #[cfg(test)]
            tests::maybe_panic();
            let model = memo.builder.build(store, &self.model_config);
            self.metrics
                .route_resolutions
                .inc_by(memo.builder.last_resolved() as u64);
            let (translated, changed) = self.translate_changed(&memo.translated, &model);
            Built {
                model,
                translated,
                changed,
            }
        }));
        match built {
            Ok(built) => Some(built),
            Err(panic) => {
                // What the builder kept may be half-updated: start over next time.
                *memo = Memo::default();
                let why = panic_message(&*panic);
                tracing::error!(panic = %why, objects = store.len(), "building the configuration panicked; proxies keep the previous configuration");
                self.metrics.build_panics.inc();
                self.metrics.degraded.set(1);
                self.shared
                    .set_degraded(Some(format!("the last build panicked: {why}")));
                None
            }
        }
    }

    /// Every Gateway's translation, reusing `previous` for a Gateway whose model is the same
    /// `Arc`; and the snapshots of the others, which were translated again.
    fn translate_changed(
        &self,
        previous: &Translated,
        model: &Model,
    ) -> (Translated, Vec<(ObjKey, Snapshot)>) {
        let mut changed = Vec::new();
        let mut translated = BTreeMap::new();
        for gw in &model.gateways {
            let translation = match previous.get(&gw.key) {
                Some(t) if Arc::ptr_eq(&t.model, gw) => t.clone(),
                previous => {
                    let resources = Arc::new(translate::translate_gateway_after(
                        gw,
                        &self.translate_options,
                        previous.map(|t| (&*t.model, &*t.resources)),
                    ));
                    let snapshot = crate::snapshot::snapshot_after(
                        &resources,
                        previous.map(|t| (&*t.resources, &t.snapshot)),
                    );
                    changed.push((gw.key.clone(), snapshot.clone()));
                    Translation {
                        model: gw.clone(),
                        resources,
                        snapshot,
                    }
                }
            };
            translated.insert(gw.key.clone(), translation);
        }
        (translated, changed)
    }

    /// The view of a finished build, after logging the status changes since the current
    /// view; with the number of objects with a condition that does not hold.
    fn next_view(
        &self,
        model: Model,
        resources: BTreeMap<ObjKey, Arc<GatewayResources>>,
        problems: Vec<String>,
    ) -> (View, usize) {
        let (before, bad_routes_before) = self
            .shared
            .view
            .read()
            .map(|v| (v.model.clone(), v.unhealthy_routes))
            .unwrap_or_default();
        let bad_routes = bad_routes_before
            .saturating_add_signed(health::log_status_changes(&before.status, &model.status));
        drop(before);
        let unhealthy = health::count_unhealthy(&model.status) + bad_routes;
        let next = View {
            ready: true,
            builds: 0,
            resources,
            model: Arc::new(model),
            problems,
            unhealthy_routes: bad_routes,
            ..View::default()
        };
        (next, unhealthy)
    }

    /// Makes `next` the current view, counting the build; returns the view it replaced.
    fn replace_view(&self, next: View) -> View {
        // Swap rather than copy: the previous view is only read afterwards, never cloned.
        match self.shared.view.write() {
            Ok(mut view) => {
                let builds = view.builds + 1;
                let previous = std::mem::replace(&mut *view, next);
                view.builds = builds;
                previous
            }
            Err(_) => View::default(),
        }
    }

    /// Gateways that went away, and proxies of Gateways that never existed, get an empty
    /// snapshot: their proxies stop serving rather than keep a deleted Gateway's routes.
    fn empty_gone(&self, previous: &View, current: &View) {
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
    }

    /// Metrics and the log line of a finished build.
    fn record_build(
        &self,
        started: Instant,
        store: &Store,
        current: &View,
        unhealthy: usize,
        republished: usize,
    ) {
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
    }
}

/// The message a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests;
