//! Auth provider (GatewayExtension, ExternalAuth filter) and TrafficPolicy values checked
//! against Envoy (see `validate`). A provider sits in the listener's ext_authz filter, so one
//! bad value there would make Envoy refuse the whole listener: an invalid provider is not
//! installed, and the policies that use it fail closed.

use envoy_types::pb::envoy::r#type::v3::StatusCode;
use gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersExternalAuth;

use super::validate::{self, MAX_HEADER_BYTES, Problem, Problems, show};
use crate::api::{ExtAuthPolicy, ExtAuthProvider, ExtSvcRetryPolicy};

/// Everything wrong with a provider's settings (fields under `spec.extAuth`).
pub fn provider(spec: &ExtAuthProvider) -> Vec<Problem> {
    let mut p = Problems::default();
    let base = "spec.extAuth";
    if let Some(code) = spec.status_on_error {
        // `HttpStatus.code` is an enum: Envoy refuses codes it does not name (199, 209, …).
        if code == 0 || StatusCode::try_from(code).is_err() {
            p.add(
                format!("{base}.statusOnError"),
                format!("Envoy has no HTTP status {code}; use a standard one such as 403 or 503"),
            );
        }
    }
    if let Some(b) = &spec.with_request_body {
        max_request_bytes(
            &mut p,
            &format!("{base}.withRequestBody"),
            b.max_request_bytes,
        );
    }
    header_list(
        &mut p,
        &format!("{base}.headersToForward"),
        spec.headers_to_forward.as_deref(),
    );
    if let Some(g) = &spec.grpc_service {
        let base = format!("{base}.grpcService");
        if let Some(a) = &g.authority {
            let field = format!("{base}.authority");
            if validate::no_line_breaks(&mut p, &field, a) && a.len() > MAX_HEADER_BYTES {
                p.add(field, format!("longer than {MAX_HEADER_BYTES} bytes"));
            }
        }
        if let Some(t) = &g.request_timeout {
            validate::duration(&mut p, &format!("{base}.requestTimeout"), t, false);
        }
        if let Some(r) = &g.retry {
            retry(&mut p, &format!("{base}.retry"), r);
        }
    }
    if let Some(h) = &spec.http_service {
        let base = format!("{base}.httpService");
        if let Some(prefix) = &h.path_prefix {
            path_prefix(&mut p, &format!("{base}.pathPrefix"), prefix);
        }
        if let Some(t) = &h.request_timeout {
            validate::duration(&mut p, &format!("{base}.requestTimeout"), t, false);
        }
        if let Some(r) = &h.retry {
            retry(&mut p, &format!("{base}.retry"), r);
        }
        if let Some(r) = &h.authorization_response {
            let base = format!("{base}.authorizationResponse");
            for (name, list) in [
                ("headersToBackend", &r.headers_to_backend),
                ("headersToClient", &r.headers_to_client),
                ("headersToClientOnSuccess", &r.headers_to_client_on_success),
            ] {
                header_list(&mut p, &format!("{base}.{name}"), list.as_deref());
            }
        }
        let headers = h
            .authorization_request
            .as_ref()
            .and_then(|r| r.headers_to_add.as_ref());
        for (name, value) in headers.into_iter().flatten() {
            let field = format!("{base}.authorizationRequest.headersToAdd[{name:?}]");
            if name.is_empty() || name.len() > MAX_HEADER_BYTES {
                p.add(&field, "a header name must have 1 to 16384 bytes");
            } else if validate::no_line_breaks(&mut p, &field, name) {
                validate::mutable_header(&mut p, &field, name);
            }
            if validate::no_line_breaks(&mut p, &field, value) {
                if value.len() > MAX_HEADER_BYTES {
                    p.add(&field, format!("longer than {MAX_HEADER_BYTES} bytes"));
                } else if let Err(e) = format_string(value) {
                    p.add(&field, e);
                }
            }
        }
    }
    p.0
}

/// Everything wrong with the provider settings of a rule's `ExternalAuth` filter.
pub fn inline_filter(rule_index: usize, ea: &HttpRouteRulesFiltersExternalAuth) -> Vec<Problem> {
    let mut p = Problems::default();
    let base = format!("spec.rules[{rule_index}].filters.externalAuth");
    // Empty `allowedHeaders` and `allowedResponseHeaders` are GEP-1494's defaults (see
    // `external_auth::provider`), never an empty Envoy list: only the path is checked.
    if let Some(path) = ea.http.as_ref().and_then(|h| h.path.as_ref()) {
        path_prefix(&mut p, &format!("{base}.http.path"), path);
    }
    p.0
}

/// Everything wrong with a TrafficPolicy's `extAuth`.
pub fn policy(ext_auth: &ExtAuthPolicy) -> Vec<Problem> {
    let mut p = Problems::default();
    if let Some(b) = &ext_auth.with_request_body {
        max_request_bytes(&mut p, "spec.extAuth.withRequestBody", b.max_request_bytes);
    }
    p.0
}

/// A list of header names Envoy turns into a `ListStringMatcher`, which must hold at least one
/// pattern: an empty list is refused rather than read as "none" or "all".
fn header_list(p: &mut Problems, field: &str, list: Option<&[String]>) {
    if list.is_some_and(<[String]>::is_empty) {
        p.add(
            field,
            "must name at least one header (Envoy refuses an empty list); leave it out for the default",
        );
    }
}

