//! The GrpcEcho service of Gateway API's GRPCRoute conformance tests: `Echo` and `EchoTwo`
//! answer with what the server saw of the call (method, metadata, authority) and where it runs;
//! `EchoThree` answers `UNIMPLEMENTED`. The generated client is public, for tests.

use std::net::SocketAddr;

use tonic::{Request, Response, Status};

/// Generated from `proto/grpcecho.proto`.
pub mod pb {
    tonic::include_proto!("gateway_api_conformance.echo_basic.grpcecho");
}

use pb::grpc_echo_server::{GrpcEcho, GrpcEchoServer};
use pb::{Assertions, Context, EchoRequest, EchoResponse, Header};

/// The service's full name, as it appears in every method path.
pub const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

/// The server, answering with `context` as where it runs.
#[derive(Clone, Debug, Default)]
pub struct Echo {
    pub context: Context,
}

impl Echo {
    fn answer(&self, method: &str, request: &Request<EchoRequest>) -> Response<EchoResponse> {
        let metadata = request.metadata().clone().into_headers();
        let headers: Vec<Header> = metadata
            .iter()
            .map(|(k, v)| Header {
                key: k.as_str().to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect();
        // tonic hands over the authority as the request's URI, not as a header.
        let authority = request
            .extensions()
            .get::<Authority>()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        Response::new(EchoResponse {
            assertions: Some(Assertions {
                fully_qualified_method: format!("/{SERVICE}/{method}"),
                headers,
                authority,
                context: Some(self.context.clone()),
                tls_assertions: None,
            }),
            request: Some(EchoRequest {}),
        })
    }
}

#[tonic::async_trait]
impl GrpcEcho for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(self.answer("Echo", &request))
    }

    async fn echo_two(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        Ok(self.answer("EchoTwo", &request))
    }

    async fn echo_three(&self, _: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Err(Status::unimplemented(
            "EchoThree is intentionally unimplemented",
        ))
    }
}

/// The `:authority` of a call, kept by [`serve`]'s layer for the answer.
#[derive(Clone, Debug)]
struct Authority(String);

/// Serves `echo` on `listener` (HTTP/2 cleartext) until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    echo: Echo,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(WithAuthority(GrpcEchoServer::new(echo)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}

/// The generated server, with each request's authority kept as an extension for the answer.
#[derive(Clone)]
struct WithAuthority(GrpcEchoServer<Echo>);

impl tonic::server::NamedService for WithAuthority {
    const NAME: &'static str = SERVICE;
}

impl tower_service::Service<http::Request<tonic::body::Body>> for WithAuthority {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future =
        <GrpcEchoServer<Echo> as tower_service::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        request.extensions_mut().insert(Authority(authority));
        self.0.call(request)
    }
}

/// Binds `addr` (port 0 picks one) for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
