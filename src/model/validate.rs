//! Tenant values checked against what Envoy 1.40 accepts, before they are translated. One value
//! Envoy rejects would make it NACK the whole resource that holds it — the RouteConfiguration of
//! a port, or the listener of an auth provider — and freeze every other tenant's changes there.
//! So each value is judged here, and an invalid one costs only its own rule, policy or provider
//! (see `validate_route` and `validate_auth`).
//!
//! The checks follow Envoy's proto validation rules (PGV) and its config-load checks, measured
//! against `envoy --mode validate` (tests/envoy/envoy_generated.rs keeps them honest), and are never
//! looser than the Gateway API CRDs: files in standalone mode skip the API server's schema.

use std::fmt;

use super::re2;

/// Largest RE2 program Gatehouse lets through. Envoy's default limit
/// (`re2.max_program_size.error_level`) is also 100; Gatehouse's bootstraps raise Envoy's to
/// [`ENVOY_REGEX_PROGRAM_SIZE_LIMIT`], so a size that Debian's RE2 counts slightly differently
/// from the RE2 inside Envoy still fits.
pub const MAX_REGEX_PROGRAM_SIZE: usize = 100;

/// The limit Gatehouse's bootstraps set in Envoy's runtime: twice what Gatehouse accepts.
pub const ENVOY_REGEX_PROGRAM_SIZE_LIMIT: usize = 200;

/// Envoy's largest header name or value (PGV `max_bytes` of `HeaderValue`).
pub const MAX_HEADER_BYTES: usize = 16_384;

/// Gateway API's longest path value, hostname and header name.
const MAX_PATH: usize = 1024;
const MAX_HOSTNAME: usize = 253;
const MAX_HEADER_NAME: usize = 256;

/// One invalid value: where it is and why Envoy (or the Gateway API) refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field, as a path into the object (`spec.rules[0].matches[1].path.value`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Problems found so far; each check adds to it.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// At most this many problems are spelled out in one status message.
const SHOWN: usize = 4;

/// The problems in one line for a status message: the first few, then how many more.
pub fn summary(problems: &[Problem]) -> String {
    let mut out: Vec<String> = problems.iter().take(SHOWN).map(|p| p.to_string()).collect();
    if problems.len() > SHOWN {
        out.push(format!("and {} more", problems.len() - SHOWN));
    }
    out.join("; ")
}

/// A tenant value quoted for a status message, cut to a readable length.
pub fn show(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{:?}…", &value[..end]),
        None => format!("{value:?}"),
    }
}

/// CR, LF and NUL end a header line; Envoy's `HTTP_HEADER_VALUE` rule refuses them everywhere a
/// value becomes part of a request (header values, paths, hostnames, authorities).
pub fn no_line_breaks(p: &mut Problems, field: &str, value: &str) -> bool {
    let bad = value.contains(['\r', '\n', '\0']);
    if bad {
        p.add(field, "must not contain CR, LF or NUL");
    }
    !bad
}

/// An RE2 regex Envoy compiles: RE2's syntax and at most [`MAX_REGEX_PROGRAM_SIZE`].
pub fn regex(p: &mut Problems, field: &str, pattern: &str) {
    if pattern.is_empty() {
        return p.add(field, "a regular expression must not be empty");
    }
    match re2::program_size(pattern) {
        Err(e) => p.add(field, format!("not a valid RE2 regular expression: {e}")),
        Ok(size) if size > MAX_REGEX_PROGRAM_SIZE => p.add(
            field,
            format!(
                "the regular expression compiles to an RE2 program of size {size}, larger than the {MAX_REGEX_PROGRAM_SIZE} Envoy allows; simplify it"
            ),
        ),
        Ok(_) => {}
    }
}

/// RFC 7230 token characters: Gateway API's `HTTPHeaderName` pattern.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header name as Gateway API allows it (matches and modifiers).
pub fn header_name(p: &mut Problems, field: &str, name: &str) -> bool {
    let ok = is_token(name) && name.len() <= MAX_HEADER_NAME;
    if !ok {
        p.add(
            field,
            format!(
                "{} is not a valid header name (1-{MAX_HEADER_NAME} token characters)",
                show(name)
            ),
        );
    }
    ok
}

/// A header a mutation may set, add or remove: Envoy refuses `host` and `:`-pseudo-headers in
/// every header mutation (request and response, route and backend level).
pub fn mutable_header(p: &mut Problems, field: &str, name: &str) {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        p.add(
            field,
            format!(
                "{} cannot be set or removed: Envoy does not let header modifiers change Host or pseudo-headers (use URLRewrite for the host)",
                show(name)
            ),
        );
    }
}

/// A literal header value (Gateway API): its `%` are escaped as `%%` on the way to Envoy, which
/// must still fit Envoy's size limit.
pub fn literal_header_value(p: &mut Problems, field: &str, value: &str) {
    if no_line_breaks(p, field, value)
        && value.len() + value.matches('%').count() > MAX_HEADER_BYTES
    {
        p.add(
            field,
            format!("longer than the {MAX_HEADER_BYTES} bytes Envoy allows"),
        );
    }
}

/// A path (match value, redirect or rewrite target): absolute, on one line, of Gateway API
/// length.
pub fn path(p: &mut Problems, field: &str, value: &str) {
    if !value.starts_with('/') {
        p.add(field, format!("{} must start with '/'", show(value)));
    } else if value.len() > MAX_PATH {
        p.add(field, format!("longer than {MAX_PATH} characters"));
    } else {
        no_line_breaks(p, field, value);
    }
}

/// A hostname as Gateway API's `Hostname` (`wildcard`) or `PreciseHostname` allows it: lower
/// case, so no two spellings of one name become two Envoy domains (Envoy compares domains
/// case-insensitively and refuses a RouteConfiguration holding both).
pub fn hostname(p: &mut Problems, field: &str, host: &str, wildcard: bool) {
    let name = match host.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => host,
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > MAX_HOSTNAME || !name.split('.').all(label_ok) {
        let kind = if wildcard {
            "a lower-case DNS name, optionally starting with '*.'"
        } else {
            "a lower-case DNS name"
        };
        p.add(field, format!("{} is not {kind}", show(host)));
    }
}

/// Parses a Gateway API duration (`1h2m3s4ms`), the one format every duration field of the
/// served kinds uses; [`duration`] says what is wrong with one that does not parse.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let d = s.parse::<gateway_api::Duration>().ok()?;
    Some(std::time::Duration::new(d.as_secs(), d.subsec_nanos()))
}

/// A Gateway API duration (`1h2m3s4ms`); `positive` for intervals Envoy requires above zero.
pub fn duration(p: &mut Problems, field: &str, value: &str, positive: bool) {
    match value.parse::<gateway_api::Duration>() {
        Err(e) => p.add(
            field,
            format!("{} is not a Gateway API duration: {e}", show(value)),
        ),
        Ok(d) if positive && d.as_secs() == 0 && d.subsec_nanos() < 1_000_000 => p.add(
            field,
            "must be at least 1ms: Envoy refuses a zero retry back-off",
        ),
        Ok(_) => {}
    }
}
