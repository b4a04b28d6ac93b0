//! Per-Gateway proxy provisioning (controller mode): for each Gateway of our classes a
//! ServiceAccount, the proxies' xDS client certificate (Secret), the bootstrap (ConfigMap), a
//! Service with the listener ports and an Envoy Deployment, all owned by the Gateway.
//!
//! `names`, `settings`, `render` and `ownership` are pure; `apply` and `guard` are the edge that
//! talks to the API server. Nothing is applied to or deleted from an object with a provisioned
//! name unless it is Gatehouse's ([`ownership`]).

mod apply;
pub mod availability;
pub mod ca_secret;
mod cleanup;
mod conflict;
mod guard;
mod render;
mod settings;

pub use crate::provisioned::{
    GATEWAY_NAME_LABEL, MANAGED_BY, Ownership, labels, ownership, proxy_name, tls_secret_name,
};
pub use apply::{ProvisionConfig, Provisioner, SyncReport};
pub use cleanup::{inputs, same_inputs};

/// Server-side apply field manager of everything Gatehouse provisions.
pub const FIELD_MANAGER: &str = "gatehouse";
pub use conflict::{Conflict, conflict_condition};
// Submodules name it as `super::names`.
use crate::provisioned::names;
pub use render::{
    BOOTSTRAP_FILE, ProxyObjects, READINESS_PORT, RenderError, TLS_DIR, XdsEndpoint,
    bootstrap_json, ports, render,
};
pub use settings::{DEFAULT_ENVOY_IMAGE, ProxySettings};

/// Why a Gateway could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}")]
    Parameters(String),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("cannot encode object: {0}")]
    Encode(String),
    #[error("API server: {0}")]
    Kube(#[from] kube::Error),
}
