//! Tests that need neither Envoy nor an API server: the translate goldens, the fail-closed
//! property over generated configurations, the generated CRDs, the CLI (`translate`,
//! `explain`), the Helm chart rendered by the Helm SDK (`make helm`) and the container images'
//! Dockerfiles (`make image`, checked without a container engine).
//!
//! One binary for all of them; a module per area (`cargo test --test offline
//! translate_golden::`).

#[path = "../support/mod.rs"]
mod support;

mod cli_conventions;
mod cli_translate;
mod crds;
mod explain;
mod fail_closed_property;
mod helm_chart;
mod images;
mod translate_golden;
