//! Gatehouse: a Kubernetes gateway controller that protects traffic through Envoy with external
//! authorization.
//!
//! Data flows one way: sources → store → model → translate → snapshot → xDS.

// Building a model allocates and frees many small strings and trees; mimalloc is ~35% faster
// than glibc malloc on the 10,000-route pipeline (BENCHMARKS.md) and hands freed pages back to
// the kernel (with `engine`'s collect after each build), where glibc kept the peak. Declared in
// the library so the binary, the benches and the tests all run the allocator production runs.
// Fuzz builds keep the system allocator, which AddressSanitizer instruments.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod build_info;
pub mod crds;
pub mod engine;
pub mod explain;
pub mod loopback;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod protojson;
pub mod provision;
pub mod provisioned;
pub mod render;
pub mod scale;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod translate;
