//! Controller mode provisions each Gateway's proxy objects (server-side apply, owned by the
//! Gateway) and serves a Gateway's xDS only to a proxy holding that Gateway's certificate.
//! Against a real kube-apiserver; the xDS clients are real gRPC/TLS clients.

use crate::support;
use support::manifests;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use futures::StreamExt;
use gateway_api::apis::standard::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::Api;
use serde_json::Value;
use support::cluster::{ClusterWorld, XDS_SERVER_NAME};
use support::walkthrough::GW;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const NS: &str = "kgateway-system";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// Polls `name` in NS for 30 s until `done` holds for what the API server returns (None when
/// it does not exist); panics with the last answer otherwise.
async fn wait_on<K>(
    w: &ClusterWorld,
    name: &str,
    what: &str,
    done: impl Fn(Option<&K>) -> bool,
) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(w.client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(got) = api.get_opt(name).await {
            if done(got.as_ref()) {
                return got;
            }
            last = Some(format!("{got:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting for {what} ({name}); last: {last:?}\n{}",
        w.logs()
    );
}

async fn wait_get<K>(w: &ClusterWorld, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    wait_on(w, name, what, |o: Option<&K>| o.is_some_and(&check))
        .await
        .expect("present")
}

fn gateway_uid(gw: &Value) -> String {
    gw["metadata"]["uid"].as_str().expect("uid").to_string()
}

fn controlled_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: &str,
) -> bool {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| {
            o.kind == "Gateway" && o.name == "http" && o.uid == uid && o.controller == Some(true)
        })
}

fn service_ports(s: &Service) -> Vec<i32> {
    s.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|p| p.iter().map(|p| p.port).collect())
        .unwrap_or_default()
}

