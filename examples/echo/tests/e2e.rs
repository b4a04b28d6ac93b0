//! End-to-end tests: run the real binary on 127.0.0.1:0 and talk to it with a
//! hyper client over HTTP/1.1 and HTTP/2 cleartext (prior knowledge).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse-echo");
const TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    child: Child,
    addr: SocketAddr,
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
            .expect("spawn gatehouse-echo");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        tokio::time::timeout(TIMEOUT, BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("listening line in time")
            .expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("listening addr=")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("socket addr");
        Server { child, addr }
    }

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

async fn into_json(response: Response<hyper::body::Incoming>) -> (StatusCode, String, Value) {
    let status = response.status();
    let backend = response
        .headers()
        .get("x-echo-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("read body")
        .to_bytes();
    let json = serde_json::from_slice(&body).expect("json body");
    (status, backend, json)
}

#[tokio::test]
async fn echoes_over_http1_and_h2c() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--name", "backend-1"]).await;

    // HTTP/1.1 with a body and repeated headers.
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let request = Request::post("/anything/x?a=1&b=2")
        .header("host", "app.example.com")
        .header("x-ext-authz-check-result", "allowed")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .body(Full::new(Bytes::from_static(b"some body")))
        .expect("request");
    let response = sender.send_request(request).await.expect("h1 response");
    let (status, backend, json) = into_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(backend, "backend-1");
    assert_eq!(json["backend"], "backend-1");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/anything/x?a=1&b=2");
    assert_eq!(json["host"], "app.example.com");
    assert_eq!(
        json["headers"]["X-Ext-Authz-Check-Result"],
        json!(["allowed"])
    );
    assert_eq!(json["headers"]["X-Multi"], json!(["one", "two"]));
    assert_eq!(json["headers"]["Content-Length"], json!(["9"]));
    // Exactly these top-level fields (field order is covered by unit tests).
    let mut keys: Vec<&str> = json
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["backend", "headers", "host", "method", "path"]);

    // HTTP/2 cleartext with prior knowledge: host comes from :authority.
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let request = Request::get("http://h2.example.com:8080/h2/path?q=x")
        .header("x-ext-authz-provider", "p")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 response");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let (status, backend, json) = into_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(backend, "backend-1");
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/h2/path?q=x");
    assert_eq!(json["host"], "h2.example.com:8080");
    assert_eq!(json["headers"]["X-Ext-Authz-Provider"], json!(["p"]));

    server.stop().await;
}

#[tokio::test]
async fn bind_failure_exits_with_code_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = tokio::time::timeout(TIMEOUT, Command::new(BIN).args(["--addr", &addr]).output())
        .await
        .expect("exit in time")
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("failed to bind HTTP listener on {addr}")),
        "stderr: {stderr}"
    );
}
