//! One encoding per RouteConfiguration, so its content hash (the xDS version) is stable.
//!
//! prost writes a `map` field in `HashMap` iteration order, and every `HashMap` gets its own
//! random seed: a route that disables two ext auth providers encoded differently on each
//! rebuild, got a new version, and was pushed to every proxy although nothing changed. Maps are
//! written here sorted by key. Protobuf allows fields in any order, so a message is encoded
//! without its maps and repeated children, and those are appended after it, in order. Each
//! virtual host is encoded on its own, so a host that did not change keeps its bytes.

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost::encoding::{WireType, btree_map, bytes, encode_key, encode_varint, message, string};
use std::collections::{BTreeMap, HashMap};

/// Field numbers from envoy/config/route/v3/{route,route_components}.proto.
const ROUTE_CONFIGURATION_VIRTUAL_HOSTS: u32 = 2;
const VIRTUAL_HOST_ROUTES: u32 = 3;
const VIRTUAL_HOST_TYPED_PER_FILTER_CONFIG: u32 = 15;
const ROUTE_TYPED_PER_FILTER_CONFIG: u32 = 13;
const ROUTE_CONFIGURATION_IGNORE_PORT_IN_HOST_MATCHING: u32 = 14;

/// The bytes of a RouteConfiguration named `name` with these encoded virtual hosts and
/// `ignore_port_in_host_matching` set — prost's own layout (name, hosts, then field 14).
///
/// Hosts match without the request's port: a domain `*.example.com:*` would be read by Envoy
/// as a literal suffix and never match, so `Host: a.example.com:8080` fell through to a less
/// specific host (a listener-isolation gap, docs/security-model.md).
pub fn route_configuration<H: AsRef<[u8]>>(
    name: &str,
    hosts: impl IntoIterator<Item = H>,
) -> Vec<u8> {
    let hosts: Vec<H> = hosts.into_iter().collect();
    // Sized once: growing a megabyte by doubling copied it again and again.
    let size = name.len() + 8 + hosts.iter().map(|h| h.as_ref().len() + 8).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    RouteConfiguration {
        name: name.to_string(),
        ..Default::default()
    }
    .encode(&mut out)
    .unwrap_or_default();
    for host in &hosts {
        let host = host.as_ref();
        encode_key(
            ROUTE_CONFIGURATION_VIRTUAL_HOSTS,
            WireType::LengthDelimited,
            &mut out,
        );
        encode_varint(host.len() as u64, &mut out);
        out.extend_from_slice(host);
    }
    encode_key(
        ROUTE_CONFIGURATION_IGNORE_PORT_IN_HOST_MATCHING,
        WireType::Varint,
        &mut out,
    );
    encode_varint(1, &mut out);
    out
}

/// The bytes of `host`, with every per-filter-config map in key order.
pub fn virtual_host(host: &VirtualHost) -> Vec<u8> {
    let unordered = host.typed_per_filter_config.len() > 1
        || host
            .routes
            .iter()
            .any(|r| r.typed_per_filter_config.len() > 1);
    if !unordered {
        // At most one entry per map: prost's own encoding is already the canonical one.
        return host.encode_to_vec();
    }
    let mut host = host.clone();
    let routes = std::mem::take(&mut host.routes);
    let configs = std::mem::take(&mut host.typed_per_filter_config);
    let mut out = host.encode_to_vec();
    sorted_map(VIRTUAL_HOST_TYPED_PER_FILTER_CONFIG, configs, &mut out);
    for route in routes {
        bytes::encode(VIRTUAL_HOST_ROUTES, &self::route(route), &mut out);
    }
    out
}

fn route(mut route: Route) -> Vec<u8> {
    let configs = std::mem::take(&mut route.typed_per_filter_config);
    let mut out = route.encode_to_vec();
    sorted_map(ROUTE_TYPED_PER_FILTER_CONFIG, configs, &mut out);
    out
}

fn sorted_map(tag: u32, map: HashMap<String, Any>, out: &mut Vec<u8>) {
    let sorted: BTreeMap<String, Any> = map.into_iter().collect();
    btree_map::encode(
        string::encode,
        string::encoded_len,
        message::encode,
        message::encoded_len,
        tag,
        &sorted,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::RouteMatch;

    fn any(n: u8) -> Any {
        Any {
            type_url: format!("type.googleapis.com/test.{n}"),
            value: vec![n],
        }
    }

    /// A configuration whose maps were filled in the order `keys` gives.
    fn config(keys: &[&str]) -> RouteConfiguration {
        let map = |keys: &[&str]| -> HashMap<String, Any> {
            let mut m = HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                m.insert(k.to_string(), any(i as u8 % 2));
            }
            m
        };
        let route = |name: &str| Route {
            name: name.into(),
            r#match: Some(RouteMatch::default()),
            typed_per_filter_config: map(keys),
            ..Default::default()
        };
        RouteConfiguration {
            name: "http-80".into(),
            virtual_hosts: vec![
                VirtualHost {
                    name: "a".into(),
                    domains: vec!["a.example.com".into()],
                    routes: vec![route("a-1"), route("a-2")],
                    typed_per_filter_config: map(keys),
                    ..Default::default()
                },
                VirtualHost {
                    name: "b".into(),
                    routes: vec![route("b-1")],
                    ..Default::default()
                },
            ],
            ignore_port_in_host_matching: true,
            ..Default::default()
        }
    }

    const KEYS: [&str; 6] = ["ext-authz/a", "ext-authz/b", "ext-authz/c", "x", "y", "z"];

    fn route_configuration(config: &RouteConfiguration) -> Vec<u8> {
        super::route_configuration(&config.name, config.virtual_hosts.iter().map(virtual_host))
    }

    #[test]
    fn maps_filled_in_any_order_encode_to_the_same_bytes() {
        let first = route_configuration(&config(&KEYS));
        // Fresh HashMaps get fresh random seeds: without sorting, some of these differ.
        for _ in 0..20 {
            assert_eq!(route_configuration(&config(&KEYS)), first);
        }
        let mut reversed = KEYS;
        reversed.reverse();
        // Same keys, values assigned in another order: a different configuration.
        assert_ne!(route_configuration(&config(&reversed)), first);
    }

    #[test]
    fn canonical_bytes_decode_to_the_same_configuration() {
        let original = config(&KEYS);
        let decoded =
            RouteConfiguration::decode(route_configuration(&original).as_slice()).expect("decode");
        assert_eq!(decoded, original);
        let single = config(&["only"]);
        assert_eq!(route_configuration(&single), single.encode_to_vec());
    }
}
