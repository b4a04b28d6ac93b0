//! What the admin endpoint, the status writer and the xDS grouper read: the last build's
//! [`View`], and the [`Shared`] state around it (readiness, degradation, what proxies reject,
//! which Gateways could not be provisioned).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use gatehouse_xds::Rejection;

use super::programmed::{self, Availability, Proxies, Tracking};
use crate::model::{self, Model, Status};
use crate::store::ObjKey;
use crate::translate::GatewayResources;

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
    /// changes, so that a build costs what its change does rather than a count of every route
    /// (BENCHMARKS.md, item 20).
    pub(super) unhealthy_routes: usize,
    /// What each Gateway's proxies currently reject (NACK), from the xDS server.
    pub rejected: Arc<BTreeMap<ObjKey, Vec<Rejection>>>,
    /// `Programmed=False` of Gateways whose proxies the provisioner would not create because
    /// objects with their names are someone else's (controller mode).
    pub unprovisioned: Arc<BTreeMap<ObjKey, model::Condition>>,
    /// Whether `Programmed` follows the proxies (controller mode), and what it follows.
    pub tracking: Option<Tracking>,
    /// Each Gateway's connected proxies, from the xDS server.
    pub proxies: Arc<BTreeMap<ObjKey, Proxies>>,
    /// Each Gateway's provisioned Deployment, from its status.
    pub availability: Arc<BTreeMap<ObjKey, Availability>>,
}

impl View {
    /// Status of every object Gatehouse owns: the build's, with `Programmed=False` on the
    /// Gateways whose proxies could not be provisioned, rejected the last update (Envoy keeps
    /// the previous config) or, when tracked, do not run yet (see [`programmed`]). The
    /// provisioning conflict wins: it is why there may be no proxies of Gatehouse's at all.
    pub fn status(&self) -> Cow<'_, Status> {
        if self.rejected.is_empty() && self.unprovisioned.is_empty() && self.tracking.is_none() {
            return Cow::Borrowed(&self.model.status);
        }
        let mut status = self.model.status.clone();
        for (key, gw) in status.gateways.iter_mut() {
            let served = gw
                .conditions
                .iter()
                .any(|c| c.type_ == model::condition_names::PROGRAMMED && c.status == "True");
            let programmed = if let Some(c) = self.unprovisioned.get(key) {
                Some(c.clone())
            } else if let Some(r) = self.rejected.get(key) {
                Some(rejected_condition(r))
            } else if let (Some(tracking), true) = (self.tracking, served) {
                programmed::pending(
                    tracking,
                    key,
                    self.availability.get(key),
                    !gw.addresses.is_empty(),
                    self.proxies.get(key),
                )
            } else {
                None
            };
            if let Some(programmed) = programmed {
                gw.conditions.retain(|c| c.type_ != programmed.type_);
                gw.conditions.push(programmed);
            }
        }
        Cow::Owned(status)
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
    pub(super) view: RwLock<View>,
    /// Gateways proxies asked for, so that unknown ones get an (empty) answer.
    pub(super) requested: Mutex<BTreeSet<ObjKey>>,
    /// Why the last build failed (a panic in the model or translator), while the previous
    /// configuration keeps being served; `None` when the last build succeeded.
    degraded: Mutex<Option<String>>,
    rejected: RwLock<Arc<BTreeMap<ObjKey, Vec<Rejection>>>>,
    unprovisioned: RwLock<Arc<BTreeMap<ObjKey, model::Condition>>>,
    tracking: RwLock<Option<Tracking>>,
    proxies: RwLock<Arc<BTreeMap<ObjKey, Proxies>>>,
    availability: RwLock<Arc<BTreeMap<ObjKey, Availability>>>,
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
        view.tracking = self.tracking.read().ok().and_then(|t| *t);
        if let Ok(proxies) = self.proxies.read() {
            view.proxies = proxies.clone();
        }
        if let Ok(availability) = self.availability.read() {
            view.availability = availability.clone();
        }
        view
    }

    /// Makes `Programmed` follow the proxies (controller mode).
    pub fn track(&self, tracking: Tracking) {
        if let Ok(mut t) = self.tracking.write() {
            *t = Some(tracking);
        }
        self.status_changed.notify_one();
    }

    /// Replaces the summary of each Gateway's proxies; wakes the status writer on a change.
    pub fn set_proxies(&self, next: BTreeMap<ObjKey, Proxies>) {
        if replace(&self.proxies, next) {
            self.status_changed.notify_one();
        }
    }

    /// Replaces each Gateway's provisioned Deployment availability; wakes the status writer
    /// on a change.
    pub fn set_availability(&self, next: BTreeMap<ObjKey, Availability>) {
        if replace(&self.availability, next) {
            self.status_changed.notify_one();
        }
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
        log_rejection_changes(&current, &next);
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

    pub(super) fn set_degraded(&self, why: Option<String>) {
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

/// Replaces the map behind `slot` with `next`; true when it changed.
fn replace<T: PartialEq>(slot: &RwLock<Arc<T>>, next: T) -> bool {
    let Ok(mut current) = slot.write() else {
        return false;
    };
    if **current == next {
        return false;
    }
    *current = Arc::new(next);
    true
}

/// Logs the Gateways whose proxies newly reject, or accept again.
fn log_rejection_changes(
    current: &BTreeMap<ObjKey, Vec<Rejection>>,
    next: &BTreeMap<ObjKey, Vec<Rejection>>,
) {
    for (key, rejections) in next {
        if current.get(key) != Some(rejections) {
            let c = rejected_condition(rejections);
            tracing::warn!(gateway = %key, status = "Programmed=False", reason = %c.reason, message = %c.message, "Gateway status changed: its proxies rejected the last update");
        }
    }
    for key in current.keys().filter(|k| !next.contains_key(*k)) {
        tracing::info!(gateway = %key, "Gateway status changed: its proxies accept the configuration again");
    }
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
        model::condition_names::PROGRAMMED,
        model::condition_names::INVALID,
        format!("{message}; it keeps serving its previous configuration"),
    )
}
