//! Snapshot cache and ADS (aggregated xDS) server for Envoy. Knows nothing of Kubernetes.
//!
//! # Design
//!
//! * [`Snapshot`]: an immutable set of resources for one proxy group, by type URL then name.
//!   Each resource's version is a hash of its encoded bytes, so "changed" is a string
//!   comparison and an identical rebuild sends nothing.
//! * [`SnapshotCache`]: one writer (the controller) and many readers (streams); one `watch`
//!   channel per group, woken only when some version changed.
//! * [`sotw::SotwConnection`] and [`delta::DeltaConnection`]: one connection each, as state
//!   machines without I/O. Input: a request or a new snapshot. Output: responses to send, in
//!   order, and [`Event`]s (ACK, NACK, stale nonce). They hold nonces, subscriptions, what
//!   the client has, and at most one un-ACKed response per type.
//! * [`order`]: make-before-break. Clusters → endpoints → listeners → routes; a type waits
//!   while an earlier one introduces names the client has not accepted, and clusters that
//!   left the snapshot are removed only once listeners and routes are ACKed without them.
//! * [`AdsServer`]: the tonic layer. It reads the first request's `node`, maps it to a group
//!   with a [`NodeGrouper`], follows that group in the cache, and feeds the machine.
//!
//! A group without a snapshot is not answered at all (Envoy's `initial_fetch_timeout` then
//! decides), because an empty answer would tell Envoy to drop its config. A NACK keeps the
//! client's previous config, is logged with its `error_detail` and counted in [`XdsStats`],
//! and the rejected content is not resent until a newer snapshot changes it.

mod cache;
pub mod delta;
mod event;
mod grpc;
pub mod order;
mod proxies;
mod resource;
mod server;
mod snapshot;
pub mod sotw;
mod stats;
mod tls;

#[cfg(test)]
mod testutil;

pub use cache::SnapshotCache;
pub use event::{Event, Output};
pub use grpc::AdsGrpc;
pub use proxies::ProxyState;
pub use resource::{Resource, type_url};
pub use server::{
    AdsServer, NodeGrouper, Peer, StreamCloser, TlsOptions, serve, serve_with_listener,
};
pub use snapshot::Snapshot;
pub use stats::{Rejection, XdsStats};
pub use tls::{TlsError, TlsReloader};

/// Errors of [`serve`] and [`serve_with_listener`].
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("ADS server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}
