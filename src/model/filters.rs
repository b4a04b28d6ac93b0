//! HTTPRoute rule filters, timeouts and retries, resolved into what the translator needs.
//! Backend-level filters have their own generated types with the same shape; they are read
//! through the rule-level types (a serde round trip) so one conversion serves both.

use std::time::Duration;

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRules, HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters,
    HttpRouteRulesFiltersRequestHeaderModifier, HttpRouteRulesFiltersRequestRedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewritePathType,
};

use super::refs::{self, RefError};
use super::types::{
    ClusterKey, ClusterModel, HeaderEdits, Mirror, PathRewrite, Redirect, Retry, Rewrite,
    RouteFilters,
};
use crate::store::{ObjectRef, Store};

/// What [`rule_filters`] found.
#[derive(Debug, Default)]
pub struct RuleFilters {
    pub filters: RouteFilters,
    pub redirect: Option<Redirect>,
    /// Clusters of mirror backends.
    pub clusters: Vec<ClusterModel>,
    pub error: Option<RefError>,
}

fn edits(m: &HttpRouteRulesFiltersRequestHeaderModifier, into: &mut HeaderEdits) {
    for s in m.set.iter().flatten() {
        into.set
            .push((s.name.to_ascii_lowercase(), s.value.clone()));
    }
    for a in m.add.iter().flatten() {
        into.add
            .push((a.name.to_ascii_lowercase(), a.value.clone()));
    }
    into.remove
        .extend(m.remove.iter().flatten().map(|r| r.to_ascii_lowercase()));
}

/// Reads a filter of another generated type through the rule-level type (same schema).
pub(super) fn as_rule_filter<T: serde::Serialize>(f: &T) -> Option<HttpRouteRulesFilters> {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

fn path_rewrite(
    type_: &HttpRouteRulesFiltersUrlRewritePathType,
    full: &Option<String>,
    prefix: &Option<String>,
) -> Option<PathRewrite> {
    match type_ {
        HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath => {
            full.clone().map(PathRewrite::Full)
        }
        HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch => {
            prefix.clone().map(PathRewrite::Prefix)
        }
    }
}

/// Header edits of one backend's filters (the only backend filters Gatehouse applies).
pub fn backend_header_edits(
    filters: &[HttpRouteRulesBackendRefsFilters],
) -> (HeaderEdits, HeaderEdits) {
    let mut request = HeaderEdits::default();
    let mut response = HeaderEdits::default();
    for f in filters.iter().filter_map(as_rule_filter) {
        apply_header_filter(&f, &mut request, &mut response);
    }
    (request, response)
}

fn apply_header_filter(
    f: &HttpRouteRulesFilters,
    request: &mut HeaderEdits,
    response: &mut HeaderEdits,
) {
    match f.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier => {
            if let Some(m) = &f.request_header_modifier {
                edits(m, request);
            }
        }
        HttpRouteRulesFiltersType::ResponseHeaderModifier => {
            if let Some(m) = f
                .response_header_modifier
                .as_ref()
                .and_then(as_rule_filter_modifier)
            {
                edits(&m, response);
            }
        }
        _ => {}
    }
}

