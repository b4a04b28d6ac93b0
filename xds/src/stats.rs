//! Counters for the embedding program's metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use tokio::sync::watch;

use crate::proxies::{ProxyState, ProxyTable};

/// A proxy's rejection of the latest response of one type: it keeps its previous config of
/// that type until a later response of the type is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub node: String,
    pub type_url: String,
    /// The version the proxy rejected.
    pub version: String,
    /// Envoy's `error_detail` message.
    pub message: String,
}

/// Shared by all streams of one server; read it from a metrics exporter.
#[derive(Debug, Default)]
pub struct XdsStats {
    connected: AtomicI64,
    pushes: AtomicU64,
    acks: AtomicU64,
    refused: AtomicU64,
    next_stream: AtomicU64,
    /// NACKs by (group, type URL): one counter, summed for totals.
    nacks: Mutex<BTreeMap<(String, String), u64>>,
    /// Current rejections by (group, node, type URL).
    rejected: Mutex<BTreeMap<(String, String, String), Rejection>>,
    proxies: Mutex<ProxyTable>,
    /// The version each group's proxies accepted last, by (group, type URL).
    acked_versions: Mutex<BTreeMap<(String, String), String>>,
    /// Bumped whenever `rejected` or a proxy's state changes, so that a status reporter
    /// reacts at once.
    changes: watch::Sender<u64>,
}

