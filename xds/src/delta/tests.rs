use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::DeltaConnection;
use crate::event::{Event, Output};
use crate::snapshot::Snapshot;
use crate::testutil::{basic, body, name_tag, node, snap};
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

fn req(t: &str, sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node()),
        type_url: t.to_string(),
        resource_names_subscribe: sub.iter().map(|n| n.to_string()).collect(),
        resource_names_unsubscribe: unsub.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn ack(t: &str, nonce: &str) -> DeltaDiscoveryRequest {
    req(t, &[], &[], nonce)
}

fn nack(t: &str, nonce: &str, msg: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: msg.to_string(),
            details: vec![],
        }),
        ..ack(t, nonce)
    }
}

type Summary = (&'static str, Vec<(String, String)>, Vec<String>);

/// (type, [(name, tag)] sent, removed) of each response.
fn summary(out: &Output<DeltaDiscoveryResponse>) -> Vec<Summary> {
    out.responses
        .iter()
        .map(|r| {
            let sent = r
                .resources
                .iter()
                .map(|res| {
                    let (name, tag) = name_tag(res.resource.as_ref().unwrap());
                    assert_eq!(name, res.name);
                    (name, tag)
                })
                .collect();
            (short(&r.type_url), sent, r.removed_resources.clone())
        })
        .collect()
}

fn short(t: &str) -> &'static str {
    match t {
        CLUSTER => "CDS",
        ENDPOINT => "EDS",
        LISTENER => "LDS",
        ROUTE => "RDS",
        _ => "?",
    }
}

fn sent(t: &'static str, pairs: &[(&str, &str)], removed: &[&str]) -> Summary {
    (
        t,
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        removed.iter().map(|n| n.to_string()).collect(),
    )
}

fn only(out: &Output<DeltaDiscoveryResponse>) -> &DeltaDiscoveryResponse {
    assert_eq!(
        out.responses.len(),
        1,
        "expected one response: {:?}",
        summary(out)
    );
    &out.responses[0]
}

/// Envoy's startup with wildcard CDS/LDS; returns the connection with everything ACKed.
fn handshake(s: Arc<Snapshot>) -> DeltaConnection {
    handshake_on(DeltaConnection::new(), s)
}

fn handshake_on(mut c: DeltaConnection, s: Arc<Snapshot>) -> DeltaConnection {
    assert!(c.on_snapshot(s).responses.is_empty());
    let n = only(&c.on_request(req(CLUSTER, &[], &[], "")))
        .nonce
        .clone();
    assert!(c.on_request(ack(CLUSTER, &n)).responses.is_empty());
    let n = only(&c.on_request(req(ENDPOINT, &["c1"], &[], "")))
        .nonce
        .clone();
    assert!(c.on_request(ack(ENDPOINT, &n)).responses.is_empty());
    let n = only(&c.on_request(req(LISTENER, &["*"], &[], "")))
        .nonce
        .clone();
    assert!(c.on_request(ack(LISTENER, &n)).responses.is_empty());
    let n = only(&c.on_request(req(ROUTE, &["r1"], &[], "")))
        .nonce
        .clone();
    assert!(c.on_request(ack(ROUTE, &n)).responses.is_empty());
    c
}

#[test]
fn unknown_group_waits_for_first_snapshot() {
    let mut c = DeltaConnection::new();
    assert!(
        c.on_request(req(CLUSTER, &[], &[], ""))
            .responses
            .is_empty()
    );
    let out = c.on_snapshot(basic("1"));
    assert_eq!(summary(&out), [sent("CDS", &[("c1", "1")], &[])]);
}

