//! HTTPRoute values checked against Envoy (see `validate`). A match Envoy cannot take is never
//! emitted: a broader stand-in answering 500 takes its place; any other invalid value makes its
//! rule answer 500 for its matches, as Gateway API prescribes for a rule whose filters cannot be
//! honoured.

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRules, HttpRouteRulesFilters, HttpRouteRulesFiltersRequestHeaderModifier,
    HttpRouteRulesFiltersRequestRedirectPathType as RedirectPathType, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewritePathType as RewritePathType, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeadersType as HeaderType, HttpRouteRulesMatchesPathType as PathType,
    HttpRouteRulesMatchesQueryParamsType as QueryType,
};

use super::filters::{as_rule_filter, as_rule_filter_modifier, prefix_rewrite_regex};
use super::re2;
use super::types::{MatchModel, PathMatch, ValueMatch};
use super::validate::{self, MAX_REGEX_PROGRAM_SIZE, Problem, Problems, show};

/// What is wrong with one rule.
#[derive(Debug, Default)]
pub struct RuleCheck {
    /// Indices of matches whose own values Envoy refuses: each is replaced by its
    /// [`fail_closed_stand_in`].
    pub bad_matches: Vec<usize>,
    /// Every problem of the rule, matches included.
    pub problems: Vec<Problem>,
}

/// Checks rule `index` of a route.
pub fn rule(index: usize, rule: &HttpRouteRules) -> RuleCheck {
    let base = format!("spec.rules[{index}]");
    let mut p = Problems::default();
    let mut bad_matches = Vec::new();
    // Prefixes (without trailing slash) a ReplacePrefixMatch would replace.
    let mut prefixes = Vec::new();
    let matches = rule.matches.as_deref().unwrap_or_default();
    for (i, m) in matches.iter().enumerate() {
        let before = p.0.len();
        match_values(&mut p, &format!("{base}.matches[{i}]"), m);
        if p.0.len() > before {
            bad_matches.push(i);
        } else if let Some(prefix) = matched_prefix(m) {
            prefixes.push(prefix);
        }
    }
    if matches.is_empty() {
        prefixes.push(String::new());
    }
    for (i, f) in rule.filters.iter().flatten().enumerate() {
        filter(&mut p, &format!("{base}.filters[{i}]"), f, &prefixes);
    }
    let mut weights: u64 = 0;
    for (i, b) in rule.backend_refs.iter().flatten().enumerate() {
        weights += u64::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        for (j, f) in b.filters.iter().flatten().enumerate() {
            let field = format!("{base}.backendRefs[{i}].filters[{j}]");
            match as_rule_filter(f) {
                Some(f)
                    if matches!(
                        f.r#type,
                        HttpRouteRulesFiltersType::RequestHeaderModifier
                            | HttpRouteRulesFiltersType::ResponseHeaderModifier
                    ) =>
                {
                    header_filter(&mut p, &field, &f)
                }
                // Only header modifiers are served per backend.
                Some(f) => unsupported(&mut p, &field, &f),
                None => p.add(format!("{field}.type"), "a filter Gatehouse cannot read"),
            }
        }
    }
    if weights > u64::from(u32::MAX) {
        p.add(
            format!("{base}.backendRefs"),
            format!(
                "weights add up to {weights}, more than the {} Envoy allows",
                u32::MAX
            ),
        );
    }
    if let Some(t) = &rule.timeouts {
        if let Some(v) = &t.request {
            validate::duration(&mut p, &format!("{base}.timeouts.request"), v, false);
        }
        if let Some(v) = &t.backend_request {
            validate::duration(&mut p, &format!("{base}.timeouts.backendRequest"), v, false);
        }
    }
    if let Some(v) = rule.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
        validate::duration(&mut p, &format!("{base}.retry.backoff"), v, true);
    }
    RuleCheck {
        bad_matches,
        problems: p.0,
    }
}

