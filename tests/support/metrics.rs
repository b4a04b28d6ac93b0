//! Reading the OpenMetrics text of `/metrics`.

/// The value of `sample` in `body`: a whole sample name with its labels
/// (`gatehouse_xds_nacks_total{gateway="ns/gw",type="listener"}`) is looked up as written; a
/// bare metric name is the sum of all its series — 0 for a family that is declared (`# TYPE`)
/// but has no series yet. `None` when the metric is not exported at all.
pub fn sample(body: &str, sample: &str) -> Option<f64> {
    if sample.contains('{') {
        return body
            .lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()));
    }
    let declared = body.lines().any(|l| {
        l.strip_prefix("# TYPE ")
            .and_then(|t| t.split_whitespace().next())
            .is_some_and(|family| sample.starts_with(family))
    });
    let mut found = false;
    let mut sum = 0.0;
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(sample) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            found = true;
            sum += v;
        }
    }
    (found || declared).then_some(sum)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_series_and_reads_one() {
        let body = "# TYPE gatehouse_xds_nacks counter\n\
            gatehouse_xds_nacks_total{gateway=\"a/b\",type=\"route\"} 2\n\
            gatehouse_xds_nacks_total{gateway=\"a/c\",type=\"route\"} 3\n\
            # TYPE gatehouse_leader gauge\n\
            gatehouse_leader 1\n";
        assert_eq!(super::sample(body, "gatehouse_xds_nacks_total"), Some(5.0));
        assert_eq!(
            super::sample(
                body,
                "gatehouse_xds_nacks_total{gateway=\"a/c\",type=\"route\"}"
            ),
            Some(3.0)
        );
        assert_eq!(super::sample(body, "gatehouse_leader"), Some(1.0));
        assert_eq!(super::sample(body, "gatehouse_lead"), None);
        let empty = "# TYPE gatehouse_xds_nacks counter\n";
        assert_eq!(super::sample(empty, "gatehouse_xds_nacks_total"), Some(0.0));
    }
}
