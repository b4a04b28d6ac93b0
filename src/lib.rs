//! Gatehouse: a Kubernetes gateway controller that protects traffic through Envoy with external
//! authorization.
//!
//! Data flows one way: sources → store → model → translate → snapshot → xDS.

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod crds;
pub mod engine;
pub mod explain;
pub mod loopback;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod protojson;
pub mod provision;
pub mod render;
pub mod scale;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod translate;
