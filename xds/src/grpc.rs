//! The ADS gRPC service, routed by hand so its codec can use small buffers.
//!
//! The generated `AggregatedDiscoveryServiceServer` uses tonic's default codec, which allocates
//! an 8 KiB decode and an 8 KiB encode buffer per stream up front. A proxy's stream is idle
//! almost always and its requests are small, so those buffers were most of an idle stream's
//! memory (BENCHMARKS.md). Buffers here start at 1 KiB and grow with the messages; the routing is
//! the generated code's, trimmed to what this server uses.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, SERVICE_NAME,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tonic::body::Body;
use tonic::codec::{BufferSettings, Codec};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// First size of a stream's encode and decode buffers.
const BUFFER_SIZE: usize = 1024;
/// Ready responses batched into one write, at most (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Serves both ADS methods of `T`.
pub struct AdsGrpc<T> {
    inner: Arc<T>,
}

impl<T> AdsGrpc<T> {
    pub fn new(inner: T) -> Self {
        AdsGrpc {
            inner: Arc::new(inner),
        }
    }
}

impl<T> Clone for AdsGrpc<T> {
    fn clone(&self) -> Self {
        AdsGrpc {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> NamedService for AdsGrpc<T> {
    const NAME: &'static str = SERVICE_NAME;
}

impl<T, B> tower_service::Service<http::Request<B>> for AdsGrpc<T>
where
    T: AggregatedDiscoveryService,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(SmallCodec::<DiscoveryResponse, DiscoveryRequest>::new());
                Ok(grpc.streaming(Sotw(inner), req).await)
            }),
            DELTA_PATH => Box::pin(async move {
                let mut grpc =
                    Grpc::new(SmallCodec::<DeltaDiscoveryResponse, DeltaDiscoveryRequest>::new());
                Ok(grpc.streaming(Delta(inner), req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

struct Sotw<T>(Arc<T>);

impl<T: AggregatedDiscoveryService> StreamingService<DiscoveryRequest> for Sotw<T> {
    type Response = DiscoveryResponse;
    type ResponseStream = T::StreamAggregatedResourcesStream;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.stream_aggregated_resources(request).await })
    }
}

struct Delta<T>(Arc<T>);

impl<T: AggregatedDiscoveryService> StreamingService<DeltaDiscoveryRequest> for Delta<T> {
    type Response = DeltaDiscoveryResponse;
    type ResponseStream = T::DeltaAggregatedResourcesStream;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.delta_aggregated_resources(request).await })
    }
}

/// prost encoding with small starting buffers: encodes `E`, decodes `D`.
struct SmallCodec<E, D>(PhantomData<(E, D)>);

impl<E, D> SmallCodec<E, D> {
    fn new() -> Self {
        SmallCodec(PhantomData)
    }
}

impl<E, D> Codec for SmallCodec<E, D>
where
    E: prost::Message + Send + 'static,
    D: prost::Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = <ProstCodec<E, D> as Codec>::Encoder;
    type Decoder = <ProstCodec<E, D> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<E, D>::raw_encoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<E, D>::raw_decoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }
}