pub(super) fn as_rule_filter_modifier<T: serde::Serialize>(
    m: &T,
) -> Option<HttpRouteRulesFiltersRequestHeaderModifier> {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// The RE2 regex and substitution that replace a matched path prefix (without its trailing
/// slash), segment-aware: `/prefix` → `/` turns `/prefix/a` into `/a` and `/prefix` into `/`,
/// which plain prefix replacement would get wrong (`//a`, ``). Here, not in the translator,
/// because validation must compile the very regex Envoy will (a long prefix makes it too large).
pub fn prefix_rewrite_regex(prefix: &str, replacement: &str) -> (String, String) {
    let replacement = replacement.trim_end_matches('/');
    if replacement.is_empty() {
        (format!("^{}/*", regex_escape(prefix)), "/".to_string())
    } else {
        (
            format!("^{}", regex_escape(prefix)),
            literal_substitution(replacement),
        )
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An RE2 substitution that inserts `s` as written: RE2 reads `\` as the start of a
/// backreference (`\1`), so a path holding one would be rewritten to something else.
pub fn literal_substitution(s: &str) -> String {
    s.replace('\\', "\\\\")
}

/// A Gateway API duration (`1h2m3s4ms`); the CRD validates the format.
fn duration(s: &Option<String>) -> Option<Duration> {
    s.as_deref().and_then(super::validate::parse_duration)
}

/// The filters, timeouts and retry of `rule` of route `route`.
pub fn rule_filters(store: &Store, route: &ObjectRef, rule: &HttpRouteRules) -> RuleFilters {
    let mut out = RuleFilters::default();
    let f = &mut out.filters;
    for filter in rule.filters.iter().flatten() {
        match filter.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier
            | HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                apply_header_filter(filter, &mut f.request_headers, &mut f.response_headers);
            }
            HttpRouteRulesFiltersType::RequestRedirect => {
                let Some(r) = &filter.request_redirect else {
                    continue;
                };
                out.redirect = Some(Redirect {
                    scheme: r.scheme.as_ref().map(|s| match s {
                        HttpRouteRulesFiltersRequestRedirectScheme::Http => "http".to_string(),
                        HttpRouteRulesFiltersRequestRedirectScheme::Https => "https".to_string(),
                    }),
                    hostname: r.hostname.clone(),
                    port: r.port.and_then(|p| u16::try_from(p).ok()),
                    path: r.path.as_ref().and_then(|p| match p.r#type {
                        HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath => {
                            p.replace_full_path.clone().map(PathRewrite::Full)
                        }
                        HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch => {
                            p.replace_prefix_match.clone().map(PathRewrite::Prefix)
                        }
                    }),
                    status: r
                        .status_code
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(302),
                });
            }
            HttpRouteRulesFiltersType::UrlRewrite => {
                let Some(r) = &filter.url_rewrite else {
                    continue;
                };
                f.rewrite = Some(Rewrite {
                    hostname: r.hostname.clone(),
                    path: r.path.as_ref().and_then(|p| {
                        path_rewrite(&p.r#type, &p.replace_full_path, &p.replace_prefix_match)
                    }),
                });
            }
            HttpRouteRulesFiltersType::RequestMirror => {
                let Some(m) = &filter.request_mirror else {
                    continue;
                };
                let b = &m.backend_ref;
                let resolved = refs::resolve_route_backend(store, route, b);
                match resolved {
                    Ok(svc) => {
                        let (numerator, denominator) = match (&m.fraction, m.percent) {
                            (Some(fr), _) => (
                                u32::try_from(fr.numerator).unwrap_or(0),
                                fr.denominator
                                    .and_then(|d| u32::try_from(d).ok())
                                    .unwrap_or(100),
                            ),
                            (None, Some(p)) => (u32::try_from(p).unwrap_or(0), 100),
                            (None, None) => (100, 100),
                        };
                        let cluster = ClusterKey::Backend {
                            service: svc.key.clone(),
                            port: svc.port,
                        };
                        f.mirrors.push(Mirror {
                            cluster: cluster.clone(),
                            numerator,
                            denominator: denominator.max(1),
                        });
                        out.clusters.push(ClusterModel {
                            key: cluster,
                            service: svc.key,
                            port: svc.port,
                            protocol: svc.protocol,
                            endpoints: svc.endpoints,
                            tls: svc.tls,
                        });
                    }
                    Err(e) => {
                        out.error.get_or_insert(e);
                    }
                }
            }
            // ExternalAuth is read by `external_auth`; ExtensionRef and CORS are not served.
            _ => {}
        }
    }
    if let Some(t) = &rule.timeouts {
        f.request_timeout = duration(&t.request);
        f.backend_timeout = duration(&t.backend_request);
    }
    if let Some(r) = &rule.retry {
        f.retry = Some(Retry {
            codes: r
                .codes
                .iter()
                .flatten()
                .filter_map(|c| u32::try_from(*c).ok())
                .collect(),
            attempts: r.attempts.and_then(|a| u32::try_from(a).ok()).unwrap_or(1),
            backoff: duration(&r.backoff),
        });
    }
    out
}
