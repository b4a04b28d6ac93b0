//! `parametersRef` of GatewayClasses and Gateways: each must name a GatewayParameters that
//! exists. The model turns a bad reference into an `InvalidParameters` condition; the
//! provisioner reads the same answer to configure proxies.

use gateway_api::apis::standard::{gatewayclasses::GatewayClass, gateways::Gateway};

use super::types::{EscapedSlashes, PathPolicy};
use crate::api::{GROUP, GatewayParameters};
use crate::store::{ObjKey, Store};

pub const KIND: &str = "GatewayParameters";

/// The GatewayParameters a GatewayClass names: `Ok(None)` without a reference, `Err` with why a
/// reference cannot be used.
pub fn of_class<'s>(
    store: &'s Store,
    class: &GatewayClass,
) -> Result<Option<&'s GatewayParameters>, String> {
    let Some(r) = class.spec.parameters_ref.as_ref() else {
        return Ok(None);
    };
    check_kind(&r.group, &r.kind)?;
    let Some(ns) = r.namespace.as_deref().filter(|ns| !ns.is_empty()) else {
        return Err(format!(
            "parametersRef {} has no namespace; {KIND} are namespaced",
            r.name
        ));
    };
    find(store, ns, &r.name).map(Some)
}

/// The GatewayParameters a Gateway names in `spec.infrastructure.parametersRef` (in its own
/// namespace).
pub fn of_gateway<'s>(
    store: &'s Store,
    key: &ObjKey,
    gateway: &Gateway,
) -> Result<Option<&'s GatewayParameters>, String> {
    let Some(r) = gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    else {
        return Ok(None);
    };
    check_kind(&r.group, &r.kind)?;
    find(store, &key.namespace, &r.name).map(Some)
}

/// The path normalization of a Gateway: defaults, then its class's GatewayParameters, then its
/// own, field by field (as the provisioner merges `kube`). A reference that cannot be used
/// counts as none, so its Gateway keeps the safe defaults; its `InvalidParameters` condition
/// says why.
pub fn path_policy(
    store: &Store,
    class: Option<&GatewayClass>,
    key: &ObjKey,
    gateway: &Gateway,
) -> PathPolicy {
    let class_params = class.and_then(|c| of_class(store, c).ok().flatten());
    let gateway_params = of_gateway(store, key, gateway).ok().flatten();
    let mut policy = PathPolicy::default();
    for path in class_params
        .into_iter()
        .chain(gateway_params)
        .filter_map(|p| p.spec.path.as_ref())
    {
        // The schema admits only these four; an unknown value (a manifest read without its
        // CRD's validation) leaves the setting as it was.
        match path.escaped_slashes_action.as_deref() {
            Some("UnescapeAndRedirect") => {
                policy.escaped_slashes = EscapedSlashes::UnescapeAndRedirect;
            }
            Some("RejectRequest") => policy.escaped_slashes = EscapedSlashes::RejectRequest,
            Some("UnescapeAndForward") => {
                policy.escaped_slashes = EscapedSlashes::UnescapeAndForward;
            }
            Some("KeepUnchanged") => policy.escaped_slashes = EscapedSlashes::KeepUnchanged,
            _ => {}
        }
        if let Some(disable) = path.disable_merge_slashes {
            policy.merge_slashes = !disable;
        }
    }
    policy
}

fn check_kind(group: &str, kind: &str) -> Result<(), String> {
    if group == GROUP && kind == KIND {
        Ok(())
    } else {
        Err(format!(
            "parametersRef must refer to {GROUP}/{KIND}, got {group}/{kind}"
        ))
    }
}

