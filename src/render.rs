//! Envoy resources and status as JSON documents (the `translate` output, `/debug/xds`).

use serde_json::{Value, json};

use crate::model::Status;
use crate::protojson::{JsonError, message_to_json};
use crate::translate::{GatewayResources, static_bootstrap};

/// The resources of one Gateway as proto3 JSON, grouped by xDS type.
/// Scoped route tables add `scopedRoutes`, and list one RouteConfiguration per scope.
pub fn resources_json(res: &GatewayResources) -> Result<Value, JsonError> {
    let routes = res.routes.iter().flat_map(|r| r.served_protos());
    let scopes: Vec<_> = res.routes.iter().flat_map(|r| r.scopes(false)).collect();
    let mut doc = json!({
        "gateway": res.gateway.to_string(),
        "clusters": res.clusters.iter().map(message_to_json).collect::<Result<Vec<_>, _>>()?,
        "endpoints": res.endpoints.iter().map(message_to_json).collect::<Result<Vec<_>, _>>()?,
        "listeners": res.listeners.iter().map(message_to_json).collect::<Result<Vec<_>, _>>()?,
        "routes": routes.map(|r| message_to_json(&r)).collect::<Result<Vec<_>, _>>()?,
    });
    if !scopes.is_empty() {
        doc["scopedRoutes"] = scopes
            .iter()
            .map(message_to_json)
            .collect::<Result<Vec<_>, _>>()?
            .into();
    }
    Ok(doc)
}

/// The `translate` document: every Gateway's resources and the computed status.
pub fn translate_json(all: &[GatewayResources], status: &Status) -> Result<Value, JsonError> {
    Ok(json!({
        "gateways": all.iter().map(resources_json).collect::<Result<Vec<_>, _>>()?,
        "status": serde_json::to_value(status)?,
    }))
}

/// A Gateway's static bootstrap as JSON (what `envoy -c` reads).
pub fn bootstrap_json(res: &GatewayResources) -> Result<Value, JsonError> {
    message_to_json(&static_bootstrap(res))
}
