//! One long-lived client connection to Envoy — HTTP/1.1 keep-alive or HTTP/2 (prior
//! knowledge) — that sends request after request on the same socket, the way a browser or a
//! service mesh client does. Transition tests keep such connections open across configuration
//! changes: they are the ones a draining filter chain serves.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// HTTP version of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// An open connection; `None` from [`Conn::get`] once the server closed it.
pub struct Conn {
    pub proto: Proto,
    sender: Sender,
    closed: bool,
}

/// What one request on a connection got.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// `connection: close` (HTTP/1.1): the server will not take another request on it.
    pub closing: bool,
}

impl Conn {
    /// Connects to 127.0.0.1:`port`.
    pub async fn open(port: u16, proto: Proto) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        let sender = match proto {
            Proto::Http1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H1(sender)
            }
            Proto::Http2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(std::io::Error::other)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H2(sender)
            }
        };
        Ok(Conn {
            proto,
            sender,
            closed: false,
        })
    }

    /// Whether the connection can still take a request.
    pub fn is_open(&self) -> bool {
        !self.closed
            && match &self.sender {
                Sender::H1(s) => !s.is_closed(),
                Sender::H2(s) => !s.is_closed(),
            }
    }

    /// `GET path` with `Host: host` and `headers`; `None` when the connection is gone (closed by
    /// Envoy after a drain, GOAWAY, reset) — the caller opens another.
    pub async fn get(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Option<Reply> {
        if !self.is_open() {
            return None;
        }
        let mut req = hyper::Request::get(path);
        req = match self.proto {
            Proto::Http1 => req.header("host", host),
            Proto::Http2 => req.uri(format!("http://{host}{path}")),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::<Bytes>::new()).ok()?;
        let send = async {
            match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.ok()?;
                    s.send_request(req).await.ok()
                }
                Sender::H2(s) => {
                    s.ready().await.ok()?;
                    s.send_request(req).await.ok()
                }
            }
        };
        let resp = match tokio::time::timeout(Duration::from_secs(10), send).await {
            Ok(Some(r)) => r,
            _ => {
                self.closed = true;
                return None;
            }
        };
        let status = resp.status().as_u16();
        let closing = resp
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        // Read the body whole so the connection can take the next request.
        if tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
            .await
            .map_or(true, |r| r.is_err())
        {
            self.closed = true;
        }
        if closing {
            self.closed = true;
        }
        Some(Reply { status, closing })
    }
}
