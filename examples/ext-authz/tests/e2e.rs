//! End-to-end tests: run the real binary on 127.0.0.1:0 and talk to it over
//! gRPC (tonic client from envoy-types) and raw HTTP/1.1 over TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse-ext-authz");
const TIMEOUT: Duration = Duration::from_secs(20);
const DENY_BODY: &str =
    "denied by ext_authz for not found header `x-ext-authz: allow` in the request";

struct Server {
    child: Child,
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

impl Server {
    async fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gatehouse-ext-authz");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        tokio::time::timeout(TIMEOUT, BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("listening line in time")
            .expect("read stdout");
        // "listening grpc=ADDR http=ADDR"
        let rest = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let mut grpc = None;
        let mut http = None;
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=').expect("key=value");
            let addr = (value != "off").then(|| value.parse().expect("socket addr"));
            match key {
                "grpc" => grpc = addr,
                "http" => http = addr,
                other => panic!("unknown field {other}"),
            }
        }
        Server { child, grpc, http }
    }

    async fn grpc_client(&self) -> AuthorizationClient<Channel> {
        let addr = self.grpc.expect("grpc enabled");
        AuthorizationClient::connect(format!("http://{addr}"))
            .await
            .expect("connect gRPC")
    }

    /// SIGTERM the server and assert it exits cleanly.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let status = tokio::time::timeout(TIMEOUT, self.child.wait())
            .await
            .expect("exit after SIGTERM")
            .expect("wait");
        assert!(status.success(), "exit status {status:?}");
    }
}

fn check_request(headers: &[(&str, &str)], body: &str, context: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    host: "app.example.com".into(),
                    path: "/post?q=1".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    body: body.into(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            context_extensions: context
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..AttributeContext::default()
        }),
    }
}

fn headers_of(
    options: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
) -> HashMap<String, String> {
    options
        .iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

async fn check(client: &mut AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    client.check(req).await.expect("Check rpc").into_inner()
}

#[tokio::test]
async fn grpc_allow_deny_and_hooks() {
    let server = Server::start(&[
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "off",
        "--name",
        "provider-a",
    ])
    .await;
    assert!(server.http.is_none());
    let mut client = server.grpc_client().await;

    // Allowed, with context extensions and a body.
    let resp = check(
        &mut client,
        check_request(
            &[("x-ext-authz", "allow")],
            "hello",
            &[("zone", "b"), ("app", "a")],
        ),
    )
    .await;
    assert_eq!(resp.status.as_ref().map(|s| s.code), Some(0));
    let Some(HttpResponse::OkResponse(ok)) = resp.http_response else {
        panic!("expected OkResponse, got {:?}", resp.http_response);
    };
    let h = headers_of(&ok.headers);
    assert_eq!(h["x-ext-authz-check-result"], "allowed");
    assert_eq!(
        h["x-ext-authz-additional-header-override"],
        "grpc-additional-header-override-value"
    );
    assert_eq!(h["x-ext-authz-provider"], "provider-a");
    assert_eq!(h["x-ext-authz-context"], "app=a;zone=b");
    assert_eq!(h["x-ext-authz-body-bytes"], "5");
    assert_eq!(
        h["x-ext-authz-check-received"],
        "POST app.example.com/post?q=1 HTTP/1.1; headers=x-ext-authz; body=5"
    );

    // Denied.
    let resp = check(
        &mut client,
        check_request(&[("x-ext-authz", "deny")], "", &[]),
    )
    .await;
    assert_eq!(
        resp.status.as_ref().map(|s| s.code),
        Some(tonic::Code::PermissionDenied as i32)
    );
    let Some(HttpResponse::DeniedResponse(denied)) = resp.http_response else {
        panic!("expected DeniedResponse, got {:?}", resp.http_response);
    };
    assert_eq!(denied.status.map(|s| s.code), Some(403));
    assert_eq!(denied.body, DENY_BODY);
    let h = headers_of(&denied.headers);
    assert_eq!(h["x-ext-authz-check-result"], "denied");
    assert_eq!(h["x-ext-authz-provider"], "provider-a");
    assert_eq!(h["x-ext-authz-body-bytes"], "0");
    assert!(!h.contains_key("x-ext-authz-context"));

    // Raw headers (encode_raw_headers) are understood too.
    let mut req = check_request(&[], "", &[]);
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.header_map = Some(HeaderMap {
            headers: vec![HeaderValue {
                key: "x-ext-authz".into(),
                value: String::new(),
                raw_value: b"allow".to_vec(),
            }],
        });
    }
    let resp = check(&mut client, req).await;
    assert_eq!(resp.status.map(|s| s.code), Some(0));

    // Redirect hook.
    let resp = check(
        &mut client,
        check_request(
            &[("x-ext-authz-redirect", "https://login.example/")],
            "",
            &[],
        ),
    )
    .await;
    let Some(HttpResponse::DeniedResponse(denied)) = resp.http_response else {
        panic!("expected DeniedResponse");
    };
    assert_eq!(denied.status.map(|s| s.code), Some(302));
    assert_eq!(
        headers_of(&denied.headers)["location"],
        "https://login.example/"
    );

    // Delay hook.
    let start = Instant::now();
    let resp = check(
        &mut client,
        check_request(
            &[("x-ext-authz", "allow"), ("x-ext-authz-delay-ms", "300")],
            "",
            &[],
        ),
    )
    .await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(resp.status.map(|s| s.code), Some(0));

    drop(client);
    server.stop().await;
}

