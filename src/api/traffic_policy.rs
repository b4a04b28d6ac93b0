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
    /// Objects in the policy's namespace that the policy applies to. May be empty: a policy
    /// can apply only where an HTTPRoute rule names it in an `ExtensionRef` filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 16").message("targetRefs may hold at most 16 references"))]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// Objects in the policy's namespace selected by their labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 16").message("targetSelectors may hold at most 16 selectors"))]
    pub target_selectors: Vec<LocalPolicyTargetSelector>,
    /// External authorization for the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_auth: Option<ExtAuthPolicy>,
    // kgateway settings Gatehouse does not serve, kept so that a kgateway manifest applies
    // and the policy's status can say what was not served (`unimplemented`). Not flattened
    // from a struct: serde's flatten hides unknown fields from the strict file loader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub jwt_auth: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub basic_auth: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub api_key_auth: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub api_key_authentication: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub oauth2: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub rbac: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub csrf: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub cors: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub rate_limit: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub transformation: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub ext_proc: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub header_modifiers: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_host_rewrite: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub buffer: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub timeouts: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub retry: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub url_rewrite: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub compression: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub ai: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub acl: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub fault_injection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub internal_redirect: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub tracing: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub stat_prefix: Option<serde_json::Value>,
}

/// kgateway fields Gatehouse accepts but does not serve. Those that deny requests
/// (authentication, authorization, CSRF) make the policy's targets fail closed; the others are
/// reported in the policy's status.
impl TrafficPolicySpec {
    /// The set fields, by their manifest names, and whether each denies requests (so the
    /// policy cannot be served without it).
    pub fn unimplemented(&self) -> Vec<(&'static str, bool)> {
        // `true`: the field refuses requests (authentication, authorization, CSRF, IP ACLs,
        // rate limits, size limits, external processing such as a WAF, prompt guards).
        let fields: [(&'static str, bool, bool); 24] = [
            ("jwtAuth", true, self.jwt_auth.is_some()),
            ("basicAuth", true, self.basic_auth.is_some()),
            ("apiKeyAuth", true, self.api_key_auth.is_some()),
            (
                "apiKeyAuthentication",
                true,
                self.api_key_authentication.is_some(),
            ),
            ("oauth2", true, self.oauth2.is_some()),
            ("rbac", true, self.rbac.is_some()),
            ("csrf", true, self.csrf.is_some()),
            ("acl", true, self.acl.is_some()),
            ("rateLimit", true, self.rate_limit.is_some()),
            ("buffer", true, self.buffer.is_some()),
            ("extProc", true, self.ext_proc.is_some()),
            ("ai", true, self.ai.is_some()),
            ("cors", false, self.cors.is_some()),
            ("transformation", false, self.transformation.is_some()),
            ("headerModifiers", false, self.header_modifiers.is_some()),
            ("autoHostRewrite", false, self.auto_host_rewrite.is_some()),
            ("timeouts", false, self.timeouts.is_some()),
            ("retry", false, self.retry.is_some()),
            ("urlRewrite", false, self.url_rewrite.is_some()),
            ("compression", false, self.compression.is_some()),
            ("faultInjection", false, self.fault_injection.is_some()),
            ("internalRedirect", false, self.internal_redirect.is_some()),
            ("tracing", false, self.tracing.is_some()),
            ("statPrefix", false, self.stat_prefix.is_some()),
        ];
        fields
            .into_iter()
            .filter(|(_, _, set)| *set)
            .map(|(name, denies, _)| (name, denies))
            .collect()
    }
}

/// A Gateway (optionally one listener), HTTPRoute or GRPCRoute (optionally one named rule) in
/// the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.group == 'gateway.networking.k8s.io' && (self.kind == 'Gateway' || self.kind == 'HTTPRoute' || self.kind == 'GRPCRoute')").message("targetRefs must name a Gateway, an HTTPRoute or a GRPCRoute of group gateway.networking.k8s.io"))]
pub struct LocalPolicyTargetReference {
    /// API group of the target.
    pub group: String,
    /// Kind of the target: `Gateway`, `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    /// Name of the target.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Listener name (Gateway) or rule name (HTTPRoute, GRPCRoute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// HTTPRoutes, GRPCRoutes or Gateways in the policy's namespace whose labels include `matchLabels`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.group == 'gateway.networking.k8s.io' && (self.kind == 'Gateway' || self.kind == 'HTTPRoute' || self.kind == 'GRPCRoute')").message("targetSelectors must select Gateways, HTTPRoutes or GRPCRoutes of group gateway.networking.k8s.io"))]
pub struct LocalPolicyTargetSelector {
    /// API group of the targets.
    pub group: String,
    /// Kind of the targets: `Gateway`, `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    /// Labels every selected object carries. Not empty: whether an empty selector means every
    /// object or none differs between APIs, and either guess could unprotect routes.
    #[x_kube(validation = Rule::new("size(self) >= 1").message("matchLabels must name at least one label"))]
    pub match_labels: BTreeMap<String, String>,
    /// Listener name (Gateway) or rule name (HTTPRoute, GRPCRoute) of each selected object.
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
