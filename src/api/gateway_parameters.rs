//! `GatewayParameters`: how Gatehouse provisions a Gateway's Envoy proxies. A subset of
//! kgateway's type with the same field names, so a kgateway `parametersRef` works unchanged;
//! fields Gatehouse does not implement are not in the schema (the API server prunes them).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Proxy deployment settings, referenced from a GatewayClass `spec.parametersRef` or a
/// Gateway `spec.infrastructure.parametersRef`; the Gateway's fields override the class's.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.kgateway.dev",
    version = "v1alpha1",
    kind = "GatewayParameters",
    plural = "gatewayparameters",
    namespaced,
    category = "kgateway",
    category = "gatehouse",
    derive = "PartialEq",
    derive = "Default",
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParametersSpec {
    /// Settings of proxies deployed as Kubernetes workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubernetesProxyConfig>,
    /// How every listener of the Gateway treats request paths before matching routes (a
    /// Gatehouse field, named as Envoy Gateway's ClientTrafficPolicy `path`). Dot segments are
    /// always resolved; these only loosen or tighten escaped slashes and repeated slashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathSettings>,
}

/// Path normalization of a Gateway's listeners. The defaults are the safe choice; see
/// docs/security-model.md for what each weaker choice lets through.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathSettings {
    /// What a path containing `%2F`, `%2f`, `%5C` or `%5c` gets: `UnescapeAndRedirect`
    /// (default: a redirect to the unescaped path), `RejectRequest` (400),
    /// `UnescapeAndForward` (matched and forwarded unescaped) or `KeepUnchanged` (matched and
    /// forwarded as sent; a backend that decodes `%2F` then sees a path no route matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['UnescapeAndRedirect', 'RejectRequest', 'UnescapeAndForward', 'KeepUnchanged']").message("escapedSlashesAction must be UnescapeAndRedirect, RejectRequest, UnescapeAndForward or KeepUnchanged"))]
    pub escaped_slashes_action: Option<String>,
    /// Keep `//` in paths instead of merging it into `/` (default false). A backend that
    /// merges slashes itself then sees a path no route matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_merge_slashes: Option<bool>,
}

/// Kubernetes objects of a proxy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProxyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<ProxyDeployment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_container: Option<EnvoyContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ProxyService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ExtraMetadata>,
}

/// The proxy Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyDeployment {
    /// Number of proxy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("replicas must be 0-1000"))]
    pub replicas: Option<i32>,
}

/// The Envoy container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyContainer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<EnvoyBootstrap>,
}

/// Envoy's own settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyBootstrap {
    /// Envoy's `--log-level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['trace', 'debug', 'info', 'warning', 'warn', 'error', 'critical', 'off']").message("logLevel must be one of trace, debug, info, warning, warn, error, critical, off"))]
    pub log_level: Option<String>,
}

/// A container image, in parts (as kgateway writes it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Wins over `tag` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['Always', 'IfNotPresent', 'Never']").message("pullPolicy must be Always, IfNotPresent or Never"))]
    pub pull_policy: Option<String>,
}

/// The proxy pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

/// The proxy Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyService {
    /// Service type; LoadBalancer when unset.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['ClusterIP', 'NodePort', 'LoadBalancer']").message("type must be ClusterIP, NodePort or LoadBalancer"))]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
}

/// Labels and annotations added to one object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_annotations: Option<BTreeMap<String, String>>,
}
