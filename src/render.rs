//! Envoy resources and status as JSON documents (the `translate` output, `/debug/xds`).

use serde_json::{Value, json};

use crate::bootstrap::static_bootstrap;
use crate::model::Status;
use crate::protojson::{JsonError, Printer, message_to_json};
use crate::translate::GatewayResources;

/// The resources of one Gateway as proto3 JSON, grouped by xDS type.
/// Scoped route tables add `scopedRoutes`, and list one RouteConfiguration per scope.
pub fn resources_json(res: &GatewayResources) -> Result<Value, JsonError> {
    let p = Printer::new()?;
    let routes = res.routes.iter().flat_map(|r| r.served_protos());
    let scopes: Vec<_> = res.routes.iter().flat_map(|r| r.scopes(false)).collect();
    let mut doc = json!({
        "gateway": res.gateway.to_string(),
        "clusters": res.clusters.iter().map(|m| p.message_to_json(m)).collect::<Result<Vec<_>, _>>()?,
        "endpoints": res.endpoints.iter().map(|m| p.message_to_json(m)).collect::<Result<Vec<_>, _>>()?,
        "listeners": res.listeners.iter().map(|m| p.message_to_json(m)).collect::<Result<Vec<_>, _>>()?,
        "routes": routes.map(|r| p.message_to_json(&r)).collect::<Result<Vec<_>, _>>()?,
    });
    if !res.secrets.is_empty() {
        doc["secrets"] = res
            .secrets
            .iter()
            .map(|s| p.message_to_json(&without_private_key(s)))
            .collect::<Result<Vec<_>, _>>()?
            .into();
    }
    if !scopes.is_empty() {
        doc["scopedRoutes"] = scopes
            .iter()
            .map(|m| p.message_to_json(m))
            .collect::<Result<Vec<_>, _>>()?
            .into();
    }
    Ok(doc)
}

/// The Secret with its private key replaced by [`REDACTED`]: no rendering of Gatehouse's
/// (`translate`, `/debug/xds`) ever shows a key, whoever may read it.
fn without_private_key(
    secret: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret,
) -> envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
    let mut out = secret.clone();
    if let Some(Type::TlsCertificate(c)) = out.r#type.as_mut() {
        c.private_key = Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(REDACTED.into())),
            ..Default::default()
        });
    }
    out
}

/// Shown instead of a credential-like header value.
pub const REDACTED: &str = "[redacted]";

/// Replaces the value of every header whose name looks like a credential (`authorization`,
/// `cookie`, `x-api-key`, anything with `token`, `secret`, `password`, `key` or `auth` in it)
/// in a rendered document: `headersToAdd` of HTTP auth services and header modifiers often
/// carry static credentials, and the debug endpoints are for reading configuration, not
/// secrets.
pub fn redact(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            let sensitive = map
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(credential_like);
            for (k, v) in map.iter_mut() {
                if sensitive && k == "value" && v.is_string() {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn credential_like(header: &str) -> bool {
    let h = header.to_ascii_lowercase();
    h == "cookie"
        || h == "set-cookie"
        || [
            "auth",
            "token",
            "secret",
            "password",
            "passwd",
            "key",
            "session",
            "credential",
        ]
        .iter()
        .any(|w| h.contains(w))
}

/// The `translate` document: every Gateway's resources and the computed status.
pub fn translate_json(all: &[GatewayResources], status: &Status) -> Result<Value, JsonError> {
    // One pool for every Gateway's document.
    let _printer = Printer::new()?;
    Ok(json!({
        "gateways": all.iter().map(resources_json).collect::<Result<Vec<_>, _>>()?,
        "status": serde_json::to_value(status)?,
    }))
}

/// A Gateway's static bootstrap as JSON (what `envoy -c` reads).
pub fn bootstrap_json(res: &GatewayResources) -> Result<Value, JsonError> {
    message_to_json(&static_bootstrap(res))
}

#[cfg(test)]
mod redact_tests {
    use super::{REDACTED, redact};
    use serde_json::json;

    #[test]
    fn credential_like_header_values_are_redacted_wherever_they_are() {
        let mut doc = json!({"listeners": [{"headersToAdd": [
            {"key": "Authorization", "value": "Bearer s3cr3t"},
            {"key": "x-api-key", "value": "k"},
            {"key": "x-session-token", "value": "t"},
            {"key": "cookie", "value": "c"},
            {"key": "x-tenant", "value": "team-a"},
        ]}], "routes": [{"requestHeadersToAdd": [{"header": {"key": "x-db-password", "value": "p"}}]}]});
        redact(&mut doc);
        let text = doc.to_string();
        for secret in ["s3cr3t", "\"k\"", "\"t\"", "\"c\"", "\"p\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(doc["listeners"][0]["headersToAdd"][0]["value"], REDACTED);
        assert_eq!(doc["listeners"][0]["headersToAdd"][4]["value"], "team-a");
        assert_eq!(doc["listeners"][0]["headersToAdd"][4]["key"], "x-tenant");
    }
}
