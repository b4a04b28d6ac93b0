//! Our CRDs' CEL rules, evaluated client-side as the API server would. The rules are compiled
//! once per thread: `validate_cel` of kube-derive regenerates the CRD and compiles every rule on
//! each call, which made loading 1,000 policies cost seconds (see BENCHMARKS.md).

use kube::CustomResourceExt;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde::Serialize;

use crate::api::{GatewayExtension, GatewayParameters, TrafficPolicy};

struct Compiled {
    validator: Validator,
    gateway_extension: CompiledSchema,
    traffic_policy: CompiledSchema,
    gateway_parameters: CompiledSchema,
}

fn schema<T: CustomResourceExt>() -> serde_json::Value {
    let crd = T::crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default()
}

thread_local! {
    static COMPILED: Compiled = Compiled {
        validator: Validator::new(),
        gateway_extension: compile_schema(&schema::<GatewayExtension>()),
        traffic_policy: compile_schema(&schema::<TrafficPolicy>()),
        gateway_parameters: compile_schema(&schema::<GatewayParameters>()),
    };
}

fn check<T: Serialize>(object: &T, pick: fn(&Compiled) -> &CompiledSchema) -> Result<(), String> {
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    COMPILED.with(|c| {
        c.validator
            .validate_compiled(pick(c), &value, None)
            .map_err(|e| e.to_string())
    })
}

/// The CEL rules of a GatewayExtension.
pub fn gateway_extension(o: &GatewayExtension) -> Result<(), String> {
    check(o, |c| &c.gateway_extension)
}

/// The CEL rules of a TrafficPolicy.
pub fn traffic_policy(o: &TrafficPolicy) -> Result<(), String> {
    check(o, |c| &c.traffic_policy)
}

/// The CEL rules of a GatewayParameters.
pub fn gateway_parameters(o: &GatewayParameters) -> Result<(), String> {
    check(o, |c| &c.gateway_parameters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    /// The cached rules judge exactly as kube-derive's `validate_cel`.
    #[test]
    fn compiled_rules_agree_with_validate_cel() {
        let cases = [
            "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g}], extAuth: {extensionRef: {name: e}}",
            "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g}], extAuth: {extensionRef: {name: e}, disable: {}}",
            "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g}], extAuth: {}",
        ];
        for spec in cases {
            let text = testing::traffic_policy_spec("n", "p", spec);
            let p: TrafficPolicy = yaml_serde::from_str(&text).expect("parses");
            assert_eq!(
                traffic_policy(&p).is_ok(),
                p.validate_cel().is_ok(),
                "{spec}"
            );
        }
        let bad = testing::gateway_extension_spec("n", "e", "type: ExtAuth, extAuth: {}");
        let e: GatewayExtension = yaml_serde::from_str(&bad).expect("parses");
        assert!(gateway_extension(&e).is_err());
        assert_eq!(gateway_extension(&e).is_ok(), e.validate_cel().is_ok());
        for replicas in [1, 5000] {
            let text = testing::gateway_parameters(
                "n",
                "p",
                &format!("kube: {{deployment: {{replicas: {replicas}}}}}"),
            );
            let p: GatewayParameters = yaml_serde::from_str(&text).expect("parses");
            assert_eq!(gateway_parameters(&p).is_ok(), replicas == 1, "{text}");
            assert_eq!(gateway_parameters(&p).is_ok(), p.validate_cel().is_ok());
        }
    }
}
