//! Gateway API matches → [`MatchModel`], and the precedence order between them.

use std::cmp::Ordering;

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType as HeaderType,
    HttpRouteRulesMatchesPathType as PathType, HttpRouteRulesMatchesQueryParamsType as QueryType,
};

use super::types::{MatchModel, PathMatch, RouteModel, ValueMatch};

/// The matches of a rule; a rule without matches matches every request (prefix `/`).
pub fn rule_matches(matches: Option<&Vec<HttpRouteRulesMatches>>) -> Vec<MatchModel> {
    match matches {
        Some(list) if !list.is_empty() => list.iter().map(convert).collect(),
        _ => vec![MatchModel {
            path: PathMatch::Prefix("/".into()),
            method: None,
            headers: vec![],
            query: vec![],
        }],
    }
}

fn convert(m: &HttpRouteRulesMatches) -> MatchModel {
    let path = match &m.path {
        None => PathMatch::Prefix("/".into()),
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".into());
            match p.r#type.clone().unwrap_or(PathType::PathPrefix) {
                PathType::Exact => PathMatch::Exact(value),
                PathType::PathPrefix => PathMatch::Prefix(value),
                PathType::RegularExpression => PathMatch::Regex(value),
            }
        }
    };
    let headers = m
        .headers
        .iter()
        .flatten()
        .map(|h| ValueMatch {
            name: h.name.to_ascii_lowercase(),
            value: h.value.clone(),
            regex: matches!(h.r#type, Some(HeaderType::RegularExpression)),
        })
        .collect();
    let query = m
        .query_params
        .iter()
        .flatten()
        .map(|q| ValueMatch {
            name: q.name.clone(),
            value: q.value.clone(),
            regex: matches!(q.r#type, Some(QueryType::RegularExpression)),
        })
        .collect();
    let method = m.method.as_ref().and_then(|v| {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    });
    MatchModel {
        path,
        method,
        headers,
        query,
    }
}

/// Rank of a path match: exact first, then regular expressions, then prefixes; longer first.
fn path_rank(p: &PathMatch) -> (u8, std::cmp::Reverse<usize>) {
    match p {
        PathMatch::Exact(v) => (0, std::cmp::Reverse(v.len())),
        PathMatch::Regex(v) => (1, std::cmp::Reverse(v.len())),
        PathMatch::Prefix(v) => (2, std::cmp::Reverse(v.trim_end_matches('/').len())),
    }
}

/// Gateway API precedence: path, method, most headers, most query params, then the oldest
/// route, its namespace/name, and the rule and match order within it. Between two GRPCRoute
/// matches, GRPCRoute's: service, method, headers, then the same tie-breaks.
pub fn precedence(
    (ra, created_a): (&RouteModel, &str),
    (rb, created_b): (&RouteModel, &str),
) -> Ordering {
    let (a, b) = (ra.rank_match(), rb.rank_match());
    if let (Some(ga), Some(gb)) = (ra.grpc_rank, rb.grpc_rank) {
        // GRPCRoute (v1.5.1): the service, then the method (see `GrpcRank`), then most
        // header matches.
        return gb
            .cmp(&ga)
            .then_with(|| b.headers.len().cmp(&a.headers.len()))
            .then_with(|| created_a.cmp(created_b))
            .then_with(|| ra.route.key.cmp(&rb.route.key))
            .then_with(|| ra.rule_index.cmp(&rb.rule_index))
            .then_with(|| ra.match_index.cmp(&rb.match_index));
    }
    path_rank(&a.path)
        .cmp(&path_rank(&b.path))
        .then_with(|| b.method.is_some().cmp(&a.method.is_some()))
        .then_with(|| b.headers.len().cmp(&a.headers.len()))
        .then_with(|| b.query.len().cmp(&a.query.len()))
        .then_with(|| created_a.cmp(created_b))
        .then_with(|| ra.route.key.cmp(&rb.route.key))
        .then_with(|| ra.route.kind.cmp(&rb.route.kind))
        .then_with(|| ra.rule_index.cmp(&rb.rule_index))
        .then_with(|| ra.match_index.cmp(&rb.match_index))
}