/// The path prefix of HTTP authorization requests: Envoy requires a leading '/'.
fn path_prefix(p: &mut Problems, field: &str, value: &str) {
    if !value.is_empty() && !value.starts_with('/') {
        p.add(field, format!("{} must start with '/'", show(value)));
    } else {
        validate::no_line_breaks(p, field, value);
    }
}

fn max_request_bytes(p: &mut Problems, base: &str, bytes: i32) {
    if bytes < 1 {
        p.add(format!("{base}.maxRequestBytes"), "must be at least 1");
    }
}

fn retry(p: &mut Problems, base: &str, r: &ExtSvcRetryPolicy) {
    let Some(b) = &r.backoff else { return };
    let base_field = format!("{base}.backoff.baseInterval");
    validate::duration(p, &base_field, &b.base_interval, true);
    if let Some(max) = &b.max_interval {
        validate::duration(p, &format!("{base}.backoff.maxInterval"), max, true);
        let parse = |s: &str| {
            s.parse::<gateway_api::Duration>()
                .ok()
                .map(|d| std::time::Duration::new(d.as_secs(), d.subsec_nanos()))
        };
        if let (Some(lo), Some(hi)) = (parse(&b.base_interval), parse(max))
            && hi < lo
        {
            p.add(
                format!("{base}.backoff.maxInterval"),
                "must not be shorter than baseInterval",
            );
        }
    }
}

/// Envoy format commands Gatehouse lets through in `headersToAdd`, and whether each takes an
/// argument (`%REQ(x-user)%`). Every one is checked against Envoy by tests/envoy/envoy_generated.rs;
/// Envoy refuses a command it does not know, so anything else is rejected here.
pub const FORMAT_COMMANDS: &[(&str, Argument)] = &[
    ("REQ", Argument::Required),
    ("DYNAMIC_METADATA", Argument::Required),
    ("START_TIME", Argument::None),
    ("PROTOCOL", Argument::None),
    ("HOSTNAME", Argument::None),
    ("ROUTE_NAME", Argument::None),
    ("REQUESTED_SERVER_NAME", Argument::None),
    ("CONNECTION_ID", Argument::None),
    ("STREAM_ID", Argument::None),
    ("DOWNSTREAM_REMOTE_ADDRESS", Argument::None),
    ("DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", Argument::None),
    ("DOWNSTREAM_REMOTE_PORT", Argument::None),
    ("DOWNSTREAM_DIRECT_REMOTE_ADDRESS", Argument::None),
    (
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
        Argument::None,
    ),
    ("DOWNSTREAM_LOCAL_ADDRESS", Argument::None),
    ("DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", Argument::None),
    ("DOWNSTREAM_LOCAL_PORT", Argument::None),
    ("DOWNSTREAM_TLS_VERSION", Argument::None),
    ("DOWNSTREAM_PEER_URI_SAN", Argument::None),
    ("DOWNSTREAM_PEER_SUBJECT", Argument::None),
    ("DOWNSTREAM_PEER_FINGERPRINT_256", Argument::None),
    ("DOWNSTREAM_LOCAL_URI_SAN", Argument::None),
    ("UPSTREAM_HOST", Argument::None),
    ("UPSTREAM_CLUSTER", Argument::None),
    ("UPSTREAM_REMOTE_ADDRESS", Argument::None),
    ("UPSTREAM_LOCAL_ADDRESS", Argument::None),
];

/// Whether a format command takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Argument {
    None,
    /// `(…)` is required; `:N` (truncate to N) may follow.
    Required,
}

/// Checks an Envoy format string (`headersToAdd` values, which allow format commands): `%%` is
/// a literal `%`, and every other `%` opens a known command closed by `%`.
pub fn format_string(value: &str) -> Result<(), String> {
    let mut rest = value;
    while let Some(start) = rest.find('%') {
        rest = &rest[start + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            rest = after;
            continue;
        }
        let Some(end) = rest.find('%') else {
            return Err(format!(
                "{}: '%' starts an Envoy format command that is never closed (write %% for a literal %)",
                show(value)
            ));
        };
        command(&rest[..end]).map_err(|e| format!("{}: {e}", show(value)))?;
        rest = &rest[end + 1..];
    }
    Ok(())
}

fn command(cmd: &str) -> Result<(), String> {
    let name_end = cmd
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(cmd.len());
    let (name, tail) = cmd.split_at(name_end);
    let Some((_, takes)) = FORMAT_COMMANDS.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "%{cmd}% is not an Envoy format command Gatehouse supports (write %% for a literal %)"
        ));
    };
    match takes {
        Argument::None if tail.is_empty() => Ok(()),
        Argument::None => Err(format!("%{name}% takes no argument")),
        Argument::Required => {
            let (arg, len) = tail
                .strip_prefix('(')
                .and_then(|t| t.split_once(')'))
                .ok_or_else(|| format!("%{name}(…)% needs an argument in parentheses"))?;
            let arg_ok = !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:?".contains(&b));
            let len_ok = len.is_empty()
                || len.strip_prefix(':').is_some_and(|n| {
                    !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit())
                });
            if arg_ok && len_ok {
                Ok(())
            } else {
                Err(format!("%{cmd}% has an argument Gatehouse does not accept"))
            }
        }
    }
}