#[test]
fn wildcard_sends_everything_with_versions() {
    let s = snap(&[(CLUSTER, "a", "1"), (CLUSTER, "b", "1")]);
    for first_sub in [&[][..], &["*"][..]] {
        let mut c = DeltaConnection::new();
        c.on_snapshot(s.clone());
        let out = c.on_request(req(CLUSTER, first_sub, &[], ""));
        assert_eq!(summary(&out), [sent("CDS", &[("a", "1"), ("b", "1")], &[])]);
        let r = only(&out);
        assert_eq!(r.system_version_info, s.version(CLUSTER));
        assert_eq!(r.resources[0].version, s.get(CLUSTER, "a").unwrap().version);
    }
}

#[test]
fn empty_wildcard_type_is_answered_once() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "r", "1")]));
    let out = c.on_request(req(LISTENER, &[], &[], ""));
    assert_eq!(summary(&out), [sent("LDS", &[], &[])]);
    let n = out.responses[0].nonce.clone();
    assert!(c.on_request(ack(LISTENER, &n)).responses.is_empty());
}

#[test]
fn ack_and_identical_snapshot_send_nothing() {
    let mut c = handshake(basic("1"));
    assert!(c.on_snapshot(basic("1")).responses.is_empty());
}

#[test]
fn only_changes_are_sent() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[
        (LISTENER, "a", "1"),
        (LISTENER, "b", "1"),
        (LISTENER, "c", "1"),
    ]));
    let n = only(&c.on_request(req(LISTENER, &[], &[], "")))
        .nonce
        .clone();
    let out = c.on_request(ack(LISTENER, &n));
    assert_eq!(
        out.events,
        [Event::Ack {
            type_url: LISTENER.into(),
            version: snap(&[
                (LISTENER, "a", "1"),
                (LISTENER, "b", "1"),
                (LISTENER, "c", "1")
            ])
            .version(LISTENER),
            nonce: n
        }]
    );
    let out = c.on_snapshot(snap(&[
        (LISTENER, "a", "1"),
        (LISTENER, "b", "2"),
        (LISTENER, "d", "1"),
    ]));
    assert_eq!(
        summary(&out),
        [sent("LDS", &[("b", "2"), ("d", "1")], &["c"])]
    );
}

#[test]
fn nack_is_not_resent_until_a_newer_snapshot() {
    let mut c = handshake(basic("1"));
    let mut s2 = (*basic("1")).clone();
    s2.insert(LISTENER, "l1", body(LISTENER, "l1", "bad"));
    let out = c.on_snapshot(Arc::new(s2.clone()));
    assert_eq!(summary(&out), [sent("LDS", &[("l1", "bad")], &[])]);
    let n = out.responses[0].nonce.clone();
    let out = c.on_request(nack(LISTENER, &n, "invalid listener"));
    assert!(out.responses.is_empty());
    assert!(
        matches!(&out.events[..], [Event::Nack { message, .. }] if message == "invalid listener")
    );
    assert!(c.on_snapshot(Arc::new(s2.clone())).responses.is_empty());
    // Another change elsewhere does not drag the rejected listener along.
    s2.insert(ROUTE, "r1", body(ROUTE, "r1", "2"));
    let out = c.on_snapshot(Arc::new(s2.clone()));
    assert_eq!(summary(&out), [sent("RDS", &[("r1", "2")], &[])]);
    // A fixed listener is sent.
    s2.insert(LISTENER, "l1", body(LISTENER, "l1", "good"));
    let out = c.on_snapshot(Arc::new(s2));
    assert_eq!(summary(&out), [sent("LDS", &[("l1", "good")], &[])]);
}

#[test]
fn stale_nonce_acks_nothing_but_subscription_changes_apply() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(ENDPOINT, "a", "1"), (ENDPOINT, "b", "1")]));
    let n1 = only(&c.on_request(req(ENDPOINT, &["a"], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(ENDPOINT, &n1));
    let n2 = only(&c.on_snapshot(snap(&[(ENDPOINT, "a", "2"), (ENDPOINT, "b", "1")])))
        .nonce
        .clone();

    // Sent before the client saw n2: a subscription to b, carrying the old nonce.
    let out = c.on_request(DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus::default()),
        ..req(ENDPOINT, &["b"], &[], &n1)
    });
    assert_eq!(
        out.events,
        [Event::Stale {
            type_url: ENDPOINT.into(),
            nonce: n1
        }]
    );
    assert!(out.responses.is_empty(), "n2 is still in flight");
    let out = c.on_request(ack(ENDPOINT, &n2));
    assert!(matches!(&out.events[..], [Event::Ack { .. }]));
    assert_eq!(summary(&out), [sent("EDS", &[("b", "1")], &[])]);
}

