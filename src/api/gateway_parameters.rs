//! `GatewayParameters`: how Gatehouse provisions a Gateway's Envoy proxies. A subset of
//! kgateway's type with the same field names, so a kgateway `parametersRef` works unchanged;
//! fields Gatehouse does not implement are not in the schema (the API server prunes them).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec};
use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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
    /// With this field present, a `policy/v1` PodDisruptionBudget named like the Deployment
    /// selects the proxy pods (kgateway's field; its `spec` is typed here). Without it, none:
    /// one provisioned earlier is deleted. A Gateway's value replaces its class's as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetOverlay>,
    /// With this field present, an `autoscaling/v2` HorizontalPodAutoscaler named like the
    /// Deployment scales it, and Gatehouse leaves the Deployment's `replicas` to it
    /// (`deployment.replicas` is then ignored). Without it, none: one provisioned earlier is
    /// deleted. kgateway's field; its `spec` is typed here. A Gateway's value replaces its
    /// class's as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscalerOverlay>,
}

/// The proxy Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyDeployment {
    /// Number of proxy pods; ignored when `horizontalPodAutoscaler` is set.
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
    /// The pods' scheduling constraints (node, pod affinity and anti-affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread over zones or nodes. A constraint without `labelSelector` gets the
    /// selector of this Gateway's proxy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// The pods' PriorityClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 253").message("priorityClassName must be at most 253 characters"))]
    pub priority_class_name: Option<String>,
    /// The pod security context. Each field set here replaces Gatehouse's default for it
    /// (runAsNonRoot, runAsUser/runAsGroup/fsGroup 101, seccomp RuntimeDefault, the sysctl
    /// `net.ipv4.ip_unprivileged_port_start=0` that lets Envoy bind ports below 1024); fields
    /// left out keep the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
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

/// Labels and annotations of a generated object, as kgateway's overlays write them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverlayMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The proxies' PodDisruptionBudget. Its selector is always the proxy pods'.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetOverlay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<OverlayMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodDisruptionBudgetSettings>,
}

/// At most one of `minAvailable` and `maxUnavailable`; neither means `minAvailable: 1`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))").message("set only one of minAvailable and maxUnavailable"))]
pub struct PodDisruptionBudgetSettings {
    /// Pods that must stay available during a voluntary disruption: a count, or a percentage
    /// of the desired pods such as `50%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(COUNT_OR_PERCENT_RULE).message("minAvailable must be a count of 0 or more or a percentage from 0% to 100%"))]
    pub min_available: Option<IntOrString>,
    /// Pods that may be unavailable during a voluntary disruption: a count, or a percentage
    /// of the desired pods such as `25%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(COUNT_OR_PERCENT_RULE).message("maxUnavailable must be a count of 0 or more or a percentage from 0% to 100%"))]
    pub max_unavailable: Option<IntOrString>,
    /// When running but not ready pods may be evicted: `IfHealthyBudget` (the Kubernetes
    /// default) or `AlwaysAllow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['IfHealthyBudget', 'AlwaysAllow']").message("unhealthyPodEvictionPolicy must be IfHealthyBudget or AlwaysAllow"))]
    pub unhealthy_pod_eviction_policy: Option<String>,
}

/// An int-or-string is a count (`5`, printed as itself) or a percentage (`50%`).
const COUNT_OR_PERCENT_RULE: &str = "string(self).matches('^([0-9]+|(100|[1-9]?[0-9])%)$')";

/// The proxies' HorizontalPodAutoscaler. It always scales the proxy Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.spec) && has(self.spec.maxReplicas)").message("horizontalPodAutoscaler needs spec.maxReplicas"))]
pub struct HorizontalPodAutoscalerOverlay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<OverlayMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<HorizontalPodAutoscalerSettings>,
}

/// The replica range and what drives scaling within it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct HorizontalPodAutoscalerSettings {
    /// Fewest proxy pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("minReplicas must be 1-1000"))]
    pub min_replicas: Option<i32>,
    /// Most proxy pods; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("maxReplicas must be 1-1000"))]
    pub max_replicas: Option<i32>,
    /// What to scale on, as in an HPA (default: 80% average CPU utilization, which needs
    /// `envoyContainer.resources.requests.cpu`), e.g.
    /// `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
    /// Scale-up and scale-down rates, as in an HPA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

impl GatewayParametersSpec {
    /// Why these parameters cannot be used, for values the schema cannot refuse (objects read
    /// without Gatehouse's CRD, e.g. under kgateway's, which keeps these specs unvalidated).
    pub fn invalid(&self) -> Option<String> {
        let kube = self.kube.as_ref()?;
        if let Some(spec) = kube
            .pod_disruption_budget
            .as_ref()
            .and_then(|p| p.spec.as_ref())
        {
            if spec.min_available.is_some() && spec.max_unavailable.is_some() {
                return Some(
                    "podDisruptionBudget: set only one of minAvailable and maxUnavailable".into(),
                );
            }
            for (name, value) in [
                ("minAvailable", &spec.min_available),
                ("maxUnavailable", &spec.max_unavailable),
            ] {
                if let Some(v) = value
                    && !count_or_percent(v)
                {
                    return Some(format!(
                        "podDisruptionBudget: {name} must be a count of 0 or more or a percentage from 0% to 100%, got {}",
                        show(v)
                    ));
                }
            }
        }
        if let Some(hpa) = &kube.horizontal_pod_autoscaler {
            return hpa_invalid(hpa);
        }
        None
    }
}

fn hpa_invalid(hpa: &HorizontalPodAutoscalerOverlay) -> Option<String> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let Some(max) = spec.max_replicas else {
        return Some("horizontalPodAutoscaler needs spec.maxReplicas".into());
    };
    let min = spec.min_replicas.unwrap_or(1);
    for (name, n) in [("minReplicas", min), ("maxReplicas", max)] {
        if !(1..=1000).contains(&n) {
            return Some(format!(
                "horizontalPodAutoscaler: {name} must be 1-1000, got {n}"
            ));
        }
    }
    if min > max {
        return Some(format!(
            "horizontalPodAutoscaler: minReplicas ({min}) must not exceed maxReplicas ({max})"
        ));
    }
    // Utilization is a percentage of the pods' requests: above 100 is meaningful, 0 or less is not.
    let utilizations = spec.metrics.iter().flatten().filter_map(|m| {
        let target = m
            .resource
            .as_ref()
            .map(|r| &r.target)
            .or(m.container_resource.as_ref().map(|r| &r.target))?;
        target.average_utilization
    });
    for u in utilizations {
        if u < 1 {
            return Some(format!(
                "horizontalPodAutoscaler: averageUtilization must be a percentage of 1 or more, got {u}"
            ));
        }
    }
    None
}

fn count_or_percent(v: &IntOrString) -> bool {
    match v {
        IntOrString::Int(n) => *n >= 0,
        IntOrString::String(s) => s
            .strip_suffix('%')
            .filter(|n| {
                (*n == "0" || !n.starts_with('0'))
                    && n.len() <= 3
                    && n.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| n <= 100),
    }
}

fn show(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => format!("{s:?}"),
    }
}
