//! End-to-end tests that run the real Envoy binary (`make envoy`, or `$GATEHOUSE_ENVOY`):
//! `gatehouse standalone` serving a watched directory to Envoy on loopback, with the demo auth
//! server and the echo backend, and `envoy --mode validate` over generated and translated
//! configurations. No API server and no root.
//!
//! One binary for all of them (each used to link the support module on its own); a module per
//! area, so `cargo test --test envoy fail_closed_transitions::` runs one of them. Tests share
//! no global state: every world has its own ports (`gatehouse::loopback::unused_port`), its
//! own temporary directory and its own processes, and none sets environment variables.

#[path = "../support/mod.rs"]
mod support;

mod backend_tls_e2e;
mod conformance_e2e;
mod envoy_generated;
mod envoy_validate;
mod ext_auth_options_e2e;
mod external_auth_filter_e2e;
mod fail_closed_e2e;
mod fail_closed_transitions;
mod faults_e2e;
mod grpc_conformance_e2e;
mod grpc_route_e2e;
mod https_e2e;
mod path_normalization_e2e;
mod policy_attachment_e2e;
mod precedence_e2e;
mod provider_warmup_e2e;
mod rejection_status_e2e;
mod request_bypass_e2e;
mod route_scopes_e2e;
mod standalone_e2e;
mod tenant_values_e2e;