/// The route's hostnames; any invalid one keeps the whole route off the Gateway.
pub fn hostnames(hostnames: &[String]) -> Vec<Problem> {
    let mut p = Problems::default();
    for (i, h) in hostnames.iter().enumerate() {
        validate::hostname(&mut p, &format!("spec.hostnames[{i}]"), h, true);
    }
    p.0
}

/// The prefix a PathPrefix match matches, as the translator uses it.
fn matched_prefix(m: &HttpRouteRulesMatches) -> Option<String> {
    let Some(path) = &m.path else {
        return Some(String::new());
    };
    match path.r#type.clone().unwrap_or(PathType::PathPrefix) {
        PathType::PathPrefix => Some(
            path.value
                .as_deref()
                .unwrap_or("/")
                .trim_end_matches('/')
                .to_string(),
        ),
        _ => None,
    }
}

fn match_values(p: &mut Problems, base: &str, m: &HttpRouteRulesMatches) {
    if let Some(path) = &m.path {
        let field = format!("{base}.path.value");
        let value = path.value.as_deref().unwrap_or("/");
        match path.r#type.clone().unwrap_or(PathType::PathPrefix) {
            PathType::Exact => validate::path(p, &field, value),
            PathType::PathPrefix => {
                validate::path(p, &field, value);
                // Envoy's `path_separated_prefix` pattern is `^[^?#]+[^?#/]$`.
                if value.contains(['?', '#']) {
                    p.add(field, "a path prefix must not contain '?' or '#'");
                }
            }
            PathType::RegularExpression => validate::regex(p, &field, value),
        }
    }
    for (i, h) in m.headers.iter().flatten().enumerate() {
        validate::header_name(p, &format!("{base}.headers[{i}].name"), &h.name);
        if matches!(h.r#type, Some(HeaderType::RegularExpression)) {
            validate::regex(p, &format!("{base}.headers[{i}].value"), &h.value);
        }
    }
    for (i, q) in m.query_params.iter().flatten().enumerate() {
        validate::header_name(p, &format!("{base}.queryParams[{i}].name"), &q.name);
        if matches!(q.r#type, Some(QueryType::RegularExpression)) {
            validate::regex(p, &format!("{base}.queryParams[{i}].value"), &q.value);
        }
    }
}

fn filter(p: &mut Problems, base: &str, f: &HttpRouteRulesFilters, prefixes: &[String]) {
    match f.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier
        | HttpRouteRulesFiltersType::ResponseHeaderModifier => header_filter(p, base, f),
        HttpRouteRulesFiltersType::RequestRedirect => {
            let Some(r) = &f.request_redirect else { return };
            let base = format!("{base}.requestRedirect");
            if let Some(h) = &r.hostname {
                validate::hostname(p, &format!("{base}.hostname"), h, false);
            }
            if let Some(port) = r.port.filter(|port| !(1..=65535).contains(port)) {
                p.add(format!("{base}.port"), format!("{port} is not a port"));
            }
            if let Some(code) = r
                .status_code
                .filter(|c| ![301, 302, 303, 307, 308].contains(c))
            {
                p.add(
                    format!("{base}.statusCode"),
                    format!("{code} is not a redirect status Gateway API allows (301, 302, 303, 307, 308)"),
                );
            }
            if let Some(path) = &r.path {
                let (full, prefix) = match path.r#type {
                    RedirectPathType::ReplaceFullPath => (path.replace_full_path.as_deref(), None),
                    RedirectPathType::ReplacePrefixMatch => {
                        (None, path.replace_prefix_match.as_deref())
                    }
                };
                path_modifier(p, &format!("{base}.path"), full, prefix, prefixes);
            }
        }
        HttpRouteRulesFiltersType::UrlRewrite => {
            let Some(r) = &f.url_rewrite else { return };
            let base = format!("{base}.urlRewrite");
            if let Some(h) = &r.hostname {
                validate::hostname(p, &format!("{base}.hostname"), h, false);
            }
            if let Some(path) = &r.path {
                let (full, prefix) = match path.r#type {
                    RewritePathType::ReplaceFullPath => (path.replace_full_path.as_deref(), None),
                    RewritePathType::ReplacePrefixMatch => {
                        (None, path.replace_prefix_match.as_deref())
                    }
                };
                path_modifier(p, &format!("{base}.path"), full, prefix, prefixes);
            }
        }
        // Served elsewhere: mirrors by `filters`, ExternalAuth by `external_auth`.
        HttpRouteRulesFiltersType::RequestMirror | HttpRouteRulesFiltersType::ExternalAuth => {}
        // A TrafficPolicy named here attaches to the rule (`policy::extension_refs`).
        HttpRouteRulesFiltersType::ExtensionRef
            if f.extension_ref
                .as_ref()
                .is_some_and(|r| super::policy::is_policy_ref(&r.group, &r.kind)) => {}
        HttpRouteRulesFiltersType::ExtensionRef | HttpRouteRulesFiltersType::Cors => {
            unsupported(p, base, f)
        }
    }
}

