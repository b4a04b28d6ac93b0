//! Patches `status` where it differs from what the model computed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Patch, PatchParams};
use prometheus_client::metrics::counter::Counter;
use serde_json::json;

use super::desired::{Desired, desired};
use crate::model::Status;
use crate::store::{Kind, KindFn, KindScope, ObjKey, Store, StoredKind};

/// How long a written status is trusted before the watch must show it.
const WRITE_GRACE: Duration = Duration::from_secs(5);

/// Writes status for the leader.
pub struct StatusWriter {
    client: Client,
    controller: String,
    writes: Counter,
    errors: Counter,
    /// What was written last per object, and when: the watch may not show it yet.
    recent: HashMap<(Kind, ObjKey), (serde_json::Value, Instant)>,
}

impl StatusWriter {
    pub fn new(client: Client, controller: String, writes: Counter, errors: Counter) -> Self {
        Self {
            client,
            controller,
            writes,
            errors,
            recent: HashMap::new(),
        }
    }

    /// Writes every status that differs; returns how many were written.
    pub async fn sync(&mut self, store: &Store, status: &Status) -> usize {
        let now = Time(Timestamp::now());
        let mut written = 0;
        for d in desired(store, status, &self.controller, &now) {
            if d.status == d.current {
                continue;
            }
            let id = (d.kind, d.key.clone());
            if let Some((value, at)) = self.recent.get(&id)
                && *value == d.status
                && at.elapsed() < WRITE_GRACE
            {
                continue; // written already; the watch has not caught up
            }
            match self.patch(&d).await {
                Ok(()) => {
                    written += 1;
                    self.writes.inc();
                    self.recent.insert(id, (d.status, Instant::now()));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {} // deleted meanwhile
                Err(e) => {
                    self.errors.inc();
                    tracing::warn!(kind = %d.kind, object = %d.key, error = %e, "status write failed");
                }
            }
        }
        self.recent.retain(|_, (_, at)| at.elapsed() < WRITE_GRACE);
        written
    }

    async fn patch(&self, d: &Desired) -> Result<(), kube::Error> {
        let patch = Patch::Merge(json!({ "status": d.status }));
        tracing::debug!(kind = %d.kind, object = %d.key, "writing status");
        d.kind
            .with(PatchStatus {
                client: &self.client,
                key: &d.key,
                patch: &patch,
            })
            .await
    }
}

/// A merge patch of one object's `status`, whichever its kind.
struct PatchStatus<'a> {
    client: &'a Client,
    key: &'a ObjKey,
    patch: &'a Patch<serde_json::Value>,
}

impl<'a> KindFn for PatchStatus<'a> {
    type Output = futures::future::BoxFuture<'a, Result<(), kube::Error>>;
    fn call<K: StoredKind>(self) -> Self::Output {
        let api = <K::Scope as KindScope>::api::<K>(self.client.clone(), &self.key.namespace);
        Box::pin(async move {
            api.patch_status(&self.key.name, &PatchParams::default(), self.patch)
                .await
                .map(drop)
        })
    }
}
