//! Small builders shared by the translator's parts.

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address, config_source,
    socket_address,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::Duration;

/// Config source for resources that arrive over the ADS stream.
pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// A listener whose one filter chain is `hcm`.
pub fn hcm_listener(
    name: String,
    address: envoy_types::pb::envoy::config::core::v3::Address,
    hcm: envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager,
) -> envoy_types::pb::envoy::config::listener::v3::Listener {
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
    Listener {
        name,
        address: Some(address),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(
                    envoy_types::util::pack_any(hcm),
                )),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A TCP socket address.
pub fn socket(address: &str, port: u16) -> envoy_types::pb::envoy::config::core::v3::Address {
    envoy_types::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// Exact or RE2 string match.
pub fn string_match(value: &str, regex: bool) -> StringMatcher {
    let pattern = if regex {
        string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex: value.to_string(),
            ..Default::default()
        })
    } else {
        string_matcher::MatchPattern::Exact(value.to_string())
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

/// Case-insensitive exact match (header names).
pub fn exact_ignore_case(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(
            value.to_ascii_lowercase(),
        )),
        ignore_case: true,
    }
}

/// A protobuf Duration.
pub fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
