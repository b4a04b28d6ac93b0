//! The tonic layer: moves messages between gRPC streams, the cache and the state machines.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::CertificateDer;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::XdsError;
use crate::cache::SnapshotCache;
use crate::delta::DeltaConnection;
use crate::event::{Event, Output};
use crate::grpc::AdsGrpc;
use crate::snapshot::Snapshot;
use crate::sotw::SotwConnection;
use crate::stats::XdsStats;
use crate::tls::TlsReloader;

/// What the transport proved about a connecting proxy.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The client certificate chain (DER, leaf first) when the server requires mTLS; the
    /// TLS layer already verified it against the configured client CA.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Maps a connecting proxy to the group whose snapshot it is served.
///
/// An `Err` refuses the proxy: its stream ends at once with `PERMISSION_DENIED` and the reason.
/// Envoy sends `node` only on the first request of a stream, so this runs once per stream.
pub trait NodeGrouper: Send + Sync + 'static {
    fn group(&self, node: &Node, peer: &Peer) -> Result<String, String>;
}

impl<F> NodeGrouper for F
where
    F: Fn(&Node, &Peer) -> Result<String, String> + Send + Sync + 'static,
{
    fn group(&self, node: &Node, peer: &Peer) -> Result<String, String> {
        self(node, peer)
    }
}

/// Server-side TLS of the ADS server: its own certificate and, for mTLS, the CA that client
/// certificates must chain to (then a client without a valid certificate cannot connect).
#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

/// An ADS server over a [`SnapshotCache`]: every stream follows its group's snapshot.
pub struct AdsServer {
    shared: Arc<Shared>,
}

struct Shared {
    cache: SnapshotCache,
    grouper: Arc<dyn NodeGrouper>,
    stats: Arc<XdsStats>,
    stop: watch::Sender<bool>,
    removal_grace: Duration,
}

impl AdsServer {
    pub fn new(cache: SnapshotCache, grouper: Arc<dyn NodeGrouper>, stats: Arc<XdsStats>) -> Self {
        let (stop, _) = watch::channel(false);
        AdsServer {
            shared: Arc::new(Shared {
                cache,
                grouper,
                stats,
                stop,
                removal_grace: Duration::ZERO,
            }),
        }
    }

    /// Removes clusters only once the listener and route ACKs that stopped naming them are
    /// `grace` old, so that requests in flight on them finish (see [`crate::order`]). Set it
    /// to the longest a request through a removed cluster may take. Call before serving.
    pub fn with_removal_grace(mut self, grace: Duration) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.removal_grace = grace;
        }
        self
    }

    /// A handle that ends every open stream. gRPC streams to proxies never finish on their
    /// own, so a graceful HTTP/2 shutdown would wait forever without it; [`serve`] uses it.
    pub fn stream_closer(&self) -> StreamCloser {
        StreamCloser(Arc::clone(&self.shared))
    }

    pub fn into_service(self) -> AdsGrpc<impl AggregatedDiscoveryService> {
        AdsGrpc::new(AdsService {
            shared: self.shared,
        })
    }
}

/// Ends all streams of one [`AdsServer`], now and for streams opened later.
#[derive(Clone)]
pub struct StreamCloser(Arc<Shared>);

impl StreamCloser {
    pub fn close(&self) {
        self.0.stop.send_replace(true);
    }
}

/// Serves ADS on `addr` until `shutdown` resolves, then ends every stream and returns.
pub async fn serve(
    addr: SocketAddr,
    server: AdsServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), XdsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| XdsError::Bind { addr, source })?;
    serve_with_listener(listener, server, None, shutdown).await
}

/// [`serve`] on a listener the caller bound (e.g. to port 0 in tests), plain or with TLS whose
/// settings may change while serving ([`TlsReloader::update`]).
pub async fn serve_with_listener(
    listener: TcpListener,
    server: AdsServer,
    tls: Option<TlsReloader>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), XdsError> {
    let closer = server.stream_closer();
    let router = tonic::transport::Server::builder()
        // Finds proxies that vanished without closing their connection.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(server.into_service());
    let shutdown = async move {
        shutdown.await;
        closer.close();
    };
    match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), shutdown)
                .await?
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    Ok(())
}

struct AdsService {
    shared: Arc<Shared>,
}

