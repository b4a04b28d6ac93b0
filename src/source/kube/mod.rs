//! Objects from the Kubernetes API: one watcher per kind, feeding the shared store.
//!
//! Each watcher re-lists after errors (including 410 Gone) and replaces its kind's objects
//! with the complete list, so nothing is lost or duplicated across restarts. The store is
//! "synced" once every kind has delivered its first complete list; until then nothing is
//! built, so Envoy never receives a partial first configuration.

mod state;

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

pub use state::{KubeState, Touched};

use crate::store::{Kind, KindFn, Object, ObjectRef, StoredKind};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Starts one watcher per kind; they run until the runtime stops. With
/// `certificate_namespaces`, Secrets and ConfigMaps are watched in those namespaces only, one
/// watcher each (and the controller needs no cluster-wide right to list them).
pub fn spawn(
    client: Client,
    state: Arc<KubeState>,
    certificate_namespaces: &[String],
) -> Vec<tokio::task::JoinHandle<()>> {
    struct Spawn<'a> {
        client: &'a Client,
        state: &'a Arc<KubeState>,
        namespace: Option<&'a str>,
    }
    impl KindFn for Spawn<'_> {
        type Output = tokio::task::JoinHandle<()>;
        fn call<K: StoredKind>(self) -> Self::Output {
            let api: Api<K> = match self.namespace {
                Some(ns) => <K::Scope as crate::store::KindScope>::api(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            };
            let namespace = self.namespace.map(str::to_string);
            tokio::spawn(run_kind(api, self.state.clone(), namespace))
        }
    }
    let mut handles = Vec::new();
    for kind in Kind::ALL {
        let partitioned =
            matches!(kind, Kind::Secret | Kind::ConfigMap) && !certificate_namespaces.is_empty();
        if partitioned {
            state.watch_in(kind, certificate_namespaces);
            for ns in certificate_namespaces {
                handles.push(kind.with(Spawn {
                    client: &client,
                    state: &state,
                    namespace: Some(ns),
                }));
            }
        } else {
            handles.push(kind.with(Spawn {
                client: &client,
                state: &state,
                namespace: None,
            }));
        }
    }
    handles
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

async fn run_kind<K: StoredKind>(api: Api<K>, state: Arc<KubeState>, namespace: Option<String>) {
    let kind = K::KIND;
    let mut buffer: Vec<Object> = Vec::new();
    let mut stream = watcher(api, config(kind)).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => buffer.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                buffer.push(only_what_is_read(K::into_object(trim(o))))
            }
            Ok(watcher::Event::InitDone) => {
                state.relisted_in(kind, namespace.as_deref(), std::mem::take(&mut buffer))
            }
            Ok(watcher::Event::Apply(o)) => state.apply(only_what_is_read(K::into_object(trim(o)))),
            Ok(watcher::Event::Delete(o)) => {
                let key = K::into_object(o).key();
                state.delete(ObjectRef { kind, key });
            }
            Err(e) => state.failed(kind, describe(kind, &e)),
        }
    }
}

/// The keys of a ConfigMap and a Secret the model reads: every other key (a large ConfigMap,
/// a Secret's `ca.crt`) is dropped as it arrives, so the controller keeps no data it has no use
/// for.
fn only_what_is_read(mut o: Object) -> Object {
    match &mut o {
        Object::ConfigMap(cm) => {
            if let Some(data) = cm.data.as_mut() {
                data.retain(|k, _| k == "ca.crt");
            }
            cm.binary_data = None;
        }
        Object::Secret(secret) => {
            if let Some(data) = secret.data.as_mut() {
                data.retain(|k, _| k == "tls.crt" || k == "tls.key");
            }
            secret.string_data = None;
        }
        _ => {}
    }
    o
}

/// What the watch of `kind` asks the API server for. Secrets: TLS certificates only, so the
/// controller never holds (or is sent) service-account tokens, Helm releases or other
/// credentials it has no use for.
fn config(kind: Kind) -> watcher::Config {
    match kind {
        Kind::Secret => watcher::Config::default().fields(TLS_SECRETS),
        _ => watcher::Config::default(),
    }
}

/// The field selector of the Secret watch.
pub const TLS_SECRETS: &str = "type=kubernetes.io/tls";

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
