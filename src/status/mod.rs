//! Writes the conditions the model computed back onto the objects (leader only).

mod desired;
pub mod events;
mod leader;
mod writer;

pub use desired::{Desired, Scope, changed_between, desired};
pub use leader::{LeaderConfig, LeaderElector};
pub use writer::StatusWriter;
