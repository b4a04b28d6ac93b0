//! Patches `status` where it differs from what the model computed.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use futures::StreamExt;

use super::desired::{Desired, Plan, changed_between, desired};
use crate::metrics::StatusMetrics;
use crate::model::Status;
use crate::source::kube::Touched;
use crate::store::{Kind, KindFn, KindScope, ObjKey, Store, StoredKind};

/// How long a written status is trusted before the watch must show it.
const WRITE_GRACE: Duration = Duration::from_secs(5);
/// Status patches in flight at once: the first status of 10,000 routes takes seconds, not a
/// minute, and the API server's fairness queues keep other clients served.
const IN_FLIGHT: usize = 16;

/// Writes status for the leader.
///
/// Each round is two steps: [`StatusWriter::plan`] computes, under the store's lock, the
/// statuses that differ — only for objects whose model status changed since the last plan or
/// whose stored object changed, so a one-route change looks at one route — and
/// [`StatusWriter::write`] patches them without the lock.
pub struct StatusWriter {
    client: Client,
    controller: String,
    metrics: StatusMetrics,
    /// What was written last per object, and when: the watch may not show it yet.
    /// A digest, not the value: the first status of 10,000 objects would keep 10,000 JSON
    /// trees alive for the grace period.
    recent: HashMap<(Kind, ObjKey), (u64, Instant)>,
    /// The model status the last plan looked at; `None` makes the next plan look at every
    /// object.
    last: Option<Status>,
    /// Objects whose write failed: the next plan looks at them again.
    retry: BTreeSet<(Kind, ObjKey)>,
    /// Objects a full plan did not look at: the next plan, which follows at once, does.
    more: BTreeSet<(Kind, ObjKey)>,
}

/// The most statuses one plan holds; the rest follow in the next rounds.
const PLAN_LIMIT: usize = 256;

impl StatusWriter {
    pub fn new(client: Client, controller: String, metrics: StatusMetrics) -> Self {
        Self {
            client,
            controller,
            metrics,
            recent: HashMap::new(),
            last: None,
            retry: BTreeSet::new(),
            more: BTreeSet::new(),
        }
    }

    /// Makes the next plan look at every object (after gaining leadership, and periodically:
    /// what nobody told us about, e.g. a lost watch event, is repaired).
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// The statuses to write: the objects in `touched`, the objects whose model status
    /// changed since the last plan and those whose write failed, where what they hold differs
    /// from what the model says and was not just written.
    pub fn plan(&mut self, store: &Store, status: &Status, touched: Touched) -> Vec<Desired> {
        let scope = match &self.last {
            Some(last) if !touched.all => {
                let mut scope = changed_between(last, status);
                let again = std::mem::take(&mut self.retry);
                let more = std::mem::take(&mut self.more);
                for (kind, key) in touched.objects.into_iter().chain(again).chain(more) {
                    scope.entry(kind).or_default().insert(key);
                }
                Some(scope)
            }
            _ => None,
        };
        self.last = Some(status.clone());
        let now = Time(Timestamp::now());
        self.recent.retain(|_, (_, at)| at.elapsed() < WRITE_GRACE);
        let recent = &self.recent;
        let written_already = |kind: Kind, key: &ObjKey, status: &serde_json::Value| matches!(recent.get(&(kind, key.clone())), Some((digest, _)) if *digest == digest_of(status));
        let mut plan = Plan::new(PLAN_LIMIT, &written_already);
        desired(
            store,
            status,
            &self.controller,
            &now,
            scope.as_ref(),
            &mut plan,
        );
        self.more = plan.later.into_iter().collect();
        plan.writes
    }

    /// True when objects wait for a plan because the last one was full.
    pub fn has_more(&self) -> bool {
        !self.more.is_empty()
    }

