//! `parametersRef` of GatewayClasses and Gateways: each must name a GatewayParameters that
//! exists. The model turns a bad reference into an `InvalidParameters` condition; the
//! provisioner reads the same answer to configure proxies.

use gateway_api::apis::standard::{gatewayclasses::GatewayClass, gateways::Gateway};

use crate::api::GatewayParameters;
use crate::store::{ObjKey, Store};

pub const GROUP: &str = "gateway.kgateway.dev";
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
    store
        .gateway_parameters
        .get(&ObjKey::new(ns, name))
        .ok_or_else(|| format!("parametersRef: {KIND} {ns}/{name} not found"))
}

#[cfg(test)]
mod tests {
    use crate::model::{ModelConfig, build, find};
    use crate::store::ObjKey;
    use crate::testing::store;

    const PARAMS: &str = "apiVersion: gateway.kgateway.dev/v1alpha1\nkind: GatewayParameters\nmetadata: {name: small, namespace: infra}\nspec: {kube: {deployment: {replicas: 2}}}\n---\n";

    /// (class Accepted reason, Gateway Accepted reason, Gateway served) for a class reference
    /// and a Gateway reference.
    fn judge(class_ref: &str, gateway_ref: &str) -> (String, String, bool) {
        let yaml = format!(
            "{PARAMS}apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: gatehouse}}\nspec: {{controllerName: gatehouse.dev/gatehouse{class_ref}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: infra}}\nspec:\n  gatewayClassName: gatehouse\n  infrastructure: {{{gateway_ref}}}\n  listeners: [{{name: http, protocol: HTTP, port: 80}}]\n"
        );
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
