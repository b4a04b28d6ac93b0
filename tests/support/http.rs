//! A minimal HTTP/1.1 client for tests: one request per connection.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status, lower-cased headers, body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The echo backend's view of the request headers (`headers` in its JSON body).
    pub fn echoed_header(&self, name: &str) -> Option<String> {
        let doc: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        doc["headers"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v[0].as_str().map(str::to_string))
    }
}

/// `GET path` on 127.0.0.1:`port` with `Host: host` and extra headers.
pub fn get(
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    request(port, "GET", host, path, headers, "")
}

/// Sends one request with a text body and reads the whole response.
pub fn request(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Response> {
    request_bytes(port, method, host, path, headers, body.as_bytes())
}

/// Sends one request with any body and reads the whole response.
pub fn request_bytes(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    let raw = read_response(&mut stream, method)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "unparsable response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

/// Reads one response, stopping where its framing says it ends. Waiting for the server to close
/// instead costs a second per local reply: Envoy holds a connection it closes for its
/// `delayed_close_timeout` (1s) until the client closes first.
pub fn read_response(stream: &mut impl Read, method: &str) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(len) = framed_len(&raw, method) {
            raw.truncate(len);
            return Ok(raw);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the whole response once `raw` holds all of it. `None` while incomplete, and
/// for framing not handled here (1xx, neither length nor chunked), which is read to EOF.
pub fn framed_len(raw: &[u8], method: &str) -> Option<usize> {
    let end = find(raw, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    if status < 200 {
        return None;
    }
    if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
        return Some(end);
    }
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return chunked_len(raw, end);
    }
    let body: usize = header("content-length")?.parse().ok()?;
    (raw.len() >= end + body).then_some(end + body)
}

/// Where a chunked body starting at `i` ends (trailers included), once `raw` holds it.
fn chunked_len(raw: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let line = i + find(&raw[i..], b"\r\n")?;
        let size = std::str::from_utf8(&raw[i..line]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        i = line + 2;
        if size == 0 {
            loop {
                let line = i + find(&raw[i..], b"\r\n")?;
                if line == i {
                    return Some(i + 2);
                }
                i = line + 2;
            }
        }
        if raw.len() < i + size + 2 {
            return None;
        }
        i += size + 2;
    }
}

pub fn parse(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
