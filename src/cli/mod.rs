//! Subcommands. Each returns the process exit code; errors end as readable messages.

pub mod bootstrap;
pub mod controller;
pub mod crds;
pub mod explain;
mod serve;
mod shutdown;
pub mod standalone;
pub mod translate;
