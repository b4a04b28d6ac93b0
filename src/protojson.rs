//! Envoy protos → canonical proto3 JSON, through a descriptor pool compiled from the `.proto`
//! files envoy-types ships (Envoy's generated Rust types have no serde).

use std::sync::{Arc, Mutex, PoisonError, Weak};

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

/// The descriptor pool, decoded when a caller needs it and dropped when the last holder is
/// done: it is all of Envoy's API (~10 MiB live, 50 ms to decode), which a controller needs only
/// while it renders bootstraps and the debug endpoints only while they print. Kept for the
/// process, it was most of what a controller held beyond a standalone process (BENCHMARKS.md).
fn pool() -> Result<Arc<DescriptorPool>, JsonError> {
    static CACHE: PoolCache = PoolCache::new();
    CACHE.get(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| JsonError::Pool(e.to_string())))
}

/// A value shared while someone holds it, made again after the last holder drops it.
struct PoolCache<T = DescriptorPool>(Mutex<Weak<T>>);

impl<T> PoolCache<T> {
    const fn new() -> Self {
        Self(Mutex::new(Weak::new()))
    }

    fn get<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = cache.upgrade() {
            return Ok(held);
        }
        let made = Arc::new(make()?);
        *cache = Arc::downgrade(&made);
        Ok(made)
    }
}

/// Prints Envoy messages as JSON. Hold one for a batch of messages: while it lives, every
/// printer (and the free functions below) shares its pool instead of decoding another.
#[derive(Clone)]
pub struct Printer {
    pool: Arc<DescriptorPool>,
}

impl Printer {
    pub fn new() -> Result<Self, JsonError> {
        Ok(Self { pool: pool()? })
    }

    /// The JSON of a message given by full name (e.g. `envoy.config.cluster.v3.Cluster`).
    pub fn to_json(&self, type_name: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
        let desc = self
            .pool
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
    pub fn any_to_json(&self, any: &Any) -> Result<serde_json::Value, JsonError> {
        let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
        let mut value = self.to_json(type_name, &any.value)?;
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
    pub fn message_to_json<M: prost::Name>(&self, msg: &M) -> Result<serde_json::Value, JsonError> {
        self.to_json(&M::full_name(), &msg.encode_to_vec())
    }
}

/// The JSON of a message given by full name, with a printer of its own (or the one held).
pub fn to_json(type_name: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
    Printer::new()?.to_json(type_name, bytes)
}

/// The JSON of an `Any`, with `@type`.
pub fn any_to_json(any: &Any) -> Result<serde_json::Value, JsonError> {
    Printer::new()?.any_to_json(any)
}

/// The JSON of a generated Envoy message.
pub fn message_to_json<M: prost::Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    Printer::new()?.message_to_json(msg)
}

#[cfg(test)]
mod tests {
    use super::PoolCache;
    use std::sync::Arc;

    #[test]
    fn the_pool_is_shared_while_held_and_made_again_after() {
        let cache = PoolCache::<u32>::new();
        let mut made = 0;
        let mut get = || {
            cache.get(|| {
                made += 1;
                Ok::<_, ()>(made)
            })
        };
        let first = get().unwrap();
        let second = get().unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second));
        assert_eq!(
            *get().unwrap(),
            2,
            "dropped by its last holder, so made again"
        );
    }

    #[test]
    fn printers_print_envoy_messages() {
        use envoy_types::pb::envoy::config::cluster::v3::Cluster;
        let printer = super::Printer::new().unwrap();
        let cluster = Cluster {
            name: "c".into(),
            ..Default::default()
        };
        assert_eq!(printer.message_to_json(&cluster).unwrap()["name"], "c");
        assert_eq!(
            super::message_to_json(&cluster).unwrap(),
            printer.message_to_json(&cluster).unwrap()
        );
    }
}