async fn gateway_object(w: &ClusterWorld) -> Value {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        w.client.clone(),
        NS,
        &kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "Gateway",
        )),
    );
    serde_json::to_value(api.get("http").await.expect("get gateway")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_get_owned_proxy_objects_that_follow_their_listeners() {
    let mut w = ClusterWorld::start().await;
    w.start_replica("solo");
    let uid = gateway_uid(&gateway_object(&w).await);
    let port = i32::from(w.listener_port);

    let sa: ServiceAccount = wait_get(&w, "gatehouse-http", "ServiceAccount", |_| true).await;
    let secret: Secret =
        wait_get(&w, "gatehouse-http-xds-tls", "certificate Secret", |_| true).await;
    let cm: ConfigMap = wait_get(&w, "gatehouse-http", "bootstrap ConfigMap", |_| true).await;
    let svc: Service = wait_get(&w, "gatehouse-http", "Service", |_| true).await;
    let deploy: Deployment = wait_get(&w, "gatehouse-http", "Deployment", |_| true).await;
    for (kind, meta) in [
        ("ServiceAccount", &sa.metadata),
        ("Secret", &secret.metadata),
        ("ConfigMap", &cm.metadata),
        ("Service", &svc.metadata),
        ("Deployment", &deploy.metadata),
    ] {
        assert!(
            controlled_by(meta, &uid),
            "{kind} is not controlled by the Gateway: {:?}",
            meta.owner_references
        );
        let managers: Vec<_> = meta
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.as_deref())
            .collect();
        assert!(
            managers.contains(&"gatehouse"),
            "{kind} not server-side applied by gatehouse: {managers:?}"
        );
    }
    assert_eq!(service_ports(&svc), vec![port]);
    assert_eq!(
        svc.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    let bootstrap: Value = serde_json::from_str(&cm.data.as_ref().expect("data")["bootstrap.json"])
        .expect("bootstrap json");
    assert_eq!(
        bootstrap["node"]["metadata"]["gatehouse.dev/gateway"],
        "kgateway-system/http"
    );
    assert_eq!(
        bootstrap["staticResources"]["clusters"][0]["transportSocket"]["typedConfig"]["sni"],
        XDS_SERVER_NAME
    );
    let tls = secret.data.as_ref().expect("secret data");
    assert!(
        tls.contains_key("tls.crt") && tls.contains_key("tls.key") && tls.contains_key("ca.crt")
    );

    // Gateway status reports the Service's address.
    let cluster_ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("cluster IP");
    let status = w
        .wait_status("Gateway addresses", GW, "Gateway", NS, "http", |s| {
            s["addresses"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        status["addresses"][0]["value"],
        cluster_ip.as_str(),
        "{status:#}"
    );

    // A second listener: the Service gets its port, the Deployment its container port.
    let extra = i32::from(support::procs::free_port());
    w.apply_yaml(&manifests::gateway(
        NS,
        "http",
        "gatehouse",
        &[
            format!("{{name: http, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}"),
            format!("{{name: extra, protocol: HTTP, port: {extra}}}"),
        ],
    ))
    .await;
    let mut want = vec![port, extra];
    want.sort_unstable();
    let svc: Service = wait_get(
        &w,
        "gatehouse-http",
        "Service with both ports",
        |s: &Service| service_ports(s) == want,
    )
    .await;
    assert!(controlled_by(&svc.metadata, &uid));

    // GatewayParameters referenced by the Gateway: replicas and Service type follow.
    w.apply_yaml(&format!(
        "{}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: http, namespace: {NS}}}
spec:
  gatewayClassName: gatehouse
  infrastructure:
    labels: {{team: edge}}
    parametersRef: {{group: gateway.kgateway.dev, kind: GatewayParameters, name: small}}
  listeners:
  - {{name: http, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}
",
        small_parameters(2)
    ))
    .await;
    let deploy: Deployment = wait_get(
        &w,
        "gatehouse-http",
        "Deployment with 2 replicas",
        |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas) == Some(2),
    )
    .await;
    let image = deploy
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("docker.io/envoyproxy/envoy:v9.9.9"));
    assert_eq!(
        deploy.metadata.labels.as_ref().expect("labels")["team"],
        "edge"
    );
    let svc: Service = wait_get(
        &w,
        "gatehouse-http",
        "ClusterIP Service with one port",
        |s: &Service| {
            s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ClusterIP")
                && service_ports(s) == vec![port]
        },
    )
    .await;
    assert!(controlled_by(&svc.metadata, &uid));

    // The certificate is kept across syncs (no churn of the proxies' credential).
    let again: Secret =
        wait_get(&w, "gatehouse-http-xds-tls", "certificate Secret", |_| true).await;
    assert_eq!(
        again.data.as_ref().map(|d| d["tls.crt"].clone()),
        secret.data.as_ref().map(|d| d["tls.crt"].clone())
    );

    // A change to the GatewayParameters alone reaches the Deployment: they are watched.
    w.apply_yaml(&small_parameters(3)).await;
    wait_get(
        &w,
        "gatehouse-http",
        "Deployment with 3 replicas",
        |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas) == Some(3),
    )
    .await;

    // A Gateway naming GatewayParameters that do not exist is not accepted, and gets no proxies.
    w.apply_yaml(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: typo, namespace: {NS}}}
spec:
  gatewayClassName: gatehouse
  infrastructure:
    parametersRef: {{group: gateway.kgateway.dev, kind: GatewayParameters, name: smal}}
  listeners:
  - {{name: http, protocol: HTTP, port: {}}}
",
        support::procs::free_port()
    ))
    .await;
    let typo: Gateway = wait_get(
        &w,
        "typo",
        "Gateway with InvalidParameters",
        |g: &Gateway| {
            accepted(g).is_some_and(|(status, reason, _)| {
                status == "False" && reason == "InvalidParameters"
            })
        },
    )
    .await;
    let (_, _, message) = accepted(&typo).expect("Accepted condition");
    assert!(
        message.contains("GatewayParameters kgateway-system/smal not found"),
        "{message}"
    );
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), NS);
    assert!(
        deployments
            .get_opt("gatehouse-typo")
            .await
            .expect("get")
            .is_none(),
        "nothing provisioned for a Gateway with invalid parameters"
    );

    // A Gateway that moves to another controller's class loses its proxies.
    w.apply_yaml(&manifests::foreign_gateway(NS, port)).await;
    wait_gone::<Deployment>(&w, "gatehouse-http").await;
    wait_gone::<Service>(&w, "gatehouse-http").await;
    wait_gone::<ConfigMap>(&w, "gatehouse-http").await;
    wait_gone::<ServiceAccount>(&w, "gatehouse-http").await;
    wait_gone::<Secret>(&w, "gatehouse-http-xds-tls").await;
}

