//! Resolves references, attaches routes and policies, and computes status — as data.
//!
//! Pure: no I/O, no async. [`build`] turns a [`Store`] into the [`Model`] the translator reads.

mod assembly;
#[cfg(test)]
mod attachment_tests;
pub mod backend_tls;
#[cfg(test)]
mod backend_tls_tests;
mod build;
#[cfg(test)]
mod build_tests;
pub mod condition_names;
mod conditions;
mod contribution;
mod counts;
mod cross_serving;
mod extensions;
mod external_auth;
mod filters;
#[cfg(test)]
mod filters_tests;
mod gateways;
mod grpc;
mod hostname;
mod matches;
pub mod parameters;
mod policy;
pub(crate) mod re2;
mod refs;
mod route_cache;
mod routes;
pub mod tls;
#[cfg(test)]
mod tls_tests;
mod types;
mod validate;
mod validate_auth;
mod validate_route;
#[cfg(test)]
mod validate_tests;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use build::Builder;
pub use conditions::{
    AncestorRef, Condition, GatewayStatus, ListenerStatus, ParentRef, PolicyAncestorStatus,
    RouteParentStatus, Status, find,
};
pub use filters::{literal_substitution, prefix_rewrite_regex};
pub use types::*;
pub use validate::{
    ENVOY_REGEX_PROGRAM_SIZE_LIMIT, MAX_REGEX_PROGRAM_SIZE, Problem, parse_duration,
};
pub use validate_auth::{Argument as FormatArgument, FORMAT_COMMANDS};

use crate::store::{ObjKey, Store};

/// Default `controllerName` of GatewayClasses Gatehouse owns.
pub const DEFAULT_CONTROLLER_NAME: &str = "gatehouse.dev/gatehouse";

/// Status code of a route whose deciding auth policy is broken (fail closed).
pub const FAIL_CLOSED_STATUS: u32 = 500;

/// How the model treats its input.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// GatewayClasses with this `controllerName` are Gatehouse's.
    pub controller_name: String,
    /// Serve Gateways whose GatewayClass is not in the store (manifest directories often carry
    /// no GatewayClass); a cluster controller leaves this off.
    pub accept_unknown_classes: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            controller_name: DEFAULT_CONTROLLER_NAME.into(),
            accept_unknown_classes: true,
        }
    }
}

/// Everything computed from one store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// Served Gateways, sorted by key; shared with the next build when unchanged.
    pub gateways: Vec<Arc<GatewayModel>>,
    pub status: Status,
}

impl Model {
    /// The model of one Gateway.
    pub fn gateway(&self, key: &ObjKey) -> Option<&GatewayModel> {
        self.gateways.iter().find(|g| &g.key == key).map(|g| &**g)
    }
}

/// Builds the model from scratch (see [`Builder`] to reuse a previous build's work).
pub fn build(store: &Store, config: &ModelConfig) -> Model {
    Builder::default().build(store, config)
}