/// Gateway API: a filter that cannot be honoured must not be skipped; the rule answers 500 and
/// the route's status says why (an ExtensionRef could be the policy that protects the rule).
fn unsupported(p: &mut Problems, base: &str, f: &HttpRouteRulesFilters) {
    let what = match (&f.r#type, &f.extension_ref) {
        (HttpRouteRulesFiltersType::ExtensionRef, Some(r)) => {
            format!("ExtensionRef to {}/{} {:?}", r.group, r.kind, r.name)
        }
        (HttpRouteRulesFiltersType::ExtensionRef, None) => "ExtensionRef".to_string(),
        (HttpRouteRulesFiltersType::Cors, _) => "CORS".to_string(),
        (other, _) => format!("{other:?}"),
    };
    p.add(
        format!("{base}.type"),
        format!(
            "{what} is not supported by Gatehouse: the rule answers 500 rather than run without it"
        ),
    );
}

/// A redirect's or rewrite's new path. A prefix replacement becomes a regex built from each
/// PathPrefix match of the rule, which Envoy compiles: a long prefix makes it too large.
fn path_modifier(
    p: &mut Problems,
    base: &str,
    full: Option<&str>,
    prefix: Option<&str>,
    prefixes: &[String],
) {
    if let Some(v) = full {
        path_value(p, &format!("{base}.replaceFullPath"), v);
    }
    let Some(replacement) = prefix else { return };
    let field = format!("{base}.replacePrefixMatch");
    if !path_value(p, &field, replacement) {
        return;
    }
    for prefix in prefixes {
        let (pattern, _) = prefix_rewrite_regex(prefix, replacement);
        match re2::program_size(&pattern) {
            Err(e) => p.add(
                &field,
                format!("replacing the path prefix {} needs a regex RE2 refuses: {e}", show(prefix)),
            ),
            Ok(size) if size > MAX_REGEX_PROGRAM_SIZE => p.add(
                &field,
                format!(
                    "replacing the path prefix {} needs a regex of RE2 program size {size}, over the {MAX_REGEX_PROGRAM_SIZE} Envoy allows: use a shorter PathPrefix (about 90 characters) or ReplaceFullPath",
                    show(prefix)
                ),
            ),
            Ok(_) => {}
        }
    }
}

/// A path a filter writes: one line, of Gateway API length (its CRD asks for no leading '/').
fn path_value(p: &mut Problems, field: &str, value: &str) -> bool {
    if value.len() > 1024 {
        p.add(field, "longer than 1024 characters");
        return false;
    }
    validate::no_line_breaks(p, field, value)
}

fn header_filter(p: &mut Problems, base: &str, f: &HttpRouteRulesFilters) {
    match f.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier => {
            if let Some(m) = &f.request_header_modifier {
                header_modifier(p, &format!("{base}.requestHeaderModifier"), m);
            }
        }
        HttpRouteRulesFiltersType::ResponseHeaderModifier => {
            if let Some(m) = f
                .response_header_modifier
                .as_ref()
                .and_then(as_rule_filter_modifier)
            {
                header_modifier(p, &format!("{base}.responseHeaderModifier"), &m);
            }
        }
        _ => {}
    }
}