impl XdsStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams currently open with a known group (a gauge).
    pub fn connected(&self) -> i64 {
        self.connected.load(Relaxed)
    }

    /// Responses sent.
    pub fn pushes(&self) -> u64 {
        self.pushes.load(Relaxed)
    }

    pub fn acks(&self) -> u64 {
        self.acks.load(Relaxed)
    }

    /// NACKs of every group and type.
    pub fn nacks(&self) -> u64 {
        self.nack_counts().values().sum()
    }

    /// NACKs of one type, every group.
    pub fn nacks_for(&self, type_url: &str) -> u64 {
        self.nack_counts()
            .iter()
            .filter(|((_, t), _)| t == type_url)
            .map(|(_, n)| n)
            .sum()
    }

    /// NACKs by (group, type URL) since the server started.
    pub fn nack_counts(&self) -> BTreeMap<(String, String), u64> {
        self.nacks.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Each group's connected proxies and whether they run what they were last sent.
    pub fn proxies(&self) -> BTreeMap<String, Vec<ProxyState>> {
        self.proxies
            .lock()
            .map(|t| t.by_group())
            .unwrap_or_default()
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Relaxed)
    }

    pub(crate) fn proxy_step(&self, group: &str, stream: u64, node: &str, settled: bool) {
        let changed = self
            .proxies
            .lock()
            .map(|mut t| t.step(group, stream, node, settled))
            .unwrap_or(false);
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    pub(crate) fn proxy_gone(&self, group: &str, stream: u64) {
        let (changed, group_empty) = self
            .proxies
            .lock()
            .map(|mut t| (t.remove(group, stream), !t.has_group(group)))
            .unwrap_or((false, false));
        // The group's last proxy left: its versions say nothing any more (and a deleted
        // Gateway's series must not stay forever).
        if group_empty && let Ok(mut m) = self.acked_versions.lock() {
            m.retain(|(g, _), _| g != group);
        }
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    /// What each group's proxies currently reject, by group (a rejection clears when the
    /// proxy accepts a later response of that type, or its stream ends).
    pub fn rejections(&self) -> BTreeMap<String, Vec<Rejection>> {
        let mut out: BTreeMap<String, Vec<Rejection>> = BTreeMap::new();
        if let Ok(map) = self.rejected.lock() {
            for ((group, _, _), r) in map.iter() {
                out.entry(group.clone()).or_default().push(r.clone());
            }
        }
        out
    }

    /// Changes whenever [`Self::rejections`] or [`Self::proxies`] does.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn rejected(&self, group: &str, r: Rejection) {
        let key = (group.to_string(), r.node.clone(), r.type_url.clone());
        let changed = self
            .rejected
            .lock()
            .map(|mut m| m.insert(key, r.clone()).as_ref() != Some(&r))
            .unwrap_or(false);
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    /// The version a proxy of each group accepted last, by (group, type URL).
    pub fn acked_versions(&self) -> BTreeMap<(String, String), String> {
        self.acked_versions
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// The proxy accepted `version` of `type_url`.
    pub(crate) fn accepted(&self, group: &str, node: &str, type_url: &str, version: &str) {
        if let Ok(mut m) = self.acked_versions.lock() {
            m.insert(
                (group.to_string(), type_url.to_string()),
                version.to_string(),
            );
        }
        let key = (group.to_string(), node.to_string(), type_url.to_string());
        let changed = self
            .rejected
            .lock()
            .map(|mut m| m.remove(&key).is_some())
            .unwrap_or(false);
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    /// The proxy's stream ended: what it rejected says nothing about its next stream.
    pub(crate) fn forget(&self, group: &str, node: &str) {
        let changed = self
            .rejected
            .lock()
            .map(|mut m| {
                let before = m.len();
                m.retain(|(g, n, _), _| g != group || n != node);
                m.len() != before
            })
            .unwrap_or(false);
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    /// Streams refused by the grouper (unknown node, missing or wrong credential).
    pub fn refusals(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn stream_opened(&self) -> StreamGauge<'_> {
        self.connected.fetch_add(1, Relaxed);
        StreamGauge(self)
    }

    pub(crate) fn pushed(&self) {
        self.pushes.fetch_add(1, Relaxed);
    }

    pub(crate) fn acked(&self) {
        self.acks.fetch_add(1, Relaxed);
    }

    pub(crate) fn nacked(&self, group: &str, type_url: &str) {
        if let Ok(mut m) = self.nacks.lock() {
            *m.entry((group.to_string(), type_url.to_string()))
                .or_default() += 1;
        }
    }
}

/// Decrements the connected gauge however the stream task ends.
pub(crate) struct StreamGauge<'a>(&'a XdsStats);

impl Drop for StreamGauge<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::type_url::{LISTENER, ROUTE};

    #[test]
    fn counters() {
        let s = XdsStats::new();
        {
            let _g = s.stream_opened();
            assert_eq!(s.connected(), 1);
        }
        assert_eq!(s.connected(), 0);
        s.pushed();
        s.acked();
        s.nacked("ns/a", ROUTE);
        s.nacked("ns/b", ROUTE);
        s.nacked("ns/a", "type.googleapis.com/other");
        assert_eq!((s.pushes(), s.acks(), s.nacks()), (1, 1, 3));
        assert_eq!(s.nacks_for(ROUTE), 2);
        assert_eq!(s.nacks_for(LISTENER), 0);
        assert_eq!(s.nack_counts()[&("ns/a".to_string(), ROUTE.to_string())], 1);
    }

    #[test]
    fn rejections_clear_on_ack_and_stream_end() {
        let s = XdsStats::new();
        let mut changes = s.watch_changes();
        let rej = |node: &str, t: &str| Rejection {
            node: node.into(),
            type_url: t.into(),
            version: "v1".into(),
            message: "bad regex".into(),
        };
        s.rejected("ns/gw", rej("n1", ROUTE));
        s.rejected("ns/gw", rej("n2", ROUTE));
        s.rejected("ns/gw", rej("n1", LISTENER));
        assert!(changes.has_changed().unwrap_or(false));
        changes.borrow_and_update();
        assert_eq!(s.rejections()["ns/gw"].len(), 3);
        s.accepted("ns/gw", "n1", ROUTE, "v2");
        assert_eq!(s.rejections()["ns/gw"].len(), 2);
        s.forget("ns/gw", "n1");
        assert_eq!(s.rejections()["ns/gw"], [rej("n2", ROUTE)]);
        assert!(changes.has_changed().unwrap_or(false));
        s.accepted("ns/gw", "n2", ROUTE, "v2");
        assert!(s.rejections().is_empty());
    }
}