type ResponseStream<R> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<R, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = peer_of(&request);
        Ok(Response::new(response_stream::<SotwConnection>(
            Arc::clone(&self.shared),
            peer,
            request.into_inner(),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let peer = peer_of(&request);
        Ok(Response::new(response_stream::<DeltaConnection>(
            Arc::clone(&self.shared),
            peer,
            request.into_inner(),
        )))
    }
}

fn peer_of<T>(request: &Request<T>) -> Peer {
    Peer {
        certs: request.peer_certs(),
    }
}

/// What the stream loop needs from a state machine, so SotW and delta share one loop.
trait Machine: Send + 'static {
    type Req: Send + std::fmt::Debug + 'static;
    type Resp: Send + 'static;
    const KIND: &'static str;
    fn node(req: &Self::Req) -> Option<&Node>;
    /// (type URL, version, nonce, resource count) for the push log.
    fn describe(resp: &Self::Resp) -> (&str, &str, &str, usize);
    fn on_request(&mut self, req: Self::Req) -> Output<Self::Resp>;
    fn on_snapshot(&mut self, snap: Arc<Snapshot>) -> Output<Self::Resp>;
    fn with_removal_grace(grace: Duration) -> Self;
    fn wakeup(&self) -> Option<std::time::Instant>;
    fn on_tick(&mut self) -> Output<Self::Resp>;
    fn settled(&self) -> bool;
}

impl Machine for SotwConnection {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const KIND: &'static str = "sotw";
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn describe(r: &DiscoveryResponse) -> (&str, &str, &str, usize) {
        (&r.type_url, &r.version_info, &r.nonce, r.resources.len())
    }
    fn on_request(&mut self, req: DiscoveryRequest) -> Output<DiscoveryResponse> {
        SotwConnection::on_request(self, req)
    }
    fn on_snapshot(&mut self, snap: Arc<Snapshot>) -> Output<DiscoveryResponse> {
        SotwConnection::on_snapshot(self, snap)
    }
    fn with_removal_grace(grace: Duration) -> Self {
        SotwConnection::with_removal_grace(grace)
    }
    fn wakeup(&self) -> Option<std::time::Instant> {
        SotwConnection::wakeup(self)
    }
    fn on_tick(&mut self) -> Output<DiscoveryResponse> {
        SotwConnection::on_tick(self)
    }
    fn settled(&self) -> bool {
        SotwConnection::settled(self)
    }
}

impl Machine for DeltaConnection {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const KIND: &'static str = "delta";
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn describe(r: &DeltaDiscoveryResponse) -> (&str, &str, &str, usize) {
        let n = r.resources.len() + r.removed_resources.len();
        (&r.type_url, &r.system_version_info, &r.nonce, n)
    }
    fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Output<DeltaDiscoveryResponse> {
        DeltaConnection::on_request(self, req)
    }
    fn on_snapshot(&mut self, snap: Arc<Snapshot>) -> Output<DeltaDiscoveryResponse> {
        DeltaConnection::on_snapshot(self, snap)
    }
    fn with_removal_grace(grace: Duration) -> Self {
        DeltaConnection::with_removal_grace(grace)
    }
    fn wakeup(&self) -> Option<std::time::Instant> {
        DeltaConnection::wakeup(self)
    }
    fn on_tick(&mut self) -> Output<DeltaDiscoveryResponse> {
        DeltaConnection::on_tick(self)
    }
    fn settled(&self) -> bool {
        DeltaConnection::settled(self)
    }
}

