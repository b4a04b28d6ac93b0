//! Subcommands. Each returns the process exit code; errors end as readable messages.

pub mod crds;
pub mod translate;
