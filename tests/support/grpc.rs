//! A real gRPC client (tonic) for GrpcEcho calls through Envoy: each call on a new connection,
//! with the `:authority` and metadata a test chooses.

use std::time::Duration;

use gatehouse_grpc_echo::pb::grpc_echo_client::GrpcEchoClient;
use gatehouse_grpc_echo::pb::{EchoRequest, EchoResponse};
use serde::Deserialize;
pub use tonic::Code;

/// Which GrpcEcho method to call.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Method {
    Echo,
    EchoTwo,
    EchoThree,
}

/// A call's outcome: the answer, or its gRPC code and message.
pub type Outcome = Result<EchoResponse, (Code, String)>;

/// Calls `method` on 127.0.0.1:`port` with `authority`, on a new connection (from a thread
/// that is not running async code; see [`call_async`]).
pub fn call(port: u16, authority: &str, method: Method, metadata: &[(&str, &str)]) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(call_async(port, authority, method, metadata))
}

/// [`call`], from async code.
pub async fn call_async(
    port: u16,
    authority: &str,
    method: Method,
    metadata: &[(&str, &str)],
) -> Outcome {
    {
        let origin: tonic::codegen::http::Uri =
            format!("http://{authority}").parse().map_err(|e| {
                (
                    Code::InvalidArgument,
                    format!("authority {authority:?}: {e}"),
                )
            })?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .origin(origin)
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| (Code::Unavailable, format!("connect: {e}")))?;
        let mut client = GrpcEchoClient::new(channel);
        let mut request = tonic::Request::new(EchoRequest {});
        for (k, v) in metadata {
            let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                .map_err(|e| (Code::InvalidArgument, format!("metadata {k:?}: {e}")))?;
            let value = v
                .parse()
                .map_err(|e| (Code::InvalidArgument, format!("metadata {v:?}: {e}")))?;
            request.metadata_mut().insert(key, value);
        }
        let answer = match method {
            Method::Echo => client.echo(request).await,
            Method::EchoTwo => client.echo_two(request).await,
            Method::EchoThree => client.echo_three(request).await,
        };
        answer
            .map(tonic::Response::into_inner)
            .map_err(|s| (s.code(), s.message().to_string()))
    }
}

/// The pod that answered.
pub fn pod(answer: &EchoResponse) -> &str {
    context(answer).map(|c| c.pod.as_str()).unwrap_or_default()
}

/// The namespace of the pod that answered.
pub fn namespace(answer: &EchoResponse) -> &str {
    context(answer)
        .map(|c| c.namespace.as_str())
        .unwrap_or_default()
}

fn context(answer: &EchoResponse) -> Option<&gatehouse_grpc_echo::pb::Context> {
    answer.assertions.as_ref()?.context.as_ref()
}

/// The request header `name` as the backend saw it.
pub fn seen_header<'a>(answer: &'a EchoResponse, name: &str) -> Option<&'a str> {
    answer
        .assertions
        .as_ref()?
        .headers
        .iter()
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}
