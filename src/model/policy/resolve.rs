//! What a policy's `extAuth` resolves to, and the policies a rule names itself.

use std::collections::BTreeMap;

use gateway_api::apis::experimental::httproutes::{HttpRouteRules, HttpRouteRulesFiltersType};

use super::super::extensions::ProviderResult;
use super::super::refs;
use super::super::{validate, validate_auth};
use super::Resolution;
use crate::api::{GROUP, TrafficPolicy};
use crate::model::condition_names as cond;
use crate::store::{ObjKey, Store};

/// The TrafficPolicies a rule names in `ExtensionRef` filters, as kgateway attaches a policy
/// to one rule. They are in the route's namespace (an `ExtensionRef` has none of its own).
/// Each comes with the index of its filter.
pub fn extension_refs(route: &ObjKey, rule: &HttpRouteRules) -> Vec<(usize, ObjKey)> {
    rule.filters
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, f)| f.r#type == HttpRouteRulesFiltersType::ExtensionRef)
        .filter_map(|(i, f)| Some((i, f.extension_ref.as_ref()?)))
        .filter(|(_, r)| is_policy_ref(&r.group, &r.kind))
        .map(|(i, r)| (i, ObjKey::new(route.namespace.clone(), r.name.clone())))
        .collect()
}

/// Why the file loader refused an object it kept so as to fail it closed
/// ([`crate::api::REFUSED_ANNOTATION`]).
pub fn refused(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(crate::api::REFUSED_ANNOTATION)
        .map(String::as_str)
}

/// Whether an `ExtensionRef` names a TrafficPolicy.
pub fn is_policy_ref(group: &str, kind: &str) -> bool {
    group == GROUP && kind == "TrafficPolicy"
}

pub(super) fn resolve(
    store: &Store,
    key: &ObjKey,
    policy: &TrafficPolicy,
    providers: &BTreeMap<ObjKey, ProviderResult>,
) -> Resolution {
    if let Some(why) = refused(&policy.metadata) {
        return Resolution::Broken {
            reason: cond::INVALID_SPEC,
            message: format!("refused when loaded: {why}"),
        };
    }
    let denying: Vec<&str> = (policy.spec.unimplemented().into_iter())
        .filter(|f| f.1)
        .map(|f| f.0)
        .collect();
    if !denying.is_empty() {
        // Served without these, the policy would let through requests it is there to refuse.
        return Resolution::Broken {
            reason: cond::UNSUPPORTED_FIELD,
            message: format!("{} not implemented by Gatehouse", denying.join(", ")),
        };
    }
    let Some(ext_auth) = &policy.spec.ext_auth else {
        return Resolution::Disable;
    };
    let problems = validate_auth::policy(ext_auth);
    if !problems.is_empty() {
        return Resolution::Broken {
            reason: cond::INVALID_SPEC,
            message: validate::summary(&problems),
        };
    }
    match (&ext_auth.extension_ref, &ext_auth.disable) {
        (None, Some(_)) => Resolution::Disable,
        (Some(r), None) => {
            let ext = ObjKey::new(
                r.namespace.clone().unwrap_or_else(|| key.namespace.clone()),
                r.name.clone(),
            );
            let from = refs::From {
                group: GROUP,
                kind: "TrafficPolicy",
                namespace: &key.namespace,
            };
            if !refs::permitted(store, &from, GROUP, "GatewayExtension", &ext) {
                return Resolution::Broken {
                    reason: cond::REF_NOT_PERMITTED,
                    message: format!(
                        "no ReferenceGrant in namespace {} allows TrafficPolicies in {} to use GatewayExtension {ext}",
                        ext.namespace, key.namespace
                    ),
                };
            }
            match providers.get(&ext) {
                None => Resolution::Broken {
                    reason: cond::EXTENSION_NOT_FOUND,
                    message: format!("GatewayExtension {ext} not found"),
                },
                Some(Err(e)) => Resolution::Broken {
                    reason: cond::INVALID_EXTENSION,
                    message: format!(
                        "GatewayExtension {ext} is not usable: {}: {}",
                        e.reason, e.message
                    ),
                },
                Some(Ok(_)) => Resolution::Provider(ext),
            }
        }
        _ => Resolution::Broken {
            reason: cond::INVALID_SPEC,
            message: "exactly one of extensionRef or disable must be set".into(),
        },
    }
}
