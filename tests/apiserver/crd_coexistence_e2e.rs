//! kgateway installs CRDs of the same names as Gatehouse's. Where the installed schema lacks a
//! field Gatehouse reads, the API server drops that field from every object; the controller
//! says so (log and `gatehouse_crd_missing_fields`) instead of losing it silently.

use crate::support;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use support::cluster::ClusterWorld;

const CRD: &str = "trafficpolicies.gateway.kgateway.dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_crd_of_the_same_name_is_reported() {
    let mut w = ClusterWorld::start().await;
    // Another project's TrafficPolicy CRD: no `extAuth.disable`.
    let api: Api<CustomResourceDefinition> = Api::all(w.client.clone());
    let mut crd = api.get(CRD).await.expect("CRD installed");
    let ext_auth = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .and_then(|root| root.properties.as_mut()?.get_mut("spec"))
        .and_then(|spec| spec.properties.as_mut()?.get_mut("extAuth"))
        .expect("extAuth in the schema");
    ext_auth
        .properties
        .as_mut()
        .expect("properties")
        .remove("disable");
    ext_auth.x_kubernetes_validations = None;
    api.replace(CRD, &PostParams::default(), &crd)
        .await
        .expect("replace the CRD");

    let r = w.start_replica("solo");
    let sample = format!("gatehouse_crd_missing_fields{{crd=\"{CRD}\"}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = support::http::get(w.replicas[r].admin_port, "localhost", "/metrics", &[])
            .map(|r| r.body)
            .unwrap_or_default();
        if support::metrics::sample(&body, &sample).is_some_and(|v| v >= 1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sample} never reported\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Gatehouse's own CRDs lack nothing.
    assert_eq!(
        w.metric(
            r,
            "gatehouse_crd_missing_fields{crd=\"gatewayextensions.gateway.kgateway.dev\"}"
        ),
        0.0
    );
    let log = std::fs::read_to_string(&w.replicas[r].proc.log).unwrap_or_default();
    assert!(
        log.contains(".spec.extAuth.disable") && log.contains("not Gatehouse's"),
        "the log names the dropped field\n{log}"
    );
}
