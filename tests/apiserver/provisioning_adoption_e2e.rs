//! Objects that hold a provisioned name but are not Gatehouse's (no managed-by label and
//! controlling ownerReference to the Gateway) are never adopted, changed or deleted; the
//! Gateway says why it has no proxies, and gets them once the name is free. Against a real
//! kube-apiserver (no controller-manager: nothing but Gatehouse deletes).

use crate::support;
use support::manifests;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::cluster::ClusterWorld;
use support::walkthrough::{GW, condition};

const NS: &str = "kgateway-system";
const NAME: &str = "gatehouse-http";

/// A namespaced kind the helpers below read and write.
trait Namespaced:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

/// Creates `object` as a tenant would (its own field manager, none of Gatehouse's marks).
async fn create<K>(w: &ClusterWorld, object: Value) -> K
where
    K: Namespaced + serde::Serialize,
{
    let api: Api<K> = Api::namespaced(w.client.clone(), NS);
    let object: K = serde_json::from_value(object).expect("object");
    let params = PostParams {
        field_manager: Some("tenant".into()),
        ..Default::default()
    };
    api.create(&params, &object).await.expect("create")
}

async fn get<K>(w: &ClusterWorld, name: &str) -> Option<K>
where
    K: Namespaced,
{
    let api: Api<K> = Api::namespaced(w.client.clone(), NS);
    api.get_opt(name).await.expect("get")
}

async fn delete<K>(w: &ClusterWorld, name: &str)
where
    K: Namespaced,
{
    let api: Api<K> = Api::namespaced(w.client.clone(), NS);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
}

