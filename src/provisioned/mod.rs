//! What makes an object a provisioned one: its names and labels, and whether an object at a
//! provisioned name is Gatehouse's. Pure, and shared by the model (which reads a Gateway's
//! provisioned Service for its status) and `provision` (which writes the objects), so neither
//! depends on the other for it.

pub mod names;
pub mod ownership;

pub use names::{GATEWAY_NAME_LABEL, MANAGED_BY, labels, proxy_name, tls_secret_name};
pub use ownership::{Ownership, ownership};
