//! Status computed as data. The status writer (controller mode) and the CLI print these; nothing
//! here talks to an API server.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::ObjKey;

/// One status condition, before it gets a timestamp and observedGeneration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Condition {
    /// A condition that holds.
    pub fn ok(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            status: "True",
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn fail(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            status: "False",
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// True when `status` is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Status of a Gateway listener.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub attached_routes: i32,
    pub conditions: Vec<Condition>,
    /// The route kinds the listener takes (`allowedRoutes.kinds` ∩ what Gatehouse serves).
    pub supported_kinds: Vec<&'static str>,
}

/// Status of a Gateway.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayStatus {
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
    /// `(type, value)` of the provisioned Service's addresses; empty when none is known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<(String, String)>,
}

/// A parent (Gateway) reference as written in a route, normalised.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// Conditions of a route for one of its parents.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRef,
    pub conditions: Vec<Condition>,
}

/// What a policy's ancestor entry names: the Gateway it affects, or the target it could not
/// find.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AncestorRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// Conditions of a policy for one ancestor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    pub ancestor_ref: AncestorRef,
    pub conditions: Vec<Condition>,
}

/// Every status Gatehouse owns, by object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(serialize_with = "by_key")]
    pub gateway_classes: BTreeMap<ObjKey, Vec<Condition>>,
    #[serde(serialize_with = "by_key")]
    pub gateways: BTreeMap<ObjKey, GatewayStatus>,
    /// A persistent map the builder keeps and changes in place: a build hands out a copy in
    /// O(1) and a one-route change costs O(log n), not a 10,000-entry map per build.
    #[serde(serialize_with = "by_key")]
    pub http_routes: RouteStatusMap,
    /// Like `http_routes`, for GRPCRoutes.
    #[serde(
        serialize_with = "by_key",
        skip_serializing_if = "imbl::OrdMap::is_empty"
    )]
    pub grpc_routes: RouteStatusMap,
    #[serde(serialize_with = "by_key")]
    pub traffic_policies: BTreeMap<ObjKey, std::sync::Arc<Vec<PolicyAncestorStatus>>>,
    #[serde(serialize_with = "by_key")]
    pub backend_tls_policies: BTreeMap<ObjKey, std::sync::Arc<Vec<PolicyAncestorStatus>>>,
    #[serde(serialize_with = "by_key")]
    pub gateway_extensions: BTreeMap<ObjKey, Vec<Condition>>,
}

/// Route status by route, of one route kind.
pub type RouteStatusMap =
    imbl::OrdMap<std::sync::Arc<ObjKey>, std::sync::Arc<Vec<RouteParentStatus>>>;

impl Status {
    /// The route status map of a route kind (HTTPRoute unless GRPCRoute).
    pub fn routes_of(&self, kind: crate::store::Kind) -> &RouteStatusMap {
        match kind {
            crate::store::Kind::GrpcRoute => &self.grpc_routes,
            _ => &self.http_routes,
        }
    }
}

fn by_key<'a, S, M, K, V>(map: &'a M, s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    &'a M: IntoIterator<Item = (&'a K, &'a V)>,
    K: std::fmt::Display + 'a,
    V: Serialize + 'a,
{
    s.collect_map(map.into_iter().map(|(k, v)| (k.to_string(), v)))
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
