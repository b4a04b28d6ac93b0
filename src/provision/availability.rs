//! Watches the provisioned proxy Deployments' status, so that a Gateway is `Programmed` only
//! while its proxies run (see [`crate::engine::programmed`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::engine::Shared;
use crate::engine::programmed::Availability;
use crate::store::ObjKey;

/// The Gateway a provisioned Deployment belongs to (its controlling owner), and its replicas.
pub fn availability_of(d: &Deployment) -> Option<(ObjKey, Availability)> {
    let namespace = d.metadata.namespace.clone()?;
    let owner =
        d.metadata.owner_references.iter().flatten().find(|o| {
            o.kind == "Gateway" && o.api_version.starts_with("gateway.networking.k8s.io/")
        })?;
    let status = d.status.as_ref();
    let availability = Availability {
        deployment: format!(
            "{namespace}/{}",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    };
    Some((ObjKey::new(namespace, owner.name.clone()), availability))
}

/// Keeps `shared`'s availability map equal to the Deployments Gatehouse manages, until the
/// watch ends (never, short of the process ending: the watcher retries with backoff).
pub async fn watch(client: kube::Client, shared: Arc<Shared>) {
    let api: Api<Deployment> = Api::all(client);
    let config = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        super::MANAGED_BY
    ));
    let mut current: BTreeMap<String, (ObjKey, Availability)> = BTreeMap::new();
    let mut relist: Option<BTreeMap<String, (ObjKey, Availability)>> = None;
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let uid = |d: &Deployment| d.metadata.uid.clone().unwrap_or_default();
        match event {
            Ok(Event::Apply(d)) => match availability_of(&d) {
                Some(a) => {
                    current.insert(uid(&d), a);
                }
                None => {
                    current.remove(&uid(&d));
                }
            },
            Ok(Event::Delete(d)) => {
                current.remove(&uid(&d));
            }
            Ok(Event::Init) => relist = Some(BTreeMap::new()),
            Ok(Event::InitApply(d)) => {
                if let (Some(r), Some(a)) = (relist.as_mut(), availability_of(&d)) {
                    r.insert(uid(&d), a);
                }
            }
            Ok(Event::InitDone) => current = relist.take().unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "watching provisioned Deployments failed; retrying");
                continue;
            }
        }
        shared.set_availability(current.values().cloned().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_owner_gateway_and_replicas() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "gatehouse-gw", "namespace": "ns", "ownerReferences": [
                {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "gw", "uid": "u"}
            ]},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"availableReplicas": 2}
        }))
        .unwrap();
        let (key, a) = availability_of(&d).unwrap();
        assert_eq!(key, ObjKey::new("ns", "gw"));
        assert_eq!((a.available, a.desired), (2, 3));
        assert_eq!(a.deployment, "ns/gatehouse-gw");
        let mut orphan = d.clone();
        orphan.metadata.owner_references = None;
        assert!(availability_of(&orphan).is_none());
        let mut fresh = d;
        fresh.status = None;
        assert_eq!(availability_of(&fresh).unwrap().1.available, 0);
    }
}