/// GatewayParameters `scaling` with `kube` (a YAML flow mapping body), and the Gateway
/// `http` naming it.
fn scaling_parameters(port: u16, kube: &str) -> String {
    format!(
        "apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayParameters
metadata: {{name: scaling, namespace: {NS}}}
spec:
  kube: {{{kube}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: http, namespace: {NS}}}
spec:
  gatewayClassName: gatehouse
  infrastructure:
    parametersRef: {{group: gateway.kgateway.dev, kind: GatewayParameters, name: scaling}}
  listeners:
  - {{name: http, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}
"
    )
}

/// The field paths under `spec` of the Deployment that `manager` owns through apply, as
/// `f:` keys (e.g. `f:replicas`).
fn applied_spec_fields(d: &Deployment, manager: &str) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply")
        })
        .filter_map(|e| e.fields_v1.as_ref())
        .filter_map(|f| f.0.get("f:spec").and_then(Value::as_object))
        .flat_map(|spec| spec.keys().cloned())
        .collect()
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_add_and_remove_a_disruption_budget_and_an_autoscaler() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    let mut w = ClusterWorld::start().await;
    w.start_replica("solo");
    let uid = gateway_uid(&gateway_object(&w).await);
    let port = w.listener_port;

    // Gatehouse sets and owns the replicas while no autoscaler is asked for.
    w.apply_yaml(&scaling_parameters(port, "deployment: {replicas: 3}"))
        .await;
    let deploy: Deployment = wait_get(
        &w,
        "gatehouse-http",
        "Deployment with 3 replicas",
        |d: &Deployment| replicas(d) == Some(3),
    )
    .await;
    assert!(
        applied_spec_fields(&deploy, "gatehouse").contains(&"f:replicas".to_string()),
        "{:?}",
        deploy.metadata.managed_fields
    );

    // A budget and an autoscaler, as kgateway writes them.
    w.apply_yaml(&scaling_parameters(
        port,
        "deployment: {replicas: 3}, \
         podDisruptionBudget: {metadata: {labels: {tier: edge}}, spec: {maxUnavailable: 1}}, \
         horizontalPodAutoscaler: {spec: {minReplicas: 2, maxReplicas: 6, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 75}}}]}}",
    ))
    .await;
    let pdb: PodDisruptionBudget =
        wait_get(&w, "gatehouse-http", "PodDisruptionBudget", |_| true).await;
    let spec = pdb.spec.clone().expect("pdb spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.min_available, None);
    let selector = spec
        .selector
        .and_then(|s| s.match_labels)
        .expect("selector");
    assert_eq!(selector["gateway.networking.k8s.io/gateway-name"], "http");
    assert_eq!(
        pdb.metadata.labels.as_ref().expect("labels")["tier"],
        "edge"
    );
    assert!(controlled_by(&pdb.metadata, &uid), "{:?}", pdb.metadata);

    let hpa: HorizontalPodAutoscaler =
        wait_get(&w, "gatehouse-http", "HorizontalPodAutoscaler", |_| true).await;
    let spec = hpa.spec.clone().expect("hpa spec");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 6));
    assert_eq!(
        (
            spec.scale_target_ref.kind.as_str(),
            spec.scale_target_ref.name.as_str()
        ),
        ("Deployment", "gatehouse-http")
    );
    let utilization = spec
        .metrics
        .as_ref()
        .and_then(|m| m[0].resource.as_ref())
        .and_then(|r| r.target.average_utilization);
    assert_eq!(utilization, Some(75));
    assert!(controlled_by(&hpa.metadata, &uid), "{:?}", hpa.metadata);

    // The Deployment's replicas are no longer Gatehouse's, and were not reset on the way.
    let deploy: Deployment = wait_get(
        &w,
        "gatehouse-http",
        "Deployment without Gatehouse-owned replicas",
        |d: &Deployment| !applied_spec_fields(d, "gatehouse").contains(&"f:replicas".to_string()),
    )
    .await;
    assert_eq!(
        replicas(&deploy),
        Some(3),
        "replicas kept through the handover"
    );
    // What the autoscaler does (here by hand: no controller-manager runs): Gatehouse leaves it.
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), NS);
    deployments
        .patch_scale(
            "gatehouse-http",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale");
    // A change to the parameters makes Gatehouse apply the Deployment again.
    w.apply_yaml(&scaling_parameters(
        port,
        "deployment: {replicas: 3}, envoyContainer: {bootstrap: {logLevel: debug}}, \
         podDisruptionBudget: {metadata: {labels: {tier: edge}}, spec: {maxUnavailable: 1}}, \
         horizontalPodAutoscaler: {spec: {minReplicas: 2, maxReplicas: 6, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 75}}}]}}",
    ))
    .await;
    let deploy: Deployment = wait_get(
        &w,
        "gatehouse-http",
        "Deployment at debug",
        |d: &Deployment| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers[0].args.as_ref())
                .is_some_and(|a| a.contains(&"debug".to_string()))
        },
    )
    .await;
    assert_eq!(
        replicas(&deploy),
        Some(5),
        "the autoscaler's replicas stand"
    );

    // Invalid values are refused by the API server, with the reason.
    for (kube, reason) in [
        (
            "horizontalPodAutoscaler: {spec: {minReplicas: 7, maxReplicas: 6}}",
            "minReplicas must not exceed maxReplicas",
        ),
        (
            "podDisruptionBudget: {spec: {minAvailable: 1, maxUnavailable: 1}}",
            "set only one of minAvailable and maxUnavailable",
        ),
        (
            "podDisruptionBudget: {spec: {minAvailable: 150%}}",
            "minAvailable must be a count of 0 or more or a percentage from 0% to 100%",
        ),
    ] {
        let yaml = scaling_parameters(port, kube);
        let doc: Value =
            yaml_serde::from_str(yaml.split("---").next().expect("doc")).expect("yaml");
        let err = support::apiserver::apply(&w.client, &doc)
            .await
            .expect_err(kube)
            .to_string();
        assert!(err.contains(reason), "{kube}: {err}");
    }

    // Without them in the parameters, both go, and Gatehouse owns the replicas again.
    w.apply_yaml(&scaling_parameters(port, "deployment: {replicas: 2}"))
        .await;
    wait_gone::<HorizontalPodAutoscaler>(&w, "gatehouse-http").await;
    wait_gone::<PodDisruptionBudget>(&w, "gatehouse-http").await;
    let deploy: Deployment = wait_get(
        &w,
        "gatehouse-http",
        "Deployment with 2 replicas",
        |d: &Deployment| replicas(d) == Some(2),
    )
    .await;
    assert!(applied_spec_fields(&deploy, "gatehouse").contains(&"f:replicas".to_string()));
}

