//! With Gateway API's experimental channel installed, the API server accepts an HTTPRoute with
//! an ExternalAuth filter, and Gatehouse reads it back with the filter intact.

use crate::support;

use gateway_api::apis::experimental::httproutes::{
    HttpRoute, HttpRouteRulesFiltersExternalAuthProtocol, HttpRouteRulesFiltersType,
};
use kube::Api;

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: filtered, namespace: default}
spec:
  parentRefs: [{name: http}]
  rules:
  - filters:
    - type: ExternalAuth
      externalAuth:
        protocol: GRPC
        backendRef: {name: ext-authz, port: 4444}
        grpc: {allowedHeaders: [authorization]}
        forwardBody: {maxSize: 1024}
    backendRefs: [{name: httpbin, port: 8000}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experimental_channel_accepts_the_external_auth_filter() {
    let api = support::apiserver::ApiServer::start();
    let experimental =
        support::apiserver::gateway_api_standard_dir().with_file_name("experimental");
    api.install_crds(&[experimental, support::repo().join("crds")])
        .await;
    let client = api.client().await;
    let doc: serde_json::Value = yaml_serde::from_str(ROUTE).expect("yaml");
    support::apiserver::apply(&client, &doc)
        .await
        .expect("the API server accepts the ExternalAuth filter");

    let route = Api::<HttpRoute>::namespaced(client, "default")
        .get("filtered")
        .await
        .expect("read back");
    let filter = &route.spec.rules.as_ref().expect("rules")[0]
        .filters
        .as_ref()
        .expect("filters")[0];
    assert_eq!(filter.r#type, HttpRouteRulesFiltersType::ExternalAuth);
    let ea = filter.external_auth.as_ref().expect("externalAuth");
    assert_eq!(ea.protocol, HttpRouteRulesFiltersExternalAuthProtocol::Grpc);
    assert_eq!(
        ea.forward_body.as_ref().and_then(|f| f.max_size),
        Some(1024)
    );
}
