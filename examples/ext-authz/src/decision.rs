//! Protocol-independent allow/deny logic shared by the gRPC and HTTP front ends.
//!
//! Behaviour follows the Istio `ext-authz` sample: a request is allowed iff it
//! carries `x-ext-authz: allow`. On top of that the server reports what it saw
//! (context extensions, body size) and honours a few test hooks (delay,
//! redirect) so that end-to-end tests can exercise every ext_authz option.

use std::collections::BTreeMap;
use std::time::Duration;

/// Header that must be `allow` for a request to be allowed.
pub const CHECK_HEADER: &str = "x-ext-authz";
/// The only value of [`CHECK_HEADER`] that allows a request.
pub const ALLOWED_VALUE: &str = "allow";

/// `allowed` / `denied`.
pub const RESULT_HEADER: &str = "x-ext-authz-check-result";
/// Set (to the certificate's PEM length) when the check carried the client's TLS certificate
/// (`includePeerCertificate` on an mTLS listener).
pub const PEER_CERTIFICATE_HEADER: &str = "x-ext-authz-peer-certificate-bytes";
/// Short summary of the check request as the server received it.
pub const RECEIVED_HEADER: &str = "x-ext-authz-check-received";
/// Set to a fixed value so tests can verify the server's header overrides the
/// client's.
pub const OVERRIDE_HEADER: &str = "x-ext-authz-additional-header-override";
/// Name of the provider (`--name`) that answered.
pub const PROVIDER_HEADER: &str = "x-ext-authz-provider";
/// `k=v;k=v` of the gRPC context extensions, sorted by key (omitted if none).
pub const CONTEXT_HEADER: &str = "x-ext-authz-context";
/// Number of request body bytes the server received.
pub const BODY_BYTES_HEADER: &str = "x-ext-authz-body-bytes";
/// Test hook: sleep this many milliseconds before answering.
pub const DELAY_HEADER: &str = "x-ext-authz-delay-ms";
/// Test hook: deny with `302 Found` and `location: <value>`.
pub const REDIRECT_HEADER: &str = "x-ext-authz-redirect";
/// `location`, set on redirect denials.
pub const LOCATION_HEADER: &str = "location";
/// Test hook: answer with `host: <value>`, to see whether the proxy lets an auth server
/// rewrite the Host its backend receives.
pub const ANSWER_HOST_HEADER: &str = "x-ext-authz-answer-host";

pub const RESULT_ALLOWED: &str = "allowed";
pub const RESULT_DENIED: &str = "denied";
pub const OVERRIDE_GRPC_VALUE: &str = "grpc-additional-header-override-value";
pub const OVERRIDE_HTTP_VALUE: &str = "http-additional-header-override-value";
pub const DENY_BODY: &str =
    "denied by ext_authz for not found header `x-ext-authz: allow` in the request";

/// Upper bound for the [`DELAY_HEADER`] hook, so a stray header cannot park a
/// request (and graceful shutdown) for hours.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Longest value emitted in [`RECEIVED_HEADER`] / [`CONTEXT_HEADER`]; keeps
/// responses well under Envoy's header size limits.
const MAX_HEADER_VALUE_LEN: usize = 2048;

/// Which ext_authz protocol the check arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Grpc => "gRPC",
            Protocol::Http => "HTTP",
        }
    }

    fn override_value(self) -> &'static str {
        match self {
            Protocol::Grpc => OVERRIDE_GRPC_VALUE,
            Protocol::Http => OVERRIDE_HTTP_VALUE,
        }
    }
}

/// What the ext_authz server was asked to check, independent of protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckInput {
    pub method: String,
    pub host: String,
    /// Path including the query string, as received.
    pub path: String,
    /// e.g. `HTTP/1.1`; may be empty.
    pub protocol: String,
    /// Header name/value pairs in arrival order. Names are matched
    /// case-insensitively; repeated names are kept as separate entries.
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
    /// gRPC `context_extensions` (always empty over HTTP).
    pub context: BTreeMap<String, String>,
    /// Length of the client certificate Envoy passed (gRPC `source.certificate`), 0 for none.
    pub peer_certificate_bytes: usize,
}

impl CheckInput {
    /// All values of header `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name` if it occurs exactly once.
    fn single_header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut values = self.header_values(name);
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }

    /// One-line summary used for [`RECEIVED_HEADER`] and logs:
    /// `GET host/path HTTP/1.1; headers=a,b,c; body=12`.
    pub fn summary(&self) -> String {
        let mut names: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        let mut out = format!("{} {}{}", self.method, self.host, self.path);
        if !self.protocol.is_empty() {
            out.push(' ');
            out.push_str(&self.protocol);
        }
        out.push_str(&format!(
            "; headers={}; body={}",
            names.join(","),
            self.body_bytes
        ));
        header_safe(&out)
    }

    /// `k=v;k=v` sorted by key, or `None` when there are no context extensions.
    pub fn context_summary(&self) -> Option<String> {
        if self.context.is_empty() {
            return None;
        }
        let joined = self
            .context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        Some(header_safe(&joined))
    }
}

/// Outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Denied with `302 Found` and this `location`.
    Redirect(String),
}

/// Everything a front end needs to answer a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// Sleep this long before answering (test hook).
    pub delay: Option<Duration>,
    /// On allow: headers for the upstream request. On deny: headers for the
    /// downstream client.
    pub headers: Vec<(&'static str, String)>,
    /// Body for the downstream client (empty on allow).
    pub body: String,
    /// Same text as [`RECEIVED_HEADER`], handy for logging.
    pub summary: String,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// HTTP status the client should see (200 means "allow").
    pub fn http_status(&self) -> u16 {
        match self.verdict {
            Verdict::Allow => 200,
            Verdict::Deny => 403,
            Verdict::Redirect(_) => 302,
        }
    }
}

/// Decide on `input`. `provider` is the `--name` of this server.
pub fn decide(input: &CheckInput, provider: &str, protocol: Protocol) -> Decision {
    let redirect = input
        .single_header(REDIRECT_HEADER)
        .map(str::trim)
        .filter(|url| is_header_safe(url));
    let verdict = match redirect {
        Some(url) => Verdict::Redirect(url.to_owned()),
        None if input.single_header(CHECK_HEADER) == Some(ALLOWED_VALUE) => Verdict::Allow,
        None => Verdict::Deny,
    };
    let delay = input.single_header(DELAY_HEADER).and_then(parse_delay);
    let summary = input.summary();

    let result = if verdict == Verdict::Allow {
        RESULT_ALLOWED
    } else {
        RESULT_DENIED
    };
    let mut headers = vec![
        (RESULT_HEADER, result.to_owned()),
        (RECEIVED_HEADER, summary.clone()),
        (OVERRIDE_HEADER, protocol.override_value().to_owned()),
        (PROVIDER_HEADER, provider.to_owned()),
        (BODY_BYTES_HEADER, input.body_bytes.to_string()),
    ];
    if let Some(context) = input.context_summary() {
        headers.push((CONTEXT_HEADER, context));
    }
    if input.peer_certificate_bytes > 0 {
        headers.push((
            PEER_CERTIFICATE_HEADER,
            input.peer_certificate_bytes.to_string(),
        ));
    }
    if let Verdict::Redirect(url) = &verdict {
        headers.push((LOCATION_HEADER, url.clone()));
    }
    if let Some(host) = input
        .single_header(ANSWER_HOST_HEADER)
        .map(str::trim)
        .filter(|h| is_header_safe(h))
    {
        headers.push(("host", host.to_owned()));
    }
    let body = if verdict == Verdict::Allow {
        String::new()
    } else {
        DENY_BODY.to_owned()
    };

    Decision {
        verdict,
        delay,
        headers,
        body,
        summary,
    }
}

/// Parse a [`DELAY_HEADER`] value in milliseconds, capped at [`MAX_DELAY`].
/// Anything that is not a plain non-negative integer is ignored.
pub fn parse_delay(value: &str) -> Option<Duration> {
    let ms: u64 = value.trim().parse().ok()?;
    Some(Duration::from_millis(ms).min(MAX_DELAY))
}

/// True if `value` is non-empty and only printable ASCII (valid as an HTTP
/// header value everywhere, including Envoy).
pub fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Make `value` usable as a header value: replace anything but printable ASCII
/// with `?`, trim, and truncate to a bounded length.
pub fn header_safe(value: &str) -> String {
    let mut out: String = value
        .trim()
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    if out.len() > MAX_HEADER_VALUE_LEN {
        // All chars are ASCII here, so any byte index is a char boundary.
        out.truncate(MAX_HEADER_VALUE_LEN - 3);
        out.push_str("...");
    }
    out
}

