//! Counters for the embedding program's metrics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::order::PUSH_ORDER;

/// Shared by all streams of one server; read it from a metrics exporter.
#[derive(Debug, Default)]
pub struct XdsStats {
    connected: AtomicI64,
    pushes: AtomicU64,
    acks: AtomicU64,
    nacks: AtomicU64,
    refused: AtomicU64,
    /// Indexed like `PUSH_ORDER`, with the last slot for any other type.
    nacks_by_type: [AtomicU64; PUSH_ORDER.len() + 1],
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

    pub fn nacks(&self) -> u64 {
        self.nacks.load(Relaxed)
    }

    /// NACKs of one type; every type outside the four of [`crate::type_url`] shares a
    /// counter.
    pub fn nacks_for(&self, type_url: &str) -> u64 {
        self.nacks_by_type[type_slot(type_url)].load(Relaxed)
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

    pub(crate) fn nacked(&self, type_url: &str) {
        self.nacks.fetch_add(1, Relaxed);
        self.nacks_by_type[type_slot(type_url)].fetch_add(1, Relaxed);
    }
}

fn type_slot(type_url: &str) -> usize {
    PUSH_ORDER
        .iter()
        .position(|t| *t == type_url)
        .unwrap_or(PUSH_ORDER.len())
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
        s.nacked(ROUTE);
        s.nacked("type.googleapis.com/other");
        assert_eq!((s.pushes(), s.acks(), s.nacks()), (1, 1, 2));
        assert_eq!(s.nacks_for(ROUTE), 1);
        assert_eq!(s.nacks_for(LISTENER), 0);
        assert_eq!(s.nacks_for("type.googleapis.com/x"), 1);
    }
}