/// Polls for 30 s until `done` holds for the object `name` (None: absent).
async fn wait_for<K>(w: &ClusterWorld, name: &str, what: &str, done: impl Fn(Option<&K>) -> bool)
where
    K: Namespaced,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = get::<K>(w, name).await;
        if done(got.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {got:?}\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn owned_by_gatehouse(meta: &ObjectMeta) -> bool {
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/managed-by"))
        .is_some_and(|v| v == "gatehouse");
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Gateway" && o.name == "http" && o.controller == Some(true));
    labelled && owned
}

/// What must not change on an object Gatehouse does not own.
fn fingerprint(meta: &ObjectMeta) -> (Option<String>, Option<String>, Value, Value) {
    (
        meta.uid.clone(),
        meta.resource_version.clone(),
        json!(meta.labels),
        json!(meta.owner_references),
    )
}

fn foreign_deployment() -> Value {
    json!({
        "metadata": {"name": NAME, "namespace": NS, "labels": {"app": "theirs"}},
        "spec": {
            "selector": {"matchLabels": {"app": "theirs"}},
            "template": {
                "metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "theirs", "image": "example.com/theirs:1"}]}
            }
        }
    })
}

/// Everything replica `i` logged.
fn replica_log(w: &ClusterWorld, i: usize) -> String {
    std::fs::read_to_string(&w.replicas[i].proc.log).unwrap_or_default()
}

fn programmed(status: &Value) -> Option<(String, String, String)> {
    let c = condition(&status["conditions"], "Programmed")?;
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_objects_with_provisioned_names_are_left_alone_reported_and_then_replaced() {
    let mut w = ClusterWorld::start().await;
    // Before Gatehouse runs, a tenant of the namespace holds three of the Gateway's names: a
    // ConfigMap (its bootstrap), a Deployment, and a Service that even carries Gatehouse's
    // label — a label anyone can write proves nothing without the ownerReference.
    let cm: ConfigMap = create(
        &w,
        json!({
            "metadata": {"name": NAME, "namespace": NS, "labels": {"app": "theirs"}},
            "data": {"bootstrap.json": "{\"theirs\": true}"}
        }),
    )
    .await;
    let deploy: Deployment = create(&w, foreign_deployment()).await;
    let svc: Service = create(
        &w,
        json!({
            "metadata": {"name": NAME, "namespace": NS,
                         "labels": {"app.kubernetes.io/managed-by": "gatehouse"}},
            "spec": {"ports": [{"port": 1234}]}
        }),
    )
    .await;
    let r = w.start_replica("solo");

    let status = w
        .wait_status(
            "Programmed=False naming the conflicts",
            GW,
            "Gateway",
            NS,
            "http",
            |s| {
                programmed(s)
                    .is_some_and(|(status, reason, _)| status == "False" && reason == "NoResources")
            },
        )
        .await;
    let (_, _, message) = programmed(&status).expect("Programmed");
    for object in [
        "ConfigMap gatehouse-http",
        "Service gatehouse-http",
        "Deployment gatehouse-http",
    ] {
        assert!(message.contains(object), "{object} not named: {message}");
    }
    assert!(message.contains("will not adopt"), "{message}");
    assert!(
        status["addresses"].as_array().is_none_or(|a| a.is_empty()),
        "the foreign Service's address is not the Gateway's: {status:#}"
    );
    assert_eq!(w.metric(r, "gatehouse_provision_conflicts"), 1.0);

    // Past a few rechecks nothing was touched, and nothing was provisioned beside them (the
    // Deployment would mount the ConfigMap and run as the ServiceAccount).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let cm_now: ConfigMap = get(&w, NAME).await.expect("ConfigMap kept");
    assert_eq!(fingerprint(&cm_now.metadata), fingerprint(&cm.metadata));
    assert_eq!(cm_now.data, cm.data);
    let deploy_now: Deployment = get(&w, NAME).await.expect("Deployment kept");
    assert_eq!(
        fingerprint(&deploy_now.metadata),
        fingerprint(&deploy.metadata)
    );
    assert_eq!(deploy_now.spec, deploy.spec);
    let svc_now: Service = get(&w, NAME).await.expect("Service kept");
    assert_eq!(fingerprint(&svc_now.metadata), fingerprint(&svc.metadata));
    assert!(get::<ServiceAccount>(&w, NAME).await.is_none());
    assert!(get::<Secret>(&w, "gatehouse-http-xds-tls").await.is_none());
    let log = replica_log(&w, r);
    assert_eq!(
        log.matches("not provisioning the Gateway's proxies")
            .count(),
        1,
        "one warning, not one per recheck\n{log}"
    );

    // The tenant removes them: the next recheck provisions, and the condition clears.
    delete::<ConfigMap>(&w, NAME).await;
    delete::<Deployment>(&w, NAME).await;
    delete::<Service>(&w, NAME).await;
    for kind in ["ConfigMap", "Deployment", "Service"] {
        let what = format!("Gatehouse's own {kind}");
        match kind {
            "ConfigMap" => {
                wait_for::<ConfigMap>(&w, NAME, &what, |o| {
                    o.is_some_and(|o| owned_by_gatehouse(&o.metadata))
                })
                .await
            }
            "Deployment" => {
                wait_for::<Deployment>(&w, NAME, &what, |o| {
                    o.is_some_and(|o| owned_by_gatehouse(&o.metadata))
                })
                .await
            }
            _ => {
                wait_for::<Service>(&w, NAME, &what, |o| {
                    o.is_some_and(|o| owned_by_gatehouse(&o.metadata))
                })
                .await
            }
        }
    }
    // The conflict no longer decides: Programmed now waits on the proxies' pods (no kubelet
    // runs them here), as any freshly provisioned Gateway does.
    w.wait_status(
        "Programmed waiting on the Deployment, not the conflict",
        GW,
        "Gateway",
        NS,
        "http",
        |s| {
            programmed(s).is_some_and(|(status, reason, message)| {
                status == "False" && reason == "Pending" && message.contains("replicas available")
            })
        },
    )
    .await;
    assert_eq!(w.metric(r, "gatehouse_provision_conflicts"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_gateways_proxies_spares_objects_that_only_share_their_names() {
    let mut w = ClusterWorld::start().await;
    let r = w.start_replica("solo");
    let port = w.listener_port;
    let gateway = |labels: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: http, namespace: {NS}}}
spec:
  gatewayClassName: gatehouse
  infrastructure: {{labels: {{{labels}}}}}
  listeners:
  - {{name: http, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}
"
        )
    };
    // Objects Gatehouse created (not applied) still lose what the Gateway no longer asks for.
    w.apply_yaml(&gateway("team: edge")).await;
    let has_team = |o: Option<&ConfigMap>| {
        o.and_then(|o| o.metadata.labels.as_ref())
            .is_some_and(|l| l.contains_key("team"))
    };
    wait_for::<ConfigMap>(&w, NAME, "ConfigMap labelled team", has_team).await;
    w.apply_yaml(&gateway("tier: edge")).await;
    wait_for::<ConfigMap>(&w, NAME, "ConfigMap without the team label", |o| {
        o.is_some() && !has_team(o)
    })
    .await;
    wait_for::<Deployment>(&w, NAME, "Deployment", |o| o.is_some()).await;

    // Someone replaces the provisioned ConfigMap and ServiceAccount by their own.
    delete::<ConfigMap>(&w, NAME).await;
    delete::<ServiceAccount>(&w, NAME).await;
    let cm: ConfigMap = create(
        &w,
        json!({"metadata": {"name": NAME, "namespace": NS}, "data": {"theirs": "yes"}}),
    )
    .await;
    let sa: ServiceAccount = create(&w, json!({"metadata": {"name": NAME, "namespace": NS}})).await;

    // The Gateway moves to another controller: Gatehouse removes its proxies, and only those.
    w.apply_yaml(&manifests::foreign_gateway(NS, port)).await;
    wait_for::<Deployment>(&w, NAME, "Deployment deleted", |o| o.is_none()).await;
    wait_for::<Service>(&w, NAME, "Service deleted", |o| o.is_none()).await;
    wait_for::<Secret>(&w, "gatehouse-http-xds-tls", "Secret deleted", |o| {
        o.is_none()
    })
    .await;
    // A resync later they are still there, untouched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cm_now: ConfigMap = get(&w, NAME)
        .await
        .expect("the foreign ConfigMap was deleted");
    assert_eq!(fingerprint(&cm_now.metadata), fingerprint(&cm.metadata));
    assert_eq!(cm_now.data, cm.data);
    let sa_now: ServiceAccount = get(&w, NAME)
        .await
        .expect("the foreign ServiceAccount was deleted");
    assert_eq!(fingerprint(&sa_now.metadata), fingerprint(&sa.metadata));
    let log = replica_log(&w, r);
    assert!(
        log.contains("not deleting an object with a provisioned name"),
        "no warning logged\n{log}"
    );
}
