//! Gatehouse: a Kubernetes gateway controller that protects traffic through Envoy with external
//! authorization.
//!
//! Data flows one way: sources → store → model → translate → snapshot → xDS.

pub mod api;
pub mod crds;
pub mod model;
pub mod protojson;
pub mod render;
pub mod source;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod translate;
