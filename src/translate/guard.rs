//! The chain guard: a route that needs an ext auth provider its listener's filter chain does
//! not have is refused, never served.
//!
//! Envoy looks per-route filter config up by filter name and silently ignores a name that is
//! not on the chain. A route table and the filter chain that reads it are separate xDS
//! resources, and Envoy pairs them in ways Gatehouse does not choose: a draining chain keeps
//! reading the port's table as it changes (subscriptions are shared by name), a new chain
//! reads the old table until the new one arrives, and a NACKed table leaves the old one in
//! place. Without a guard any such pair whose table enables a provider the chain lacks would
//! forward unchecked (docs/security-model.md).
//!
//! So every route that ext auth protects carries its provider's *chain identity* in its
//! metadata, and every chain starts with an RBAC filter that denies (403) a route whose
//! identity is not one of the chain's own. The identity names the provider and the one
//! setting that decides whether an unchecked request may pass, `failOpen`: a chain still
//! failing open for a provider whose current config fails closed refuses its routes.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::rbac::v3::{
    MetadataSource, Permission, Policy, Principal, Rbac as RbacRules, SourcedMetadata, permission,
    principal, rbac,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, StringMatcher, ValueMatcher, metadata_matcher, string_matcher, value_matcher,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use envoy_types::util::pack_any;

use crate::model::Provider;
use crate::store::ObjKey;

/// Name of the guard filter; first on every chain.
pub const FILTER: &str = "gatehouse.chain_guard";
/// Route metadata namespace and key holding the chain identity a route needs.
pub const METADATA_NAMESPACE: &str = "gatehouse";
pub const METADATA_KEY: &str = "ext_authz";
/// Prefix of the guard's stats: `http.<listener>.rbac.gatehouse_guard.denied`.
pub const STAT_PREFIX: &str = "gatehouse_guard";

/// The providers installed on one filter chain, each with its chain identity.
pub type ChainProviders = BTreeMap<ObjKey, String>;

/// A provider's identity on a chain: the filter that checks it and whether it fails open.
pub fn identity(provider: &Provider) -> String {
    let mut id = provider.key.to_string();
    if provider.spec.fail_open.unwrap_or(false) {
        id.push_str(";fail-open");
    }
    id
}

/// The chain of `providers` (resolved providers only: a key without one gets no filter).
pub fn chain<'a>(providers: impl IntoIterator<Item = &'a Provider>) -> ChainProviders {
    providers
        .into_iter()
        .map(|p| (p.key.clone(), identity(p)))
        .collect()
}

/// Route metadata saying which chain identity the route needs.
pub fn route_metadata(identity: &str) -> Metadata {
    let fields = [(
        METADATA_KEY.to_string(),
        Value {
            kind: Some(value::Kind::StringValue(identity.to_string())),
        },
    )];
    Metadata {
        filter_metadata: HashMap::from([(
            METADATA_NAMESPACE.to_string(),
            Struct {
                fields: fields.into_iter().collect(),
            },
        )]),
        ..Default::default()
    }
}

/// The guard filter of a chain holding `chain`.
pub fn filter(chain: &ChainProviders) -> HttpFilter {
    let needs_provider = route_identity(ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::PresentMatch(true)),
    });
    let own: Vec<Permission> = chain
        .values()
        .map(|id| {
            route_identity(ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::StringMatch(StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(id.clone())),
                    ignore_case: false,
                })),
            })
        })
        .collect();
    // Envoy requires at least one rule in a set: a chain without providers denies every route
    // that needs one.
    let permission = if own.is_empty() {
        needs_provider
    } else {
        Permission {
            rule: Some(permission::Rule::AndRules(permission::Set {
                rules: vec![
                    needs_provider,
                    Permission {
                        rule: Some(permission::Rule::NotRule(Box::new(Permission {
                            rule: Some(permission::Rule::OrRules(permission::Set { rules: own })),
                        }))),
                    },
                ],
            })),
        }
    };
    let policy = Policy {
        permissions: vec![permission],
        principals: vec![Principal {
            identifier: Some(principal::Identifier::Any(true)),
        }],
        ..Default::default()
    };
    let rules = RbacRules {
        action: rbac::Action::Deny as i32,
        // One entry: prost writes maps in random order, and one entry has only one order.
        policies: HashMap::from([("provider-not-on-this-chain".to_string(), policy)]),
        ..Default::default()
    };
    HttpFilter {
        name: FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Rbac {
            rules: Some(rules),
            rules_stat_prefix: STAT_PREFIX.into(),
            ..Default::default()
        }))),
        ..Default::default()
    }
}

/// A permission on the route's chain identity.
fn route_identity(value: ValueMatcher) -> Permission {
    Permission {
        rule: Some(permission::Rule::SourcedMetadata(SourcedMetadata {
            metadata_matcher: Some(MetadataMatcher {
                filter: METADATA_NAMESPACE.into(),
                path: vec![metadata_matcher::PathSegment {
                    segment: Some(metadata_matcher::path_segment::Segment::Key(
                        METADATA_KEY.into(),
                    )),
                }],
                value: Some(value),
                invert: false,
            }),
            metadata_source: MetadataSource::Route as i32,
        })),
    }
}
