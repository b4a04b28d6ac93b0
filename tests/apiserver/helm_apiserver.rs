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
    // values-all puts the dashboard ConfigMap into Grafana's namespace.
    for ns in [RELEASE_NS, "monitoring"] {
        apply(&client, &namespace(ns), false)
            .await
            .expect("namespace");
    }
    for values in [
        &[][..],
        &["tests/helm/values-all.yaml"][..],
        &["tests/helm/values-openshift.yaml"][..],
    ] {
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
        let mut expected = vec![
            "Deployment",
            "Service",
            "ClusterRole",
            "GatewayClass",
            "GatewayParameters",
        ];
        if values.contains(&"tests/helm/values-all.yaml") {
            expected.push("ConfigMap");
        }
        for kind in expected {
            assert!(
                checked.iter().any(|k| k == kind),
                "{kind} not checked: {checked:?}"
            );
        }
    }
}

/// docs/operations.md, "Uninstalling": the controller, not the chart, creates the xDS CA Secret
/// (no owner) and the Lease, so `helm uninstall` leaves them; per-Gateway objects are owned by
/// their Gateway; the documented `-l app.kubernetes.io/managed-by=gatehouse` finds them all.
async fn uninstall_leaves_what_operations_md_lists(client: &kube::Client) {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Secret;
    let rendered: Vec<(String, String)> = render(&[])
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let labelled =
        kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=gatehouse");
    let secrets = Api::<Secret>::all(client.clone())
        .list(&labelled)
        .await
        .expect("list Secrets");
    let find = |ns: &str, name: &str| {
        secrets
            .items
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{ns}/{name} not found by the documented label selector: {:?}",
                    secrets
                        .items
                        .iter()
                        .map(|s| &s.metadata.name)
                        .collect::<Vec<_>>()
                )
            })
    };
    let ca = find(RELEASE_NS, "gatehouse-xds-ca");
    assert!(
        ca.metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .is_empty(),
        "the CA Secret is owned now: update docs/operations.md, \"Uninstalling\""
    );
    assert!(!rendered.contains(&("Secret".into(), "gatehouse-xds-ca".into())));
    let proxy = find("kgateway-system", "gatehouse-http-xds-tls");
    let owners = proxy.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.kind == "Gateway" && o.name == "http" && o.controller == Some(true)),
        "{owners:?}"
    );
    let lease = Api::<Lease>::namespaced(client.clone(), RELEASE_NS)
        .get_opt("gatehouse-controller")
        .await
        .expect("get Lease");
    assert!(lease.is_some(), "the Lease docs/operations.md names");
    assert!(!rendered.iter().any(|(kind, _)| kind == "Lease"));
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
    uninstall_leaves_what_operations_md_lists(&w.client).await;
    // The chart's Grafana dashboard plots status write durations per kind; the family appears
    // with the first write (tests/offline/helm_chart/dashboard.rs checks the other metrics).
    assert!(
        w.metric(r, "gatehouse_status_write_seconds_count") > 0.0,
        "{log}"
    );
}

/// `certificateNamespaces`: with only the chart's RBAC, the controller reads certificates in
/// the namespaces it names and cannot list Secrets anywhere else; a Secret elsewhere does not
/// resolve, even with a ReferenceGrant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reads_certificates_only_in_certificate_namespaces() {
    use support::tls::{self, TestCa};
    let groups: &[&str] = &[
        "system:serviceaccounts",
        "system:serviceaccounts:gatehouse-system",
    ];
    let api = ApiServer::start_with_tokens(&[(SA_TOKEN, SA_USER, "chart-sa-uid", groups)]);
    let mut w = ClusterWorld::start_on(api).await;
    for ns in [RELEASE_NS, "certs", "elsewhere"] {
        apply(&w.client, &namespace(ns), false)
            .await
            .expect("namespace");
    }
    for doc in render(&["tests/helm/values-certificate-namespaces.yaml"]) {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        if kind == "CustomResourceDefinition" {
            continue;
        }
        apply(&w.client, &doc, false)
            .await
            .unwrap_or_else(|e| panic!("apply {kind}: {e}"));
    }
    let ca = TestCa::new("test CA");
    let (a, b) = (ca.leaf(&["a.example.com"]), ca.leaf(&["b.example.com"]));
    w.apply_yaml(&tls::secret("certs", "a", &a)).await;
    w.apply_yaml(&tls::secret("elsewhere", "b", &b)).await;
    for ns in ["certs", "elsewhere"] {
        w.apply_yaml(&format!(
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: gateways, namespace: {ns}}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: kgateway-system}}]\n  to: [{{group: \"\", kind: Secret}}]\n"
        ))
        .await;
    }
    let port = support::procs::free_port();
    w.apply_yaml(&format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: http, namespace: kgateway-system}}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {{name: http, protocol: HTTP, port: {http}, allowedRoutes: {{namespaces: {{from: All}}}}}}
  - {{name: a, protocol: HTTPS, port: {port}, hostname: a.example.com, tls: {{certificateRefs: [{{name: a, namespace: certs}}]}}, allowedRoutes: {{namespaces: {{from: All}}}}}}
  - {{name: b, protocol: HTTPS, port: {port}, hostname: b.example.com, tls: {{certificateRefs: [{{name: b, namespace: elsewhere}}]}}, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: tls-hosts, namespace: httpbin}}
spec:
  parentRefs: [{{name: http, namespace: kgateway-system}}]
  hostnames: [a.example.com]
  rules:
  - backendRefs: [{{name: httpbin, port: 8000}}]
"#,
        http = w.listener_port
    ))
    .await;

    let sa_client = w.api.client_for(SA_USER).await;
    let elsewhere: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(sa_client.clone(), "elsewhere");
    assert!(
        elsewhere.list(&Default::default()).await.is_err(),
        "the role lists Secrets outside certificateNamespaces"
    );
    let certs: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(sa_client, "certs");
    assert!(certs.list(&Default::default()).await.is_ok());

    let kubeconfig = w.api.kubeconfig_for(SA_USER);
    let r = w.start_replica_with(
        "certificates",
        &kubeconfig,
        RELEASE_NS,
        &["--certificate-namespaces", "certs,kgateway-system"],
    );
    w.start_envoy(r).await;
    let client = tls::client(&[&ca.cert_pem]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match tls::get(
            &client,
            port,
            "a.example.com",
            "a.example.com",
            "/headers",
            &[],
        ) {
            Ok((resp, peer)) if resp.status == 200 && peer == a.der() => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "a.example.com not served: {:?}\n{}",
                other.map(|(r, _)| r.status),
                w.logs()
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let status = w
        .wait_status(
            "listener b reported",
            support::walkthrough::GW,
            "Gateway",
            "kgateway-system",
            "http",
            |s| {
                s["listeners"].as_array().is_some_and(|ls| {
                    ls.iter().any(|l| {
                        l["name"] == "b"
                            && support::walkthrough::condition(&l["conditions"], "ResolvedRefs")
                                .is_some_and(|c| c["reason"] == "InvalidCertificateRef")
                    })
                })
            },
        )
        .await;
    assert!(status.is_object());
    let log = w.replicas[r].proc.tail(400);
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "the controller hit RBAC denials:\n{log}"
    );
}