/// Minimal HTTP/1.1 exchange over raw TCP: returns status, lower-cased
/// headers and body. The request must ask for `Connection: close`.
async fn raw_http(addr: SocketAddr, request: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect HTTP");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header terminator");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[tokio::test]
async fn http_allow_deny_and_hooks() {
    let server = Server::start(&[
        "--grpc-addr",
        "off",
        "--http-addr",
        "127.0.0.1:0",
        "--name",
        "provider-b",
    ])
    .await;
    assert!(server.grpc.is_none());
    let addr = server.http.expect("http enabled");

    // Allowed; header name in odd case.
    let (status, h, body) = raw_http(
        addr,
        "GET /authz/get?x=1 HTTP/1.1\r\nHost: app.example.com\r\nX-EXT-AUTHZ: allow\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, "");
    assert_eq!(h["x-ext-authz-check-result"], "allowed");
    assert_eq!(
        h["x-ext-authz-additional-header-override"],
        "http-additional-header-override-value"
    );
    assert_eq!(h["x-ext-authz-provider"], "provider-b");
    assert_eq!(h["x-ext-authz-body-bytes"], "0");
    assert_eq!(
        h["x-ext-authz-check-received"],
        "GET app.example.com/authz/get?x=1 HTTP/1.1; headers=connection,host,x-ext-authz; body=0"
    );

    // Denied, with a body.
    let (status, h, body) = raw_http(
        addr,
        "POST /authz/post HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body, DENY_BODY);
    assert_eq!(h["x-ext-authz-check-result"], "denied");
    assert_eq!(h["x-ext-authz-provider"], "provider-b");
    assert_eq!(h["x-ext-authz-body-bytes"], "4");
    assert!(h["content-type"].starts_with("text/plain"));

    // Redirect hook.
    let (status, h, _) = raw_http(
        addr,
        "GET / HTTP/1.1\r\nHost: a\r\nx-ext-authz-redirect: /login?next=%2F\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(h["location"], "/login?next=%2F");

    // Delay hook.
    let start = Instant::now();
    let (status, _, _) = raw_http(
        addr,
        "GET / HTTP/1.1\r\nHost: a\r\nx-ext-authz: allow\r\nx-ext-authz-delay-ms: 300\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));

    server.stop().await;
}

#[tokio::test]
async fn bind_failure_exits_with_code_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = tokio::time::timeout(
        TIMEOUT,
        Command::new(BIN)
            .args(["--grpc-addr", "off", "--http-addr", &addr])
            .output(),
    )
    .await
    .expect("exit in time")
    .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("failed to bind HTTP listener on {addr}")),
        "stderr: {stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn both_listeners_off_is_an_error() {
    let output = Command::new(BIN)
        .args(["--grpc-addr", "off", "--http-addr", "off"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
}
