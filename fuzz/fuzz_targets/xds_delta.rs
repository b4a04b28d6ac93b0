//! The delta ADS state machine under arbitrary client messages interleaved with snapshot
//! changes: no panic, and every response it emits names a type URL.
#![no_main]

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::google::protobuf::Any;
use gatehouse_xds::delta::DeltaConnection;
use gatehouse_xds::{Snapshot, type_url};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn snapshot(seed: u8) -> Arc<Snapshot> {
    let mut s = Snapshot::new();
    for (i, t) in [type_url::CLUSTER, type_url::ENDPOINT, type_url::LISTENER, type_url::ROUTE]
        .iter()
        .enumerate()
    {
        for n in 0..(seed as usize + i) % 3 {
            s.insert(t, format!("r{n}"), Any { type_url: t.to_string(), value: vec![seed, n as u8] });
        }
    }
    Arc::new(s)
}

fuzz_target!(|data: &[u8]| {
    let mut conn = DeltaConnection::new();
    // Each chunk: one tag byte (even: a request, odd: a new snapshot), a length, a body.
    let mut rest = data;
    while rest.len() >= 2 {
        let (tag, len) = (rest[0], rest[1] as usize);
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        let out = if tag % 2 == 0 {
            match DeltaDiscoveryRequest::decode(body) {
                Ok(req) => conn.on_request(req),
                Err(_) => continue,
            }
        } else {
            conn.on_snapshot(snapshot(tag))
        };
        for r in &out.responses {
            assert!(!r.type_url.is_empty());
        }
    }
});