/// Validate a `--name` value: it is sent verbatim as a header value.
pub fn validate_provider_name(name: &str) -> Result<String, String> {
    if is_header_safe(name) && name.trim() == name {
        Ok(name.to_owned())
    } else {
        Err("must be non-empty printable ASCII without surrounding spaces".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(headers: &[(&str, &str)]) -> CheckInput {
        CheckInput {
            method: "GET".into(),
            host: "example.com".into(),
            path: "/get?x=1".into(),
            protocol: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..CheckInput::default()
        }
    }

    fn header<'a>(d: &'a Decision, name: &str) -> Option<&'a str> {
        d.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_answer_host_hook_sets_host_on_the_answer() {
        let d = decide(
            &input(&[
                ("x-ext-authz", "allow"),
                (ANSWER_HOST_HEADER, "evil.example"),
            ]),
            "p1",
            Protocol::Http,
        );
        assert_eq!(header(&d, "host"), Some("evil.example"));
        let plain = decide(&input(&[("x-ext-authz", "allow")]), "p1", Protocol::Http);
        assert_eq!(header(&plain, "host"), None);
    }

    #[test]
    fn allows_with_header() {
        let d = decide(&input(&[("x-ext-authz", "allow")]), "p1", Protocol::Grpc);
        assert!(d.allowed());
        assert_eq!(d.http_status(), 200);
        assert!(d.body.is_empty());
        assert_eq!(header(&d, RESULT_HEADER), Some("allowed"));
        assert_eq!(header(&d, OVERRIDE_HEADER), Some(OVERRIDE_GRPC_VALUE));
        assert_eq!(header(&d, PROVIDER_HEADER), Some("p1"));
        assert_eq!(header(&d, BODY_BYTES_HEADER), Some("0"));
        assert_eq!(header(&d, CONTEXT_HEADER), None);
        assert_eq!(header(&d, LOCATION_HEADER), None);
    }

    #[test]
    fn header_name_is_case_insensitive() {
        let d = decide(&input(&[("X-Ext-Authz", "allow")]), "p", Protocol::Http);
        assert!(d.allowed());
        assert_eq!(header(&d, OVERRIDE_HEADER), Some(OVERRIDE_HTTP_VALUE));
    }

    #[test]
    fn value_must_be_exactly_allow() {
        for value in ["Allow", "allow ", "deny", "", "allow,allow"] {
            let d = decide(&input(&[("x-ext-authz", value)]), "p", Protocol::Http);
            assert!(!d.allowed(), "{value:?} must be denied");
        }
        let d = decide(&input(&[]), "p", Protocol::Http);
        assert!(!d.allowed());
    }

    #[test]
    fn repeated_check_header_is_denied() {
        let d = decide(
            &input(&[("x-ext-authz", "allow"), ("x-ext-authz", "allow")]),
            "p",
            Protocol::Http,
        );
        assert!(!d.allowed());
    }

    #[test]
    fn denial_has_body_and_headers() {
        let d = decide(&input(&[]), "p2", Protocol::Grpc);
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.http_status(), 403);
        assert_eq!(d.body, DENY_BODY);
        assert_eq!(header(&d, RESULT_HEADER), Some("denied"));
        assert_eq!(header(&d, OVERRIDE_HEADER), Some(OVERRIDE_GRPC_VALUE));
        assert_eq!(header(&d, PROVIDER_HEADER), Some("p2"));
        assert!(header(&d, RECEIVED_HEADER).is_some());
    }

    #[test]
    fn redirect_hook_wins_over_allow() {
        let d = decide(
            &input(&[
                ("x-ext-authz", "allow"),
                ("x-ext-authz-redirect", "https://login.example/?r=1"),
            ]),
            "p",
            Protocol::Http,
        );
        assert_eq!(
            d.verdict,
            Verdict::Redirect("https://login.example/?r=1".into())
        );
        assert_eq!(d.http_status(), 302);
        assert_eq!(
            header(&d, LOCATION_HEADER),
            Some("https://login.example/?r=1")
        );
        assert_eq!(header(&d, RESULT_HEADER), Some("denied"));
    }

    #[test]
    fn unsafe_redirect_is_ignored() {
        let d = decide(
            &input(&[("x-ext-authz-redirect", "http://a/\r\nx: y")]),
            "p",
            Protocol::Grpc,
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(header(&d, LOCATION_HEADER), None);
    }

    #[test]
    fn delay_parsing() {
        assert_eq!(parse_delay("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_delay(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_delay("99999999999"), Some(MAX_DELAY));
        assert_eq!(parse_delay("-1"), None);
        assert_eq!(parse_delay("1s"), None);
        let d = decide(
            &input(&[("x-ext-authz-delay-ms", "40")]),
            "p",
            Protocol::Grpc,
        );
        assert_eq!(d.delay, Some(Duration::from_millis(40)));
    }

    #[test]
    fn context_is_sorted_and_sanitised() {
        let mut i = input(&[("x-ext-authz", "allow")]);
        i.context.insert("zone".into(), "b".into());
        i.context.insert("app".into(), "x\ny".into());
        i.body_bytes = 17;
        let d = decide(&i, "p", Protocol::Grpc);
        assert_eq!(header(&d, CONTEXT_HEADER), Some("app=x?y;zone=b"));
        assert_eq!(header(&d, BODY_BYTES_HEADER), Some("17"));
    }

    #[test]
    fn summary_lists_sorted_unique_header_names() {
        let i = input(&[("X-B", "1"), ("x-a", "2"), ("x-b", "3")]);
        assert_eq!(
            i.summary(),
            "GET example.com/get?x=1 HTTP/1.1; headers=x-a,x-b; body=0"
        );
    }

    #[test]
    fn header_safe_replaces_and_truncates() {
        assert_eq!(header_safe(" a\tb\u{e9} "), "a?b?");
        let long = "x".repeat(10_000);
        let out = header_safe(&long);
        assert_eq!(out.len(), MAX_HEADER_VALUE_LEN);
        assert!(out.ends_with("..."));
    }

    #[test]
    fn provider_name_validation() {
        assert!(validate_provider_name("ext-authz-2").is_ok());
        assert!(validate_provider_name("").is_err());
        assert!(validate_provider_name(" a").is_err());
        assert!(validate_provider_name("a\nb").is_err());
    }
}