#[test]
fn reconnect_with_known_versions_resends_only_changes() {
    let s = snap(&[
        (CLUSTER, "a", "1"),
        (CLUSTER, "b", "1"),
        (LISTENER, "l", "1"),
    ]);
    let v = |name: &str| s.get(CLUSTER, name).unwrap().version.clone();
    let mut c = DeltaConnection::new();
    c.on_snapshot(s.clone());

    // Everything the client kept is current: nothing to send.
    let initial: HashMap<String, String> =
        [("a".to_string(), v("a")), ("b".to_string(), v("b"))].into();
    let out = c.on_request(DeltaDiscoveryRequest {
        initial_resource_versions: initial,
        ..req(CLUSTER, &["*"], &[], "")
    });
    assert!(out.responses.is_empty(), "{:?}", summary(&out));

    // A new stream whose client has an outdated "a" and a "gone" the snapshot lost.
    let mut c = DeltaConnection::new();
    c.on_snapshot(s.clone());
    let initial: HashMap<String, String> = [
        ("a".to_string(), "0000000000000000".to_string()),
        ("b".to_string(), v("b")),
        ("gone".to_string(), v("b")),
    ]
    .into();
    let out = c.on_request(DeltaDiscoveryRequest {
        initial_resource_versions: initial,
        ..req(CLUSTER, &["*"], &[], "")
    });
    assert_eq!(summary(&out), [sent("CDS", &[("a", "1")], &["gone"])]);
}

#[test]
fn subscribe_and_unsubscribe_by_name() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "r1", "1"), (ROUTE, "r2", "1")]));
    let out = c.on_request(req(ROUTE, &["r1"], &[], ""));
    assert_eq!(summary(&out), [sent("RDS", &[("r1", "1")], &[])]);
    let n = out.responses[0].nonce.clone();
    c.on_request(ack(ROUTE, &n));

    // Adding r2 sends r2 alone.
    let out = c.on_request(req(ROUTE, &["r2"], &[], &n));
    assert_eq!(summary(&out), [sent("RDS", &[("r2", "1")], &[])]);
    let n = out.responses[0].nonce.clone();
    c.on_request(ack(ROUTE, &n));

    // Dropping r1 needs no answer, and its changes are no longer sent.
    assert!(
        c.on_request(req(ROUTE, &[], &["r1"], &n))
            .responses
            .is_empty()
    );
    assert!(
        c.on_snapshot(snap(&[(ROUTE, "r1", "2"), (ROUTE, "r2", "1")]))
            .responses
            .is_empty()
    );
    // Subscribing again sends it again.
    let out = c.on_request(req(ROUTE, &["r1"], &[], &n));
    assert_eq!(summary(&out), [sent("RDS", &[("r1", "2")], &[])]);
}

#[test]
fn absent_name_is_sent_when_it_appears_and_removed_when_it_goes() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "other", "1")]));
    assert!(
        c.on_request(req(ROUTE, &["x"], &[], ""))
            .responses
            .is_empty()
    );
    let out = c.on_snapshot(snap(&[(ROUTE, "other", "1"), (ROUTE, "x", "1")]));
    assert_eq!(summary(&out), [sent("RDS", &[("x", "1")], &[])]);
    let n = out.responses[0].nonce.clone();
    c.on_request(ack(ROUTE, &n));
    let out = c.on_snapshot(snap(&[(ROUTE, "other", "1")]));
    assert_eq!(summary(&out), [sent("RDS", &[], &["x"])]);
}