/// GatewayParameters `small`: `replicas` proxies of Envoy v9.9.9 behind a ClusterIP Service.
fn small_parameters(replicas: u32) -> String {
    format!(
        "apiVersion: gateway.kgateway.dev/v1alpha1
kind: GatewayParameters
metadata: {{name: small, namespace: {NS}}}
spec:
  kube:
    deployment: {{replicas: {replicas}}}
    envoyContainer: {{image: {{tag: v9.9.9}}}}
    service: {{type: ClusterIP}}
"
    )
}

/// Waits until `name` no longer exists in NS.
async fn wait_gone<K>(w: &ClusterWorld, name: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let what = format!("{} to be deleted", K::kind(&()));
    wait_on::<K>(w, name, &what, |o| o.is_none()).await;
}

/// (status, reason, message) of a Gateway's Accepted condition.
fn accepted(g: &Gateway) -> Option<(String, String, String)> {
    let c = g
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Accepted")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A node claiming `gateway` in its metadata, as `gatehouse bootstrap` writes it; or none.
fn node(gateway: Option<(&str, &str)>) -> Node {
    match gateway {
        Some((ns, name)) => gatehouse::bootstrap::node(&gatehouse::store::ObjKey::new(ns, name)),
        None => Node {
            id: "anonymous".into(),
            ..Default::default()
        },
    }
}

/// Listener names a client gets for `node`, or the error that stopped it.
async fn fetch_listeners(
    port: u16,
    tls: Option<ClientTlsConfig>,
    node: Node,
) -> Result<Vec<String>, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        Channel::from_shared(format!("{scheme}://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = tokio::time::timeout(Duration::from_secs(5), endpoint.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let request = DiscoveryRequest {
        node: Some(node),
        type_url: LISTENER.into(),
        ..Default::default()
    };
    let call = async {
        let mut stream = client
            .stream_aggregated_resources(
                futures::stream::iter([request]).chain(futures::stream::pending()),
            )
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        match stream.message().await {
            Ok(Some(resp)) => Ok(resp
                .resources
                .iter()
                .filter_map(|a| {
                    <envoy_types::pb::envoy::config::listener::v3::Listener as prost::Message>::decode(a.value.as_slice()).ok()
                })
                .map(|l| l.name)
                .collect()),
            Ok(None) => Err("stream ended".to_string()),
            Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .map_err(|_| "no answer".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xds_config_goes_only_to_the_gateways_own_certificate() {
    let mut w = ClusterWorld::start().await;
    let other_port = support::procs::free_port();
    w.apply_yaml(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: other, namespace: {NS}}}
spec:
  gatewayClassName: gatehouse
  listeners: [{{name: http, protocol: HTTP, port: {other_port}}}]
"
    ))
    .await;
    let r = w.start_replica("solo");
    let xds_port = w.replicas[r].xds_port;
    let mine = w.proxy_credentials(NS, "http").await;
    let theirs = w.proxy_credentials(NS, "other").await;
    let read =
        |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).expect("credential");
    let ca = Certificate::from_pem(read(&mine, "ca.crt"));
    let with = |dir: &std::path::Path| {
        ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name(XDS_SERVER_NAME)
            .identity(Identity::from_pem(
                read(dir, "tls.crt"),
                read(dir, "tls.key"),
            ))
    };
    let http_listener = format!("http-{}", w.listener_port);
    let other_listener = format!("http-{other_port}");

    // The right certificate: the Gateway's own listeners.
    let got = fetch_listeners(xds_port, Some(with(&mine)), node(Some((NS, "http")))).await;
    assert_eq!(got, Ok(vec![http_listener.clone()]), "{}", w.logs());

    // No credential at all: plain gRPC to a TLS port, and TLS without a client certificate.
    let plain = fetch_listeners(xds_port, None, node(Some((NS, "http")))).await;
    assert!(plain.is_err(), "plain gRPC got config: {plain:?}");
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .domain_name(XDS_SERVER_NAME);
    let anon = fetch_listeners(xds_port, Some(anonymous), node(Some((NS, "http")))).await;
    assert!(
        anon.is_err(),
        "TLS without a client certificate got config: {anon:?}"
    );

    // Another Gateway's certificate claiming this Gateway: refused.
    let stolen = fetch_listeners(xds_port, Some(with(&theirs)), node(Some((NS, "http")))).await;
    let err = stolen.expect_err("another Gateway's certificate got this Gateway's config");
    assert!(err.contains("PermissionDenied"), "{err}");

    // The same certificate without a claim gets its own Gateway, never this one.
    let own = fetch_listeners(xds_port, Some(with(&theirs)), node(None)).await;
    assert_eq!(own, Ok(vec![other_listener]));
    assert!(w.metric(r, "gatehouse_xds_refused_streams_total") >= 1.0);
}
