//! Objects from the Kubernetes API: one watcher per kind, feeding the shared store.
//!
//! Each watcher re-lists after errors (including 410 Gone) and replaces its kind's objects
//! with the complete list, so nothing is lost or duplicated across restarts. The store is
//! "synced" once every kind has delivered its first complete list; until then nothing is
//! built, so Envoy never receives a partial first configuration.

mod state;

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::standard::{
    gatewayclasses::GatewayClass, gateways::Gateway, referencegrants::ReferenceGrant,
};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

pub use state::KubeState;

use crate::api::{GatewayExtension, GatewayParameters, TrafficPolicy};
use crate::store::{Kind, Object, ObjectRef};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Starts one watcher per kind; they run until the runtime stops.
pub fn spawn(client: Client, state: Arc<KubeState>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        spawn_kind::<Namespace>(&client, Kind::Namespace, &state, |o| {
            Object::Namespace(Box::new(o))
        }),
        spawn_kind::<GatewayClass>(&client, Kind::GatewayClass, &state, |o| {
            Object::GatewayClass(Box::new(o))
        }),
        spawn_kind::<Gateway>(&client, Kind::Gateway, &state, |o| {
            Object::Gateway(Box::new(o))
        }),
        spawn_kind::<HttpRoute>(&client, Kind::HttpRoute, &state, |o| {
            Object::HttpRoute(Box::new(o))
        }),
        spawn_kind::<ReferenceGrant>(&client, Kind::ReferenceGrant, &state, |o| {
            Object::ReferenceGrant(Box::new(o))
        }),
        spawn_kind::<GatewayExtension>(&client, Kind::GatewayExtension, &state, |o| {
            Object::GatewayExtension(Box::new(o))
        }),
        spawn_kind::<GatewayParameters>(&client, Kind::GatewayParameters, &state, |o| {
            Object::GatewayParameters(Box::new(o))
        }),
        spawn_kind::<TrafficPolicy>(&client, Kind::TrafficPolicy, &state, |o| {
            Object::TrafficPolicy(Box::new(o))
        }),
        spawn_kind::<Service>(&client, Kind::Service, &state, |o| {
            Object::Service(Box::new(o))
        }),
        spawn_kind::<EndpointSlice>(&client, Kind::EndpointSlice, &state, |o| {
            Object::EndpointSlice(Box::new(o))
        }),
    ]
}

fn spawn_kind<K>(
    client: &Client,
    kind: Kind,
    state: &Arc<KubeState>,
    into: fn(K) -> Object,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let state = state.clone();
    tokio::spawn(async move { run_kind(api, kind, state, into).await })
}

/// Drops what Gatehouse never reads and that changes on every write.
fn trim<K: Resource>(mut o: K) -> K {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    o
}

async fn run_kind<K>(api: Api<K>, kind: Kind, state: Arc<KubeState>, into: fn(K) -> Object)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let mut buffer: Vec<Object> = Vec::new();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => buffer.clear(),
            Ok(watcher::Event::InitApply(o)) => buffer.push(into(trim(o))),
            Ok(watcher::Event::InitDone) => state.relisted(kind, std::mem::take(&mut buffer)),
            Ok(watcher::Event::Apply(o)) => state.apply(into(trim(o))),
            Ok(watcher::Event::Delete(o)) => {
                let key = into(o).key();
                state.delete(ObjectRef { kind, key });
            }
            Err(e) => state.failed(kind, describe(kind, &e)),
        }
    }
}

fn describe(kind: Kind, e: &watcher::Error) -> String {
    let text = e.to_string();
    let missing = matches!(e, watcher::Error::InitialListFailed(kube::Error::Api(s)) | watcher::Error::WatchFailed(kube::Error::Api(s)) if s.code == 404);
    if missing {
        format!(
            "cannot list {kind}: its CustomResourceDefinition is not installed (or the API is not served): {text}"
        )
    } else {
        format!("watching {kind} failed, retrying with back-off: {text}")
    }
}