#[test]
fn unsubscribing_wildcard_keeps_named() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(LISTENER, "a", "1"), (LISTENER, "b", "1")]));
    let n = only(&c.on_request(req(LISTENER, &["*", "a"], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(LISTENER, &n));
    assert!(
        c.on_request(req(LISTENER, &[], &["*"], &n))
            .responses
            .is_empty()
    );
    // b is no longer followed; a is.
    let out = c.on_snapshot(snap(&[(LISTENER, "a", "2"), (LISTENER, "b", "2")]));
    assert_eq!(summary(&out), [sent("LDS", &[("a", "2")], &[])]);
}

#[test]
fn updates_of_existing_resources_go_out_together_in_order() {
    let mut c = handshake(basic("1"));
    let out = c.on_snapshot(basic("2"));
    assert_eq!(
        summary(&out),
        [
            sent("CDS", &[("c1", "2")], &[]),
            sent("EDS", &[("c1", "2")], &[]),
            sent("LDS", &[("l1", "2")], &[]),
            sent("RDS", &[("r1", "2")], &[]),
        ]
    );
}

#[test]
fn make_before_break_across_a_snapshot_change() {
    let mut c = handshake(basic("1"));
    let next = snap(&[
        (CLUSTER, "c2", "1"),
        (ENDPOINT, "c2", "1"),
        (LISTENER, "l1", "2"),
        (ROUTE, "r1", "to-c2"),
    ]);

    // New cluster first; c1 is not removed yet.
    let out = c.on_snapshot(next.clone());
    assert_eq!(summary(&out), [sent("CDS", &[("c2", "1")], &[])]);
    let n = out.responses[0].nonce.clone();
    assert!(c.on_request(ack(CLUSTER, &n)).responses.is_empty());

    // Envoy subscribes to c2's endpoints (its c1 subscription goes with the cluster later).
    let out = c.on_request(req(ENDPOINT, &["c2"], &[], ""));
    assert_eq!(summary(&out), [sent("EDS", &[("c2", "1")], &[])]);
    let n = out.responses[0].nonce.clone();

    // Endpoints ACKed: listener, then route in the same batch (no new names in LDS).
    let out = c.on_request(ack(ENDPOINT, &n));
    assert_eq!(
        summary(&out),
        [
            sent("LDS", &[("l1", "2")], &[]),
            sent("RDS", &[("r1", "to-c2")], &[])
        ]
    );
    let (lds, rds) = (
        out.responses[0].nonce.clone(),
        out.responses[1].nonce.clone(),
    );
    assert!(
        c.on_request(ack(LISTENER, &lds)).responses.is_empty(),
        "route not ACKed yet"
    );

    // Route ACKed: the stale cluster goes.
    let out = c.on_request(ack(ROUTE, &rds));
    assert_eq!(
        summary(&out),
        [sent("CDS", &[], &["c1"]), sent("EDS", &[], &["c1"])]
    );
}

#[test]
fn removal_waits_for_the_grace_period_after_the_route_ack() {
    let grace = std::time::Duration::from_millis(100);
    let mut c = handshake_on(DeltaConnection::with_removal_grace(grace), basic("1"));
    assert_eq!(c.wakeup(), None);
    let next = snap(&[
        (CLUSTER, "c2", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "to-c2"),
    ]);
    let n = only(&c.on_snapshot(next)).nonce.clone();
    let n = only(&c.on_request(ack(CLUSTER, &n))).nonce.clone();
    // Route ACKed: requests it started on c1 may still be in flight, so c1 stays a while.
    let acked = std::time::Instant::now();
    assert!(c.on_request(ack(ROUTE, &n)).responses.is_empty());
    let wakeup = c.wakeup().expect("a removal is held");
    assert!(wakeup >= acked + grace && wakeup <= std::time::Instant::now() + grace);
    assert!(c.on_tick().responses.is_empty(), "too early");
    std::thread::sleep(wakeup.saturating_duration_since(std::time::Instant::now()));
    assert_eq!(
        summary(&c.on_tick()),
        [sent("CDS", &[], &["c1"]), sent("EDS", &[], &["c1"])]
    );
    assert_eq!(c.wakeup(), None);
}

#[test]
fn route_nack_holds_cluster_removal() {
    let mut c = handshake(basic("1"));
    let next = snap(&[
        (CLUSTER, "c2", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "to-c2"),
    ]);
    let n = only(&c.on_snapshot(next)).nonce.clone();
    // c2 is not an EDS cluster with endpoints in the snapshot: nothing to wait for.
    let out = c.on_request(ack(CLUSTER, &n));
    assert_eq!(summary(&out), [sent("RDS", &[("r1", "to-c2")], &[])]);
    let n = out.responses[0].nonce.clone();
    let out = c.on_request(nack(ROUTE, &n, "no"));
    assert!(out.responses.is_empty(), "{:?}", summary(&out));

    let fixed = snap(&[
        (CLUSTER, "c2", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "fixed"),
    ]);
    let n = only(&c.on_snapshot(fixed)).nonce.clone();
    let out = c.on_request(ack(ROUTE, &n));
    assert_eq!(
        summary(&out),
        [sent("CDS", &[], &["c1"]), sent("EDS", &[], &["c1"])]
    );
}

#[test]
fn nonce_from_an_earlier_stream_is_a_fresh_subscription() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(basic("1"));
    let out = c.on_request(req(CLUSTER, &["*"], &[], "41"));
    assert!(out.events.is_empty());
    assert_eq!(summary(&out), [sent("CDS", &[("c1", "1")], &[])]);
}

