//! The chart against a real kube-apiserver: every rendered object passes a server-side dry-run
//! apply, and the controller, holding only the chart's RBAC (a token for the chart's
//! ServiceAccount), provisions its proxy and completes the seed walkthrough.

use crate::support;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;
use support::apiserver::ApiServer;
use support::cluster::ClusterWorld;
use support::helm::render;
use support::walkthrough::seed_walkthrough;

const RELEASE_NS: &str = "gatehouse-system";
const SA_USER: &str = "system:serviceaccount:gatehouse-system:gatehouse";
const SA_TOKEN: &str = "chart-service-account-token";

/// Server-side applies `doc`, for real or as a dry run.
async fn apply(client: &kube::Client, doc: &Value, dry_run: bool) -> kube::Result<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (resource, caps) =
        kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await?;
    let obj: DynamicObject =
        serde_json::from_value(doc.clone()).map_err(kube::Error::SerdeError)?;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        let ns = obj
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| RELEASE_NS.into());
        Api::namespaced_with(client.clone(), &ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let mut params = PatchParams::apply("helm-test").force();
    params.dry_run = dry_run;
    api.patch(&name, &params, &Patch::Apply(&obj)).await
}

fn namespace(name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_passes_server_side_dry_run() {
    let api = ApiServer::start();
    let crds = api.install_gateway_api_and_gatehouse_crds().await;
    assert!(
        crds.iter()
            .any(|c| c == "gatewayparameters.gateway.kgateway.dev"),
        "{crds:?}"
    );
    let client = api.client().await;
    apply(&client, &namespace(RELEASE_NS), false)
        .await
        .expect("namespace");
    for values in [&[][..], &["tests/helm/values-all.yaml"][..]] {
        let objects = render(values);
        let mut checked = Vec::new();
        for doc in &objects {
            let kind = doc["kind"].as_str().expect("kind");
            // Installed above from crds/, which tests/offline/helm_chart.rs proves identical.
            if kind == "CustomResourceDefinition" {
                continue;
            }
            // The Prometheus Operator's CRD is not part of this API server.
            if kind == "ServiceMonitor" {
                continue;
            }
            apply(&client, doc, true).await.unwrap_or_else(|e| {
                panic!(
                    "dry-run of {kind} {} with values {values:?}: {e}",
                    doc["metadata"]["name"]
                )
            });
            checked.push(kind.to_string());
        }
        for kind in [
            "Deployment",
            "Service",
            "ClusterRole",
            "GatewayClass",
            "GatewayParameters",
        ] {
            assert!(
                checked.iter().any(|k| k == kind),
                "{kind} not checked: {checked:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_with_only_the_charts_rbac_runs_the_walkthrough() {
    let groups: &[&str] = &[
        "system:serviceaccounts",
        "system:serviceaccounts:gatehouse-system",
    ];
    let api = ApiServer::start_with_tokens(&[(SA_TOKEN, SA_USER, "chart-sa-uid", groups)]);
    let mut w = ClusterWorld::start_on(api).await;
    apply(&w.client, &namespace(RELEASE_NS), false)
        .await
        .expect("namespace");
    // The chart's objects for real: RBAC, GatewayParameters, the GatewayClass pointing at it.
    for doc in render(&[]) {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        if kind == "CustomResourceDefinition" {
            continue;
        }
        apply(&w.client, &doc, false)
            .await
            .unwrap_or_else(|e| panic!("apply {kind}: {e}"));
    }
    // HTTPS listeners need certificates from Secrets anywhere a Gateway may refer to; RBAC
    // cannot narrow a list by type, so the role lists Secrets and the controller asks only for
    // kubernetes.io/tls ones (docs/tls.md). Its rights come from the chart alone: the token
    // is bound to nothing else.
    let sa_client = w.api.client_for(SA_USER).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(sa_client, "kube-system");
    let tls_only = kube::api::ListParams::default().fields("type=kubernetes.io/tls");
    assert!(
        secrets.list(&tls_only).await.is_ok(),
        "the chart's role must let the controller list TLS Secrets"
    );

    let kubeconfig = w.api.kubeconfig_for(SA_USER);
    let r = w.start_replica_as("least-privilege", &kubeconfig, RELEASE_NS);
    w.start_envoy(r).await;
    seed_walkthrough(&w).await;
    let log = w.replicas[r].proc.tail(400);
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "the controller hit RBAC denials:\n{log}"
    );
    assert_eq!(
        w.metric(r, "gatehouse_provision_errors_total"),
        0.0,
        "{log}"
    );
    assert_eq!(
        w.metric(r, "gatehouse_status_write_errors_total"),
        0.0,
        "{log}"
    );
}
