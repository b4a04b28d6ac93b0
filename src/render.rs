//! Envoy resources and status as JSON documents (the `translate` output, `/debug/xds`).

use serde_json::{Value, json};

use crate::model::Status;
use crate::protojson::{JsonError, message_to_json};
use crate::translate::{GatewayResources, static_bootstrap};

/// The resources of one Gateway as proto3 JSON, grouped by xDS type.
pub fn resources_json(res: &GatewayResources) -> Result<Value, JsonError> {
    Ok(json!({
        "gateway": res.gateway.to_string(),
        "clusters": res.clusters.iter().map(message_to_json).collect::<Result<Vec<_>, _>>()?,
        "endpoints": res.endpoints.iter().map(message_to_json).collect::<Result<Vec<_>, _>>()?,
        "listeners": res.listeners.iter().map(message_to_json).collect::<Result<Vec<_>, _>>()?,
        "routes": res.routes.iter().map(|r| message_to_json(&r.to_proto())).collect::<Result<Vec<_>, _>>()?,
    }))
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
