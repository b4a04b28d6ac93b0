//! Listener × route hostname intersection (Gateway API `hostnames` semantics).

/// True when `host` is covered by the wildcard `pattern` (`*.example.com` covers
/// `a.example.com` and `a.b.example.com`, not `example.com`).
fn wildcard_covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => false,
    }
}

/// The hostnames a route serves on a listener; empty when they do not intersect.
///
/// `listener` is the listener's hostname (`None` = any host); `route` the route's hostnames
/// (empty = any host). The result is the more specific side of each matching pair; `*` stands
/// for "any host".
pub fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let mut out: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec!["*".to_string()],
        (None, false) => route.to_vec(),
        (Some(l), true) => vec![l.to_string()],
        (Some(l), false) => route
            .iter()
            .filter_map(|r| {
                if r == l || wildcard_covers(l, r) {
                    Some(r.clone())
                } else if wildcard_covers(r, l) {
                    Some(l.to_string())
                } else {
                    None
                }
            })
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::intersect;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn intersection_table() {
        let cases: &[(Option<&str>, &[&str], &[&str])] = &[
            (None, &[], &["*"]),
            (None, &["a.com"], &["a.com"]),
            (Some("a.com"), &[], &["a.com"]),
            (Some("a.com"), &["a.com", "b.com"], &["a.com"]),
            (Some("a.com"), &["b.com"], &[]),
            (
                Some("*.example.com"),
                &["www.example.com"],
                &["www.example.com"],
            ),
            (Some("*.example.com"), &["example.com"], &[]),
            (
                Some("www.example.com"),
                &["*.example.com"],
                &["www.example.com"],
            ),
            (
                Some("*.example.com"),
                &["*.foo.example.com"],
                &["*.foo.example.com"],
            ),
            (
                Some("*.foo.example.com"),
                &["*.example.com"],
                &["*.foo.example.com"],
            ),
            (
                Some("*.example.com"),
                &["*.example.com"],
                &["*.example.com"],
            ),
        ];
        for (listener, route, want) in cases {
            assert_eq!(
                intersect(*listener, &s(route)),
                s(want),
                "listener {listener:?} route {route:?}"
            );
        }
    }
}
