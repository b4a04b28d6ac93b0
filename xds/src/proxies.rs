//! What each connected proxy runs, per group: whether it has accepted everything it was sent.

use std::collections::BTreeMap;
use std::time::Instant;

/// One ADS stream's proxy, as its group's status sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyState {
    pub node: String,
    /// It accepted a response of every type it asked for and has nothing in flight or
    /// rejected: it runs the configuration it was last sent.
    pub settled: bool,
    /// It was settled at least once on this stream (it has a configuration of ours).
    pub ever_settled: bool,
    /// When `settled` last changed (or the stream opened).
    pub since: Instant,
}

/// Proxy states by (group, stream id).
#[derive(Debug, Default)]
pub(crate) struct ProxyTable {
    streams: BTreeMap<(String, u64), ProxyState>,
}

impl ProxyTable {
    /// Records the stream's state after a step; true when what the table says changed.
    pub(crate) fn step(&mut self, group: &str, stream: u64, node: &str, settled: bool) -> bool {
        let key = (group.to_string(), stream);
        match self.streams.get_mut(&key) {
            Some(s) if s.settled == settled => false,
            Some(s) => {
                s.settled = settled;
                s.ever_settled |= settled;
                s.since = Instant::now();
                true
            }
            None => {
                self.streams.insert(
                    key,
                    ProxyState {
                        node: node.to_string(),
                        settled,
                        ever_settled: settled,
                        since: Instant::now(),
                    },
                );
                true
            }
        }
    }

    pub(crate) fn remove(&mut self, group: &str, stream: u64) -> bool {
        self.streams.remove(&(group.to_string(), stream)).is_some()
    }

    pub(crate) fn has_group(&self, group: &str) -> bool {
        self.streams.keys().any(|(g, _)| g == group)
    }

    pub(crate) fn by_group(&self) -> BTreeMap<String, Vec<ProxyState>> {
        let mut out: BTreeMap<String, Vec<ProxyState>> = BTreeMap::new();
        for ((group, _), s) in &self.streams {
            out.entry(group.clone()).or_default().push(s.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_settles_unsettles_and_goes() {
        let mut t = ProxyTable::default();
        assert!(t.step("ns/gw", 1, "n1", false));
        assert!(!t.step("ns/gw", 1, "n1", false), "no change, no news");
        let p = &t.by_group()["ns/gw"][0];
        assert!(!p.settled && !p.ever_settled);
        assert!(t.step("ns/gw", 1, "n1", true));
        assert!(t.step("ns/gw", 1, "n1", false));
        let p = &t.by_group()["ns/gw"][0];
        assert!(!p.settled && p.ever_settled, "{p:?}");
        assert!(t.step("ns/gw", 2, "n2", true));
        assert_eq!(t.by_group()["ns/gw"].len(), 2);
        assert!(t.remove("ns/gw", 1));
        assert!(!t.remove("ns/gw", 1));
        assert_eq!(t.by_group()["ns/gw"][0].node, "n2");
    }
}
