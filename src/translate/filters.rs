//! Gateway API rule filters, timeouts and retries on an Envoy route.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, RetryPolicy, Route, RouteAction, redirect_action, retry_policy, route_action,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::common::duration;
use super::names;
use crate::model::{self, HeaderEdits, MatchModel, PathMatch, PathRewrite, Redirect, RouteFilters};

/// A Gateway API header value as an Envoy header mutation value: Envoy reads `%` as the start of
/// a formatter command (`100%` is refused, `%REQ(x)%` would be expanded), while Gateway API
/// values are literal — `%%` is Envoy's literal `%`, as Envoy Gateway emits it.
pub fn literal_header_value(value: &str) -> String {
    value.replace('%', "%%")
}

/// Envoy header options for `edits`: `set` overwrites, `add` appends.
pub fn header_options(edits: &HeaderEdits) -> Vec<HeaderValueOption> {
    let option = |(name, value): &(String, String),
                  action: header_value_option::HeaderAppendAction| {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: name.clone(),
                value: literal_header_value(value),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        }
    };
    edits
        .set
        .iter()
        .map(|h| {
            option(
                h,
                header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd,
            )
        })
        .chain(edits.add.iter().map(|h| {
            option(
                h,
                header_value_option::HeaderAppendAction::AppendIfExistsOrAdd,
            )
        }))
        .collect()
}

/// The prefix a PathPrefix match matched, without its trailing slash ("" for `/`).
fn matched_prefix(m: &MatchModel) -> Option<String> {
    match &m.path {
        PathMatch::Prefix(p) => Some(p.trim_end_matches('/').to_string()),
        _ => None,
    }
}

fn prefix_regex(prefix: &str, replacement: &str) -> RegexMatchAndSubstitute {
    let (pattern, substitution) = model::prefix_rewrite_regex(prefix, replacement);
    RegexMatchAndSubstitute {
        pattern: Some(RegexMatcher {
            regex: pattern,
            ..Default::default()
        }),
        substitution,
    }
}

fn full_path_regex(path: &str) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute {
        pattern: Some(RegexMatcher {
            regex: "^/.*$".into(),
            ..Default::default()
        }),
        substitution: model::literal_substitution(path),
    }
}

/// Rewrites, mirrors, timeouts and retries of a forwarding route.
pub fn apply_to_action(action: &mut RouteAction, f: &RouteFilters, m: &MatchModel) {
    if let Some(rw) = &f.rewrite {
        if let Some(host) = &rw.hostname {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
            );
        }
        match &rw.path {
            Some(PathRewrite::Full(path)) => action.regex_rewrite = Some(full_path_regex(path)),
            Some(PathRewrite::Prefix(replacement)) => {
                // Only meaningful on a PathPrefix match; the API rejects it elsewhere.
                if let Some(prefix) = matched_prefix(m) {
                    action.regex_rewrite = Some(prefix_regex(&prefix, replacement));
                }
            }
            None => {}
        }
    }
    action.request_mirror_policies = f
        .mirrors
        .iter()
        .map(|mirror| route_action::RequestMirrorPolicy {
            cluster: names::cluster(&mirror.cluster),
            runtime_fraction: (mirror.numerator < mirror.denominator).then(|| {
                RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent {
                        numerator: (u64::from(mirror.numerator) * 1_000_000
                            / u64::from(mirror.denominator))
                            as u32,
                        denominator: fractional_percent::DenominatorType::Million as i32,
                    }),
                    ..Default::default()
                }
            }),
            ..Default::default()
        })
        .collect();
    // `request` bounds the whole exchange; `backendRequest` each try (and the whole exchange
    // when `request` is unset).
    if let Some(t) = f.request_timeout.or(f.backend_timeout) {
        action.timeout = Some(duration(t));
    }
    if let Some(retry) = &f.retry {
        let codes = if retry.codes.is_empty() {
            vec![500, 502, 503, 504]
        } else {
            retry.codes.clone()
        };
        action.retry_policy = Some(RetryPolicy {
            retry_on: "connect-failure,refused-stream,retriable-status-codes".into(),
            retriable_status_codes: codes,
            num_retries: Some(UInt32Value {
                value: retry.attempts,
            }),
            per_try_timeout: f.backend_timeout.map(duration),
            retry_back_off: retry.backoff.map(|b| retry_policy::RetryBackOff {
                base_interval: Some(duration(b)),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
}

/// Header modifiers on any route (forwarding, redirect or direct response).
pub fn apply_headers(route: &mut Route, f: &RouteFilters) {
    route.request_headers_to_add = header_options(&f.request_headers);
    route.request_headers_to_remove = f.request_headers.remove.clone();
    route.response_headers_to_add = header_options(&f.response_headers);
    route.response_headers_to_remove = f.response_headers.remove.clone();
}

/// The redirect action of a RequestRedirect filter.
pub fn redirect(r: &Redirect, m: &MatchModel, listener_port: u16) -> RedirectAction {
    use redirect_action::RedirectResponseCode as Code;
    let code = match r.status {
        301 => Code::MovedPermanently,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::Found,
    };
    let path = match &r.path {
        Some(PathRewrite::Full(p)) => Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            p.clone(),
        )),
        Some(PathRewrite::Prefix(replacement)) => matched_prefix(m).map(|prefix| {
            redirect_action::PathRewriteSpecifier::RegexRewrite(prefix_regex(&prefix, replacement))
        }),
        None => None,
    };
    // The spec: with a scheme and no port, the scheme's well-known port (left out of the URL);
    // with neither, the listener's port (80 is http's default, so nothing to add).
    let port = r.port.or(match r.scheme.as_deref() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => (listener_port != 80).then_some(listener_port),
    });
    RedirectAction {
        scheme_rewrite_specifier: r
            .scheme
            .clone()
            .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
        host_redirect: r.hostname.clone().unwrap_or_default(),
        port_redirect: port.map(u32::from).unwrap_or(0),
        path_rewrite_specifier: path,
        response_code: code as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gateway API header values are literal; Envoy reads `%` as a format command and refuses
    /// `100%` outright, so every `%` goes out doubled.
    #[test]
    fn header_values_reach_envoy_as_literals() {
        let edits = HeaderEdits {
            set: vec![("x-a".into(), "100%".into())],
            add: vec![("x-b".into(), "%REQ(x)% %%".into())],
            remove: vec![],
        };
        let values: Vec<String> = header_options(&edits)
            .into_iter()
            .filter_map(|o| o.header.map(|h| h.value))
            .collect();
        assert_eq!(values, ["100%%", "%%REQ(x)%% %%%%"]);
    }

    /// RE2 reads `\1` in a substitution as a backreference.
    #[test]
    fn rewritten_paths_are_literal_substitutions() {
        assert_eq!(full_path_regex("/a\\1").substitution, "/a\\\\1");
        assert_eq!(prefix_regex("/p", "/x\\y").substitution, "/x\\\\y");
        let to_root = prefix_regex("/p.q", "/");
        assert_eq!(
            (
                to_root.pattern.map(|p| p.regex),
                to_root.substitution.as_str()
            ),
            (Some("^/p\\.q/*".to_string()), "/")
        );
    }
}