    /// Patches each planned status, a few at a time; returns how many were written.
    pub async fn write(&mut self, plan: Vec<Desired>) -> usize {
        let this = &*self;
        let results: Vec<_> = futures::stream::iter(plan)
            .map(|d| async move {
                let started = Instant::now();
                let result = this.patch(&d).await;
                (result, d, started.elapsed())
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut written = 0;
        for (result, d, took) in results {
            let id = (d.kind, d.key.clone());
            let kind = d.kind.to_string();
            if !matches!(&result, Err(e) if gone(e)) {
                self.metrics
                    .record(&kind, took.as_secs_f64(), result.is_ok());
            }
            match result {
                Ok(()) => {
                    written += 1;
                    self.recent
                        .insert(id, (digest_of(&d.status), Instant::now()));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {} // deleted meanwhile
                Err(e) => {
                    self.retry.insert(id);
                    tracing::warn!(kind = %d.kind, object = %d.key, error = %e, "status write failed");
                }
            }
        }
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

/// The object was deleted meanwhile: not a failed write.
fn gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(e) if e.code == 404)
}

/// A digest of a status value: its JSON text, hashed (object keys are sorted, so equal values
/// print alike).
fn digest_of(value: &serde_json::Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
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
        let namespace = <K::Scope as KindScope>::NAMESPACED.then_some(self.key.namespace.as_str());
        let request = kube::core::Request::new(K::url_path(&(), namespace)).patch_subresource(
            "status",
            &self.key.name,
            &PatchParams::default(),
            self.patch,
        );
        Box::pin(async move {
            let request = request.map_err(kube::Error::BuildRequest)?;
            // The reply is the whole object, and the watch brings it anyway: it is read as
            // text and dropped, not parsed into the typed object (thousands of small
            // allocations per write that outlived nothing but scattered the heap).
            self.client.request_text(request).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, build};
    use crate::store::ObjKey;
    use crate::testing;

    fn world(backend: &str) -> String {
        testing::gateway_class("gatehouse", "gatehouse.dev/gatehouse", "")
            + &testing::gateway(
                "infra",
                "gw",
                "gatehouse",
                "listeners: [{name: http, protocol: HTTP, port: 80}]",
            )
            + &testing::http_route(
                "infra",
                "r",
                "gw",
                &[],
                &format!("  - backendRefs: [{{name: {backend}, port: 80}}]\n"),
            )
    }

    /// What the API server would hold after the planned patches: each object's status as
    /// planned (the watch's echo).
    fn written(store: &mut Store, plan: &[Desired]) -> Touched {
        let mut touched = Touched::default();
        for d in plan {
            let value = d.status.clone();
            match d.kind {
                Kind::GatewayClass => store.gateway_classes.get_mut(&d.key).map(|o| {
                    o.status = serde_json::from_value(value).ok();
                }),
                Kind::Gateway => store.gateways.get_mut(&d.key).map(|o| {
                    o.status = serde_json::from_value(value).ok();
                }),
                Kind::HttpRoute => store.http_routes.get_mut(&d.key).map(|o| {
                    o.status = serde_json::from_value(value).ok();
                }),
                other => panic!("no {other} in this world"),
            };
            touched.objects.insert((d.kind, d.key.clone()));
        }
        touched
    }

    fn writer() -> StatusWriter {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("a client; it is never called");
        StatusWriter::new(
            client,
            "gatehouse.dev/gatehouse".into(),
            crate::metrics::Metrics::new(Default::default()).status,
        )
    }

    /// After the first plan, a plan looks only at what changed — in the model or in the
    /// store — so a one-route change costs one route; `forget` looks at everything again.
    #[tokio::test]
    async fn plans_look_at_what_changed_and_forget_repairs_the_rest() {
        let config = ModelConfig {
            accept_unknown_classes: false,
            ..ModelConfig::default()
        };
        let mut store = testing::store(&world("missing"));
        let mut w = writer();
        let status = build(&store, &config).status;
        let first = w.plan(&store, &status, Touched::default());
        assert_eq!(first.len(), 3, "the first plan looks at everything");
        let echo = written(&mut store, &first);
        assert_eq!(w.plan(&store, &status, echo), vec![], "the echoes match");

        // Someone rewrote the route's status and we missed the event: an incremental plan
        // does not look, a forgetful one repairs it.
        let route = ObjKey::new("infra", "r");
        store.http_routes.get_mut(&route).expect("route").status = None;
        assert_eq!(w.plan(&store, &status, Touched::default()), vec![]);
        w.forget();
        let repaired = w.plan(&store, &status, Touched::default());
        assert_eq!(
            repaired
                .iter()
                .map(|d| (d.kind, &d.key))
                .collect::<Vec<_>>(),
            vec![(Kind::HttpRoute, &route)]
        );
        written(&mut store, &repaired);

        // The model changes for one object: the plan has it, from the model's diff alone.
        let fixed = testing::store(&(world("missing") + &testing::service("infra", "missing", 80)));
        for (_, svc) in fixed.services {
            store.apply(crate::store::Object::Service(Box::new(svc)));
        }
        let status = build(&store, &config).status;
        let plan = w.plan(&store, &status, Touched::default());
        assert_eq!(
            plan.iter().map(|d| (d.kind, &d.key)).collect::<Vec<_>>(),
            vec![(Kind::HttpRoute, &route)],
            "the backend now resolves"
        );
    }

    #[tokio::test]
    async fn a_full_plan_leaves_the_rest_to_the_next_one() {
        let config = ModelConfig::default();
        let routes = PLAN_LIMIT + 10;
        let mut yaml = world("b") + &testing::service("infra", "b", 80);
        for i in 0..routes {
            yaml += &testing::http_route(
                "infra",
                &format!("extra-{i}"),
                "gw",
                &[],
                "  - backendRefs: [{name: b, port: 80}]\n",
            );
        }
        let mut store = testing::store(&yaml);
        let status = build(&store, &config).status;
        let mut w = writer();
        let first = w.plan(&store, &status, Touched::default());
        assert_eq!(first.len(), PLAN_LIMIT);
        assert!(w.has_more());
        written(&mut store, &first);
        let second = w.plan(&store, &status, Touched::default());
        // The extra routes, the class, the Gateway and route `r`.
        assert_eq!(first.len() + second.len(), routes + 3);
        assert!(!w.has_more(), "the second plan had room for the rest");
        let mut keys: Vec<_> = first
            .iter()
            .chain(&second)
            .map(|d| (d.kind, &d.key))
            .collect();
        let all = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), all, "no object is planned twice");
    }
}
