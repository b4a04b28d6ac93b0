use std::collections::BTreeMap;

use gateway_api::apis::experimental::httproutes::HttpRouteStatusParentsParentRef;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{ExtAuthBufferSettings, NamespacedObjectReference, PolicyDisable};

/// Traffic settings attached to Gateways, listeners, HTTPRoutes or route rules.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gateway.kgateway.dev",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    plural = "trafficpolicies",
    namespaced,
    status = "PolicyStatus",
    category = "kgateway",
    category = "gatehouse",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicySpec {
    /// Objects in the policy's namespace that the policy applies to. Required: the API
    /// server refuses a schema default that fails the size rule.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 16").message("targetRefs must hold between 1 and 16 references"))]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// External authorization for the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_auth: Option<ExtAuthPolicy>,
}

/// A Gateway (optionally one listener) or HTTPRoute (optionally one named rule) in the
/// policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.group == 'gateway.networking.k8s.io' && (self.kind == 'Gateway' || self.kind == 'HTTPRoute')").message("targetRefs must name a Gateway or an HTTPRoute of group gateway.networking.k8s.io"))]
pub struct LocalPolicyTargetReference {
    /// API group of the target.
    pub group: String,
    /// Kind of the target: `Gateway` or `HTTPRoute`.
    pub kind: String,
    /// Name of the target.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Listener name (Gateway) or rule name (HTTPRoute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// External authorization of a policy: use a provider, or switch auth off.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.extensionRef) != has(self.disable)").message("exactly one of extensionRef or disable must be set"))]
pub struct ExtAuthPolicy {
    /// The GatewayExtension that authorizes requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<NamespacedObjectReference>,
    /// Body buffering for these targets, overriding the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_request_body: Option<ExtAuthBufferSettings>,
    /// Extra context sent to the authorization service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_extensions: Option<BTreeMap<String, String>>,
    /// Switch external authorization off for the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<PolicyDisable>,
}

/// Gateway API policy status: one entry per ancestor (Gateway) the policy affects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct PolicyStatus {
    /// Per-ancestor conditions.
    #[serde(default)]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// Conditions of a policy with respect to one ancestor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The ancestor (a Gateway).
    pub ancestor_ref: HttpRouteStatusParentsParentRef,
    /// Controller that wrote this entry.
    pub controller_name: String,
    /// `Accepted` and `Attached`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