fn header_modifier(p: &mut Problems, base: &str, m: &HttpRouteRulesFiltersRequestHeaderModifier) {
    let set = m.set.iter().flatten().map(|h| (&h.name, &h.value));
    let add = m.add.iter().flatten().map(|h| (&h.name, &h.value));
    for (list, headers) in [("set", set.collect::<Vec<_>>()), ("add", add.collect())] {
        for (i, (name, value)) in headers.into_iter().enumerate() {
            let field = format!("{base}.{list}[{i}].name");
            if validate::header_name(p, &field, name) {
                validate::mutable_header(p, &field, name);
            }
            validate::literal_header_value(p, &format!("{base}.{list}[{i}].value"), value);
        }
    }
    for (i, name) in m.remove.iter().flatten().enumerate() {
        let field = format!("{base}.remove[{i}]");
        if validate::header_name(p, &field, name) {
            validate::mutable_header(p, &field, name);
        }
    }
}

/// The stand-in for a match Envoy cannot take: it answers 500 where the match stood (same
/// precedence), and matches at least every request the original could have — its regex path
/// becomes "its literal prefix, then anything", its invalid header and query conditions are
/// dropped. Leaving the match out instead would let those requests fall through to a less
/// specific, possibly unprotected rule (docs/security-model.md).
/// `None` when the match can match no request at all (an exact or prefix path no request path
/// can have: with `?`, `#`, CR, LF or NUL), so leaving it out changes nothing.
pub fn fail_closed_stand_in(m: &MatchModel) -> Option<MatchModel> {
    let valid_regex = |pattern: &str| {
        let mut p = Problems::default();
        validate::regex(&mut p, "", pattern);
        p.0.is_empty()
    };
    let path = match &m.path {
        PathMatch::Regex(r) if !valid_regex(r) => PathMatch::Regex(stand_in_regex(r)),
        PathMatch::Exact(v) | PathMatch::Prefix(v) if v.contains(['?', '#', '\r', '\n', '\0']) => {
            return None;
        }
        other => other.clone(),
    };
    let keep = |v: &ValueMatch| {
        validate::header_name(&mut Problems::default(), "", &v.name)
            && (!v.regex || valid_regex(&v.value))
    };
    Some(MatchModel {
        path,
        method: m.method.clone(),
        headers: m.headers.iter().filter(|v| keep(v)).cloned().collect(),
        query: m.query.iter().filter(|v| keep(v)).cloned().collect(),
    })
}

/// "The literal prefix of `pattern`, then anything", shortened until Envoy takes it (a long
/// literal is a large RE2 program too); `.*` at worst.
fn stand_in_regex(pattern: &str) -> String {
    let mut prefix = literal_prefix(pattern);
    loop {
        let candidate = format!("{}.*", re2_escape(&prefix));
        let fits = re2::program_size(&candidate).is_ok_and(|size| size <= MAX_REGEX_PROGRAM_SIZE);
        if fits || prefix.is_empty() {
            return candidate;
        }
        // A shorter prefix still covers every path the original matched.
        let keep = prefix.len() / 2;
        prefix.truncate(keep);
    }
}

/// The literal text every full match of `pattern` starts with (conservatively short): none
/// when the pattern has an alternation at its top level, a leading `^` skipped, and the last
/// literal dropped when a quantifier follows it.
fn literal_prefix(pattern: &str) -> String {
    if top_level_alternation(pattern) {
        return String::new();
    }
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '~' | '%' | ':' | '@')) {
            break;
        }
        if chars
            .peek()
            .is_some_and(|n| matches!(n, '?' | '*' | '+' | '{'))
        {
            break;
        }
        out.push(c);
    }
    out
}

/// Whether `pattern` has a `|` outside every group and character class.
fn top_level_alternation(pattern: &str) -> bool {
    let (mut depth, mut class, mut escaped) = (0usize, false, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !class => class = true,
            ']' if class => class = false,
            _ if class => {}
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// `text` as an RE2 literal.
fn re2_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = !c.is_ascii_alphanumeric() && c != '/' && c != '_';
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
