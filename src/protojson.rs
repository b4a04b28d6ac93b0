//! Envoy protos → canonical proto3 JSON, through a descriptor pool compiled from the `.proto`
//! files envoy-types ships (Envoy's generated Rust types have no serde).

use std::sync::OnceLock;

use envoy_types::pb::google::protobuf::Any;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// Why a message could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("descriptor pool: {0}")]
    Pool(String),
    #[error("unknown message type {0}")]
    UnknownType(String),
    #[error("decoding {type_name}: {source}")]
    Decode {
        type_name: String,
        source: prost::DecodeError,
    },
    #[error("serializing: {0}")]
    Serialize(#[from] serde_json::Error),
}

fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsonError::Pool(e.clone()))
}

/// The JSON of a message given by full name (e.g. `envoy.config.cluster.v3.Cluster`).
pub fn to_json(type_name: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
    let desc = pool()?
        .get_message_by_name(type_name)
        .ok_or_else(|| JsonError::UnknownType(type_name.into()))?;
    let msg = DynamicMessage::decode(desc, bytes).map_err(|source| JsonError::Decode {
        type_name: type_name.into(),
        source,
    })?;
    let options = SerializeOptions::new().skip_default_fields(true);
    Ok(msg.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// The JSON of an `Any`, with `@type`.
pub fn any_to_json(any: &Any) -> Result<serde_json::Value, JsonError> {
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    let mut value = to_json(type_name, &any.value)?;
    if let Some(map) = value.as_object_mut() {
        let mut with_type = serde_json::Map::with_capacity(map.len() + 1);
        with_type.insert(
            "@type".into(),
            serde_json::Value::String(any.type_url.clone()),
        );
        with_type.append(map);
        value = serde_json::Value::Object(with_type);
    }
    Ok(value)
}

/// The JSON of a generated Envoy message.
pub fn message_to_json<M: prost::Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    to_json(&M::full_name(), &msg.encode_to_vec())
}