fn find<'s>(store: &'s Store, ns: &str, name: &str) -> Result<&'s GatewayParameters, String> {
    let params = store
        .gateway_parameters
        .get(&ObjKey::new(ns, name))
        .ok_or_else(|| format!("parametersRef: {KIND} {ns}/{name} not found"))?;
    // Values the schema would refuse, in an object read without it: unusable like a bad ref.
    match params.spec.invalid() {
        Some(why) => Err(format!("{KIND} {ns}/{name}: {why}")),
        None => Ok(params),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{EscapedSlashes, ModelConfig, PathPolicy, build, find};
    use crate::store::ObjKey;
    use crate::testing::{gateway, gateway_class, gateway_parameters, store};

    /// The class `gatehouse` (its spec continued by `class_ref`) and its Gateway `infra/gw`
    /// with `infrastructure: {gateway_ref}` and one HTTP listener on 80.
    fn class_and_gateway(class_ref: &str, gateway_ref: &str) -> String {
        gateway_class("gatehouse", "gatehouse.dev/gatehouse", class_ref)
            + &gateway(
                "infra",
                "gw",
                "gatehouse",
                &format!(
                    "infrastructure: {{{gateway_ref}}}, listeners: [{{name: http, protocol: HTTP, port: 80}}]"
                ),
            )
    }

    /// (class Accepted reason, Gateway Accepted reason, Gateway served) for a class reference
    /// and a Gateway reference.
    fn judge(class_ref: &str, gateway_ref: &str) -> (String, String, bool) {
        let yaml = gateway_parameters("infra", "small", "kube: {deployment: {replicas: 2}}")
            + &class_and_gateway(class_ref, gateway_ref);
        let m = build(&store(&yaml), &ModelConfig::default());
        let class = &m.status.gateway_classes[&ObjKey::cluster("gatehouse")];
        let gw = &m.status.gateways[&ObjKey::new("infra", "gw")];
        let reason = |c: &[crate::model::Condition]| {
            find(c, "Accepted")
                .map(|c| c.reason.clone())
                .unwrap_or_default()
        };
        (
            reason(class),
            reason(&gw.conditions),
            m.gateway(&ObjKey::new("infra", "gw")).is_some(),
        )
    }

    /// The path policy a Gateway gets from `path` settings on its class's and its own
    /// GatewayParameters (`None`: no reference), and its Accepted message.
    fn path_of(class_path: Option<&str>, gateway_path: Option<&str>) -> (PathPolicy, String) {
        let params = |name: &str, path: Option<&str>| {
            path.map(|p| gateway_parameters("infra", name, &format!("path: {p}")))
                .unwrap_or_default()
        };
        let class_ref = if class_path.is_some() {
            ", parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: class, namespace: infra}"
        } else {
            ""
        };
        let gateway_ref = if gateway_path.is_some() {
            "parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: gw}"
        } else {
            ""
        };
        let yaml = params("class", class_path)
            + &params("gw", gateway_path)
            + &class_and_gateway(class_ref, gateway_ref);
        let m = build(&store(&yaml), &ModelConfig::default());
        let key = ObjKey::new("infra", "gw");
        let accepted = find(&m.status.gateways[&key].conditions, "Accepted")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        (m.gateway(&key).expect("served").path, accepted)
    }

    #[test]
    fn path_settings_merge_class_then_gateway_field_by_field() {
        use EscapedSlashes::*;
        let policy = |escaped_slashes, merge_slashes| PathPolicy {
            escaped_slashes,
            merge_slashes,
        };
        let cases = [
            (None, None, policy(UnescapeAndRedirect, true)),
            (Some("{}"), Some("{}"), policy(UnescapeAndRedirect, true)),
            (
                Some("{escapedSlashesAction: KeepUnchanged}"),
                None,
                policy(KeepUnchanged, true),
            ),
            (
                None,
                Some("{escapedSlashesAction: RejectRequest, disableMergeSlashes: true}"),
                policy(RejectRequest, false),
            ),
            // The Gateway's field wins; the class's other field stays.
            (
                Some("{escapedSlashesAction: KeepUnchanged, disableMergeSlashes: true}"),
                Some("{escapedSlashesAction: UnescapeAndForward}"),
                policy(UnescapeAndForward, false),
            ),
            (
                Some("{disableMergeSlashes: true}"),
                Some("{disableMergeSlashes: false}"),
                policy(UnescapeAndRedirect, true),
            ),
        ];
        for (class, gateway, expected) in cases {
            assert_eq!(path_of(class, gateway).0, expected, "{class:?} {gateway:?}");
        }
    }

    #[test]
    fn a_weakened_path_policy_is_named_in_the_accepted_message() {
        let (_, plain) = path_of(None, Some("{escapedSlashesAction: RejectRequest}"));
        assert_eq!(plain, "handled by Gatehouse");
        let (_, keep) = path_of(None, Some("{escapedSlashesAction: KeepUnchanged}"));
        assert!(keep.contains("/admin%2Fx"), "{keep}");
        assert!(!keep.contains("disableMergeSlashes"), "{keep}");
        let (_, merge) = path_of(Some("{disableMergeSlashes: true}"), None);
        assert!(merge.contains("//admin"), "{merge}");
    }

    #[test]
    fn a_parameters_ref_that_cannot_be_used_keeps_the_default_path_policy() {
        // A Gateway's reference is to its own namespace: `other/weak` is not `infra/weak`, so the
        // Gateway is served (see above) with the safe defaults.
        let yaml = gateway_parameters(
            "other",
            "weak",
            "path: {escapedSlashesAction: KeepUnchanged}",
        ) + &gateway(
            "infra",
            "gw",
            "gatehouse",
            "infrastructure: {parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: weak}}, listeners: [{name: http, protocol: HTTP, port: 80}]",
        ) + &gateway_class("gatehouse", "gatehouse.dev/gatehouse", "");
        let m = build(&store(&yaml), &ModelConfig::default());
        let gw = m.gateway(&ObjKey::new("infra", "gw")).expect("served");
        assert_eq!(gw.path, PathPolicy::default());
    }

    #[test]
    fn a_bad_parameters_ref_is_invalid_parameters_and_the_gateway_stays_served() {
        let good_class = ", parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: small, namespace: infra}";
        let good_gw =
            "parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: small}";
        let cases = [
            ("", "", "Accepted", "Accepted"),
            (good_class, good_gw, "Accepted", "Accepted"),
            (
                ", parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: nope, namespace: infra}",
                "",
                "InvalidParameters",
                "Accepted",
            ),
            (
                ", parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: small}",
                "",
                "InvalidParameters",
                "Accepted",
            ),
            (
                ", parametersRef: {group: '', kind: ConfigMap, name: small, namespace: infra}",
                "",
                "InvalidParameters",
                "Accepted",
            ),
            (
                good_class,
                "parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: nope}",
                "Accepted",
                "InvalidParameters",
            ),
            (
                good_class,
                "parametersRef: {group: example.com, kind: Other, name: small}",
                "Accepted",
                "InvalidParameters",
            ),
        ];
        for (class_ref, gateway_ref, class_reason, gateway_reason) in cases {
            let (class, gateway, served) = judge(class_ref, gateway_ref);
            assert_eq!(
                (class.as_str(), gateway.as_str(), served),
                (class_reason, gateway_reason, true),
                "class {class_ref:?} gateway {gateway_ref:?}"
            );
        }
    }
}