#[test]
fn unsubscribing_a_name_the_wildcard_covers_resends_it() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(LISTENER, "a", "1"), (LISTENER, "b", "1")]));
    let n = only(&c.on_request(req(LISTENER, &["*", "a"], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(LISTENER, &n));
    // The client drops "a" from its cache, but the wildcard still wants it.
    let out = c.on_request(req(LISTENER, &[], &["a"], &n));
    assert_eq!(summary(&out), [sent("LDS", &[("a", "1")], &[])]);
}

#[test]
fn resubscribing_an_unchanged_name_resends_it() {
    let mut c = DeltaConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "r1", "1")]));
    let n = only(&c.on_request(req(ROUTE, &["r1"], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(ROUTE, &n));
    assert!(
        c.on_request(req(ROUTE, &[], &["r1"], &n))
            .responses
            .is_empty()
    );
    let out = c.on_request(req(ROUTE, &["r1"], &[], &n));
    assert_eq!(summary(&out), [sent("RDS", &[("r1", "1")], &[])]);
}

/// Envoy's own sequence: it asks for a new cluster's endpoints while the cluster warms and
/// ACKs the clusters only after warming, so endpoints must not wait for that ACK.
#[test]
fn new_cluster_endpoints_go_out_before_the_cluster_ack() {
    let mut c = handshake(basic("1"));
    let next = snap(&[
        (CLUSTER, "c1", "1"),
        (CLUSTER, "auth", "1"),
        (ENDPOINT, "c1", "1"),
        (ENDPOINT, "auth", "1"),
        (LISTENER, "l1", "with-auth"),
        (ROUTE, "r1", "with-auth"),
    ]);
    let out = c.on_snapshot(next);
    assert_eq!(summary(&out), [sent("CDS", &[("auth", "1")], &[])]);
    let cds = out.responses[0].nonce.clone();

    // No CDS ACK yet: Envoy subscribes to the warming cluster's endpoints first.
    let out = c.on_request(req(ENDPOINT, &["auth"], &[], ""));
    assert_eq!(summary(&out), [sent("EDS", &[("auth", "1")], &[])]);
    let eds = out.responses[0].nonce.clone();
    assert!(
        c.on_request(ack(ENDPOINT, &eds)).responses.is_empty(),
        "listeners wait for the cluster ACK"
    );

    // Warm: the cluster ACK releases listener and route.
    let out = c.on_request(ack(CLUSTER, &cds));
    assert_eq!(
        summary(&out),
        [
            sent("LDS", &[("l1", "with-auth")], &[]),
            sent("RDS", &[("r1", "with-auth")], &[])
        ]
    );
}

/// The merge walk of `compute_due` against the plain definition (a lookup per name), over
/// every mix of snapshot names, held versions, subscriptions and held removals that a
/// small pseudo-random generator produces.
#[test]
fn due_by_merge_walk_equals_due_by_lookup() {
    use std::collections::{BTreeMap, BTreeSet};

    use super::TypeState;

    const POOL: [&str; 7] = ["a", "a/b", "ab", "b", "http-1/x", "http-1/y", "z"];
    let seed = std::cell::Cell::new(0x9e37_79b9_7f4a_7c15_u64);
    let next = |n: u64| {
        let mut x = seed.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seed.set(x);
        x % n
    };
    for _ in 0..2_000 {
        let items: Vec<(&str, &str, String)> = POOL
            .iter()
            .filter(|_| next(3) > 0)
            .map(|n| (ROUTE, *n, format!("v{}", next(2))))
            .collect();
        let borrowed: Vec<(&str, &str, &str)> =
            items.iter().map(|(t, n, v)| (*t, *n, v.as_str())).collect();
        let s = snap(&borrowed);
        let st = TypeState {
            wildcard: next(2) == 0,
            names: POOL
                .iter()
                .filter(|_| next(2) == 0)
                .map(|n| n.to_string())
                .collect::<BTreeSet<_>>(),
            client_has: POOL
                .iter()
                .filter(|_| next(2) == 0)
                .map(|n| {
                    let version = match s.get(ROUTE, n) {
                        Some(r) if next(2) == 0 => r.version.clone(),
                        _ => format!("old{}", next(2)),
                    };
                    (n.to_string(), version)
                })
                .collect::<BTreeMap<_, _>>(),
            owe_response: next(4) == 0,
            ..Default::default()
        };
        let hold = next(2) == 0;

        let changed =
            |r: &&Arc<crate::resource::Resource>| st.client_has.get(&r.name) != Some(&r.version);
        let want: Vec<String> = s
            .resources(ROUTE)
            .filter(|r| st.wildcard || st.names.contains(&r.name))
            .filter(changed)
            .map(|r| r.name.clone())
            .collect();
        let want_removed: Vec<String> = st
            .client_has
            .keys()
            .filter(|n| !hold && s.get(ROUTE, n).is_none())
            .cloned()
            .collect();
        let want_adds = want.iter().any(|n| !st.client_has.contains_key(n));

        let due = DeltaConnection::compute_due(&st, ROUTE, &s, |_| !hold);
        if want.is_empty() && want_removed.is_empty() && !st.owe_response {
            assert!(due.is_none(), "{items:?}");
            continue;
        }
        let due = due.expect("something is due");
        let got: Vec<String> = due.resources.iter().map(|r| r.name.clone()).collect();
        assert_eq!(got, want, "{items:?}");
        assert_eq!(due.removed, want_removed, "{items:?}");
        assert_eq!(due.adds, want_adds, "{items:?}");
    }
}

/// Envoy warms a changed cluster anew and waits for its endpoints (15 s, then without them)
/// even when they did not change: they go out again after the cluster.
#[test]
fn a_changed_cluster_gets_its_unchanged_endpoints_again() {
    let mut c = handshake(basic("1"));
    let s2 = snap(&[
        (CLUSTER, "c1", "2"),
        (ENDPOINT, "c1", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "1"),
    ]);
    let out = c.on_snapshot(s2.clone());
    assert_eq!(
        summary(&out),
        [
            sent("CDS", &[("c1", "2")], &[]),
            sent("EDS", &[("c1", "1")], &[])
        ]
    );
    // An unchanged cluster does not resend its endpoints.
    let nonces: Vec<String> = out.responses.iter().map(|r| r.nonce.clone()).collect();
    c.on_request(ack(CLUSTER, &nonces[0]));
    c.on_request(ack(ENDPOINT, &nonces[1]));
    let mut s3 = (*s2).clone();
    s3.insert(LISTENER, "l1", body(LISTENER, "l1", "2"));
    assert_eq!(
        summary(&c.on_snapshot(Arc::new(s3))),
        [sent("LDS", &[("l1", "2")], &[])]
    );
}

/// `settled` says whether the client runs the current snapshot: a reconnect that already
/// holds it is settled without a response; a change is unsettled until ACKed; a NACK and a
/// response held back by the ordering are unsettled; a held removal is not.
#[test]
fn settled_follows_what_the_client_runs() {
    let s = snap(&[(CLUSTER, "a", "1"), (LISTENER, "l", "1")]);
    let mut c = DeltaConnection::new();
    assert!(!c.settled(), "nothing subscribed, no snapshot");
    c.on_snapshot(s.clone());
    let version = |t: &str, n: &str| s.get(t, n).unwrap().version.clone();
    // A reconnect holding everything current: settled with no response at all.
    let out = c.on_request(DeltaDiscoveryRequest {
        initial_resource_versions: [("a".to_string(), version(CLUSTER, "a"))].into(),
        ..req(CLUSTER, &["*"], &[], "")
    });
    assert!(out.responses.is_empty());
    let out = c.on_request(DeltaDiscoveryRequest {
        initial_resource_versions: [("l".to_string(), version(LISTENER, "l"))].into(),
        ..req(LISTENER, &["*"], &[], "")
    });
    assert!(out.responses.is_empty());
    assert!(
        c.settled(),
        "a reconnect with current versions runs the snapshot"
    );

    // A change: unsettled while in flight, settled once ACKed.
    let n = only(&c.on_snapshot(snap(&[(CLUSTER, "a", "2"), (LISTENER, "l", "1")])))
        .nonce
        .clone();
    assert!(!c.settled());
    assert!(c.on_request(ack(CLUSTER, &n)).responses.is_empty());
    assert!(c.settled());

    // Rejected: unsettled until a later snapshot is accepted.
    let n = only(&c.on_snapshot(snap(&[(CLUSTER, "a", "3"), (LISTENER, "l", "1")])))
        .nonce
        .clone();
    c.on_request(nack(CLUSTER, &n, "bad"));
    assert!(!c.settled(), "a rejected update is not run");

    // The routes of a fresh handshake wait on the listener ACK: not settled meanwhile.
    let mut c = DeltaConnection::new();
    c.on_snapshot(basic("1"));
    let n = only(&c.on_request(req(CLUSTER, &[], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(CLUSTER, &n));
    let n = only(&c.on_request(req(ENDPOINT, &["c1"], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(ENDPOINT, &n));
    let n = only(&c.on_request(req(LISTENER, &["*"], &[], "")))
        .nonce
        .clone();
    c.on_request(ack(LISTENER, &n));
    c.on_request(req(ROUTE, &["r1"], &[], ""));
    assert!(!c.settled(), "the route is in flight");

    // A removal held for the grace period does not unsettle the client.
    let grace = std::time::Duration::from_secs(60);
    let mut c = handshake_on(DeltaConnection::with_removal_grace(grace), basic("1"));
    assert!(c.settled());
    let next = snap(&[
        (CLUSTER, "c2", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "to-c2"),
    ]);
    let n = only(&c.on_snapshot(next)).nonce.clone();
    let n = only(&c.on_request(ack(CLUSTER, &n))).nonce.clone();
    assert!(c.on_request(ack(ROUTE, &n)).responses.is_empty());
    assert!(c.wakeup().is_some(), "c1's removal is held");
    assert!(c.settled(), "a held removal is not a lagging proxy");
}