/// One ADS stream: the state machine driven by the proxy's requests and the group's snapshots.
///
/// The stream is polled by the connection that carries it, so a proxy that stops reading
/// stops its own stream (backpressure) and an idle stream costs no task and no queue.
fn response_stream<M: Machine>(
    shared: Arc<Shared>,
    peer: Peer,
    mut inbound: Streaming<M::Req>,
) -> ResponseStream<M::Resp> {
    Box::pin(async_stream::stream! {
        let mut stop = shared.stop.subscribe();
        let first = tokio::select! {
            first = inbound.next() => first,
            _ = stopped(&mut stop) => return,
        };
        let first = match first {
            Some(Ok(req)) => req,
            Some(Err(status)) => {
                debug!(kind = M::KIND, %status, "xds stream failed before its first request");
                return;
            }
            None => return,
        };
        let Some(node) = M::node(&first).cloned() else {
            yield Err(Status::invalid_argument("the first request of a stream must carry node"));
            return;
        };
        let group = match shared.grouper.group(&node, &peer) {
            Ok(group) => group,
            Err(reason) => {
                warn!(node = %node.id, kind = M::KIND, %reason, "xds stream refused");
                shared.stats.refused();
                yield Err(Status::permission_denied(format!("node {:?}: {reason}", node.id)));
                return;
            }
        };

        let _gauge = shared.stats.stream_opened();
        let stream = shared.stats.next_stream_id();
        info!(node = %node.id, %group, kind = M::KIND, "xds stream connected");
        let mut link = Link::<M> {
            machine: M::with_removal_grace(shared.removal_grace),
            stats: &shared.stats,
            node: node.id.clone(),
            group: group.clone(),
            stream,
            // Until the loop below ends for a reason of its own, the stream ends because the
            // transport dropped it: the client went away.
            end: "client gone",
        };
        let mut snapshots = shared.cache.subscribe(&group);
        let current = snapshots.borrow_and_update().clone();
        match current {
            Some(snap) => {
                for resp in link.step(|m| m.on_snapshot(snap)) {
                    yield Ok(resp);
                }
            }
            None => debug!(node = %node.id, %group, "no snapshot for the group yet; waiting"),
        }
        for resp in link.step(|m| m.on_request(first)) {
            yield Ok(resp);
        }

        link.end = loop {
            let wakeup = link.machine.wakeup();
            let input = tokio::select! {
                _ = sleep_until(wakeup) => Input::Tick,
                _ = stopped(&mut stop) => Input::End("server shutting down"),
                msg = inbound.next() => match msg {
                    Some(Ok(req)) => Input::Request(req),
                    Some(Err(_)) => Input::End("stream error"),
                    None => Input::End("client closed the stream"),
                },
                changed = snapshots.changed() => match changed {
                    Ok(()) => Input::Snapshot(snapshots.borrow_and_update().clone()),
                    Err(_) => Input::End("snapshot cache dropped"),
                },
            };
            let responses = match input {
                Input::Request(req) => {
                    tracing::trace!(kind = M::KIND, request = ?req, "xds request");
                    link.step(|m| m.on_request(req))
                }
                Input::Snapshot(Some(snap)) => link.step(|m| m.on_snapshot(snap)),
                // A removed group keeps serving what it had (see `SnapshotCache::remove`).
                Input::Snapshot(None) => Vec::new(),
                Input::Tick => link.step(|m| m.on_tick()),
                Input::End(reason) => break reason,
            };
            for resp in responses {
                yield Ok(resp);
            }
        };
    })
}

enum Input<R> {
    Request(R),
    /// The machine's wake-up time came (held removals may go out).
    Tick,
    Snapshot(Option<Arc<Snapshot>>),
    End(&'static str),
}

/// Resolves at `at`, never without one.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the server asks streams to end; never if the server was dropped without
/// asking, since then nobody can ask any more.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One stream's machine and what its outputs are reported to; logs the disconnect when dropped.
struct Link<'a, M: Machine> {
    machine: M,
    stats: &'a XdsStats,
    node: String,
    group: String,
    /// This stream's id in [`XdsStats`]' proxy table.
    stream: u64,
    end: &'static str,
}

impl<M: Machine> Link<'_, M> {
    /// Runs one input through the machine; returns the responses to send.
    fn step(&mut self, step: impl FnOnce(&mut M) -> Output<M::Resp>) -> Vec<M::Resp> {
        let out = step(&mut self.machine);
        for event in out.events {
            self.record(event);
        }
        for resp in &out.responses {
            let (type_url, version, nonce, count) = M::describe(resp);
            debug!(
                node = %self.node,
                group = %self.group,
                type_url,
                version,
                nonce,
                count,
                "xds push"
            );
            self.stats.pushed();
        }
        self.stats
            .proxy_step(&self.group, self.stream, &self.node, self.machine.settled());
        out.responses
    }

    fn record(&self, event: Event) {
        match event {
            Event::Ack {
                type_url,
                version,
                nonce,
            } => {
                self.stats.acked();
                self.stats
                    .accepted(&self.group, &self.node, &type_url, &version);
                debug!(node = %self.node, group = %self.group, %type_url, %version, %nonce, "xds ack");
            }
            Event::Nack {
                type_url,
                version,
                nonce,
                message,
            } => {
                self.stats.nacked(&self.group, &type_url);
                self.stats.rejected(
                    &self.group,
                    crate::stats::Rejection {
                        node: self.node.clone(),
                        type_url: type_url.clone(),
                        version: version.clone(),
                        message: message.clone(),
                    },
                );
                warn!(
                    node = %self.node,
                    group = %self.group,
                    %type_url,
                    %version,
                    %nonce,
                    error_detail = %message,
                    "proxy rejected config (NACK); it keeps its previous config of this type"
                );
            }
            Event::Stale { type_url, nonce } => {
                debug!(node = %self.node, group = %self.group, %type_url, %nonce, "stale nonce ignored");
            }
        }
    }
}

impl<M: Machine> Drop for Link<'_, M> {
    fn drop(&mut self) {
        self.stats.forget(&self.group, &self.node);
        self.stats.proxy_gone(&self.group, self.stream);
        info!(node = %self.node, group = %self.group, kind = M::KIND, reason = self.end, "xds stream disconnected");
    }
}
