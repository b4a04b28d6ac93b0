//! Custom resources of the `gateway.kgateway.dev/v1alpha1` group that Gatehouse serves.
//!
//! Field names and validation follow kgateway's API so that manifests written for kgateway apply
//! unchanged; the CEL rules live in the generated CRD and are also evaluated client-side
//! (`validate_cel`) when manifests come from files.

mod common;
mod gateway_extension;
mod gateway_parameters;
mod traffic_policy;

pub use common::*;
pub use gateway_extension::*;
pub use gateway_parameters::*;
pub use traffic_policy::*;

/// API group of the Gatehouse (kgateway-compatible) custom resources.
pub const GROUP: &str = "gateway.kgateway.dev";
/// Annotation the file loader puts on an HTTPRoute or TrafficPolicy it refused (an unknown
/// field, a CEL rule): the object stays, so that the model fails it closed instead of leaving
/// its paths or targets to a broader rule. Set by hand, it does the same.
pub const REFUSED_ANNOTATION: &str = "gatehouse.dev/refused";
/// API group of Gateway API's kinds.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// API version of the Gatehouse custom resources.
pub const VERSION: &str = "v1alpha1";

/// Schema of a kgateway field Gatehouse keeps without reading: any value (kgateway's are
/// objects, strings or booleans), stored as written.
pub(crate) fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
