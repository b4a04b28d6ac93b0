use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::SotwConnection;
use crate::event::{Event, Output};
use crate::snapshot::Snapshot;
use crate::testutil::{basic, name_tag, node, snap};
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

fn req(t: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(node()),
        type_url: t.to_string(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn nack(t: &str, names: &[&str], nonce: &str, msg: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: msg.to_string(),
            details: vec![],
        }),
        ..req(t, names, nonce)
    }
}

/// (type, [(name, tag)]) of each response, for compact assertions.
fn summary(out: &Output<DiscoveryResponse>) -> Vec<(&str, Vec<(String, String)>)> {
    out.responses
        .iter()
        .map(|r| {
            (
                short(&r.type_url),
                r.resources.iter().map(name_tag).collect(),
            )
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

fn nt(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

fn only(out: &Output<DiscoveryResponse>) -> &DiscoveryResponse {
    assert_eq!(
        out.responses.len(),
        1,
        "expected one response: {:?}",
        summary(out)
    );
    &out.responses[0]
}

fn acks(out: &Output<DiscoveryResponse>) -> usize {
    out.events
        .iter()
        .filter(|e| matches!(e, Event::Ack { .. }))
        .count()
}

/// Plays Envoy's startup: CDS, EDS for the clusters, LDS, RDS, each ACKed. Returns the
/// latest nonce per type (CDS, EDS, LDS, RDS).
fn handshake(c: &mut SotwConnection, s: Arc<Snapshot>) -> [String; 4] {
    assert!(
        c.on_snapshot(s).responses.is_empty(),
        "nothing before requests"
    );
    let cds = only(&c.on_request(req(CLUSTER, &[], ""))).nonce.clone();
    assert!(c.on_request(req(CLUSTER, &[], &cds)).responses.is_empty());
    let eds = only(&c.on_request(req(ENDPOINT, &["c1"], "")))
        .nonce
        .clone();
    assert!(
        c.on_request(req(ENDPOINT, &["c1"], &eds))
            .responses
            .is_empty()
    );
    let lds = only(&c.on_request(req(LISTENER, &[], ""))).nonce.clone();
    assert!(c.on_request(req(LISTENER, &[], &lds)).responses.is_empty());
    let rds = only(&c.on_request(req(ROUTE, &["r1"], ""))).nonce.clone();
    assert!(c.on_request(req(ROUTE, &["r1"], &rds)).responses.is_empty());
    [cds, eds, lds, rds]
}

#[test]
fn unknown_group_waits_for_first_snapshot() {
    let mut c = SotwConnection::new();
    assert!(c.on_request(req(CLUSTER, &[], "")).responses.is_empty());
    assert!(c.on_request(req(LISTENER, &[], "")).responses.is_empty());
    let out = c.on_snapshot(basic("1"));
    assert_eq!(
        summary(&out),
        [("CDS", nt(&[("c1", "1")]))],
        "listeners wait for the cluster ACK"
    );
    let cds = out.responses[0].nonce.clone();
    let out = c.on_request(req(CLUSTER, &[], &cds));
    assert!(
        out.responses.is_empty(),
        "listeners also wait for Envoy to ask for c1's endpoints"
    );
    let out = c.on_request(req(ENDPOINT, &["c1"], ""));
    assert_eq!(summary(&out), [("EDS", nt(&[("c1", "1")]))]);
    let eds = out.responses[0].nonce.clone();
    let out = c.on_request(req(ENDPOINT, &["c1"], &eds));
    assert_eq!(summary(&out), [("LDS", nt(&[("l1", "1")]))]);
}

#[test]
fn wildcard_types_carry_the_full_set() {
    let s = snap(&[
        (CLUSTER, "a", "1"),
        (CLUSTER, "b", "1"),
        (LISTENER, "x", "1"),
        (LISTENER, "y", "1"),
    ]);
    let mut c = SotwConnection::new();
    c.on_snapshot(s.clone());
    let out = c.on_request(req(CLUSTER, &[], ""));
    let r = only(&out);
    assert_eq!(summary(&out), [("CDS", nt(&[("a", "1"), ("b", "1")]))]);
    assert_eq!(r.version_info, s.version(CLUSTER));
    assert!(!r.nonce.is_empty());
    let nonce = r.nonce.clone();
    c.on_request(req(CLUSTER, &[], &nonce));
    // Explicit "*" is a wildcard too.
    let out = c.on_request(req(LISTENER, &["*"], ""));
    assert_eq!(summary(&out), [("LDS", nt(&[("x", "1"), ("y", "1")]))]);
}

#[test]
fn empty_wildcard_type_is_still_answered() {
    let mut c = SotwConnection::new();
    c.on_snapshot(snap(&[(LISTENER, "x", "1")]));
    let out = c.on_request(req(CLUSTER, &[], ""));
    let r = only(&out);
    assert!(r.resources.is_empty());
    assert!(!r.version_info.is_empty());
}

#[test]
fn named_types_carry_only_requested_names_that_exist() {
    let s = snap(&[
        (ROUTE, "r1", "1"),
        (ROUTE, "r2", "1"),
        (ENDPOINT, "e1", "1"),
        (ENDPOINT, "e2", "1"),
    ]);
    let mut c = SotwConnection::new();
    c.on_snapshot(s);
    let out = c.on_request(req(ROUTE, &["r2", "missing"], ""));
    assert_eq!(summary(&out), [("RDS", nt(&[("r2", "1")]))]);
    let out = c.on_request(req(ENDPOINT, &["e1"], ""));
    assert_eq!(summary(&out), [("EDS", nt(&[("e1", "1")]))]);
    let mut c = SotwConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "r1", "1")]));
    assert!(
        c.on_request(req(ROUTE, &["missing"], ""))
            .responses
            .is_empty(),
        "a name that does not exist is not answered"
    );
}

#[test]
fn explicit_names_end_the_legacy_wildcard() {
    let mut c = SotwConnection::new();
    c.on_snapshot(snap(&[(LISTENER, "x", "1"), (LISTENER, "y", "1")]));
    let out = c.on_request(req(LISTENER, &["x"], ""));
    assert_eq!(summary(&out), [("LDS", nt(&[("x", "1")]))]);
    let n = out.responses[0].nonce.clone();
    // Having named resources, an empty list now means "none", which needs no answer.
    assert!(c.on_request(req(LISTENER, &[], &n)).responses.is_empty());
}

#[test]
fn ack_then_identical_snapshot_sends_nothing() {
    let mut c = SotwConnection::new();
    c.on_snapshot(basic("1"));
    let out = c.on_request(req(CLUSTER, &[], ""));
    let r = only(&out).clone();
    let out = c.on_request(DiscoveryRequest {
        version_info: r.version_info.clone(),
        ..req(CLUSTER, &[], &r.nonce)
    });
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        [Event::Ack {
            type_url: CLUSTER.into(),
            version: r.version_info.clone(),
            nonce: r.nonce.clone()
        }]
    );
    // A rebuilt, identical snapshot (new Arc, same bytes).
    assert!(c.on_snapshot(basic("1")).responses.is_empty());
    // A repeated ACK is not counted twice.
    assert_eq!(acks(&c.on_request(req(CLUSTER, &[], &r.nonce))), 0);
}

#[test]
fn nack_keeps_last_good_and_waits_for_a_newer_snapshot() {
    let mut c = SotwConnection::new();
    c.on_snapshot(basic("1"));
    let n1 = only(&c.on_request(req(CLUSTER, &[], ""))).nonce.clone();
    c.on_request(req(CLUSTER, &[], &n1));

    let out = c.on_snapshot(basic("2"));
    let bad = only(&out).clone();
    let out = c.on_request(nack(CLUSTER, &[], &bad.nonce, "bad cluster"));
    assert!(
        out.responses.is_empty(),
        "the rejected version is not resent"
    );
    assert_eq!(
        out.events,
        [Event::Nack {
            type_url: CLUSTER.into(),
            version: bad.version_info.clone(),
            nonce: bad.nonce.clone(),
            message: "bad cluster".into()
        }]
    );
    // Neither a repeated request nor the same snapshot again resends it.
    assert!(
        c.on_request(req(CLUSTER, &[], &bad.nonce))
            .responses
            .is_empty()
    );
    assert!(c.on_snapshot(basic("2")).responses.is_empty());

    let out = c.on_snapshot(basic("3"));
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "3")]))]);
}

#[test]
fn stale_nonce_is_ignored() {
    let mut c = SotwConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "r1", "1"), (ROUTE, "r2", "1")]));
    let n1 = only(&c.on_request(req(ROUTE, &["r1"], ""))).nonce.clone();
    c.on_request(req(ROUTE, &["r1"], &n1));
    let out = c.on_snapshot(snap(&[(ROUTE, "r1", "2"), (ROUTE, "r2", "1")]));
    let n2 = only(&out).nonce.clone();

    // Answers the old response: neither an ACK/NACK of n2 nor a subscription change.
    let out = c.on_request(nack(ROUTE, &["r1", "r2"], &n1, "late"));
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        [Event::Stale {
            type_url: ROUTE.into(),
            nonce: n1.clone()
        }]
    );
    // n2 is still the one awaited.
    let out = c.on_request(req(ROUTE, &["r1"], &n2));
    assert_eq!(acks(&out), 1);
    assert!(out.responses.is_empty());
}

#[test]
fn subscription_change_is_answered() {
    let mut c = SotwConnection::new();
    c.on_snapshot(snap(&[(ROUTE, "r1", "1"), (ROUTE, "r2", "1")]));
    let n = only(&c.on_request(req(ROUTE, &["r1"], ""))).nonce.clone();
    c.on_request(req(ROUTE, &["r1"], &n));

    let out = c.on_request(req(ROUTE, &["r1", "r2"], &n));
    assert_eq!(summary(&out), [("RDS", nt(&[("r1", "1"), ("r2", "1")]))]);
    let n = out.responses[0].nonce.clone();
    c.on_request(req(ROUTE, &["r1", "r2"], &n));

    // Dropping a name needs no answer...
    assert!(c.on_request(req(ROUTE, &["r1"], &n)).responses.is_empty());
    // ...but asking for it again does, as the client forgot it.
    let out = c.on_request(req(ROUTE, &["r1", "r2"], &n));
    assert_eq!(summary(&out), [("RDS", nt(&[("r1", "1"), ("r2", "1")]))]);
}

#[test]
fn one_response_per_type_in_flight() {
    let mut c = SotwConnection::new();
    c.on_snapshot(basic("1"));
    let n1 = only(&c.on_request(req(CLUSTER, &[], ""))).nonce.clone();
    assert!(c.on_snapshot(basic("2")).responses.is_empty());
    assert!(c.on_snapshot(basic("3")).responses.is_empty());
    // The ACK releases only the newest.
    let out = c.on_request(req(CLUSTER, &[], &n1));
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "3")]))]);
}

#[test]
fn types_wait_for_their_subscription() {
    let mut c = SotwConnection::new();
    c.on_snapshot(basic("1"));
    let n = only(&c.on_request(req(CLUSTER, &[], ""))).nonce.clone();
    // Nothing for EDS/LDS/RDS until asked.
    assert!(c.on_request(req(CLUSTER, &[], &n)).responses.is_empty());
    let out = c.on_request(req(ENDPOINT, &["c1"], ""));
    assert_eq!(summary(&out), [("EDS", nt(&[("c1", "1")]))]);
}

#[test]
fn updates_of_existing_resources_go_out_together_in_order() {
    let mut c = SotwConnection::new();
    handshake(&mut c, basic("1"));
    let out = c.on_snapshot(basic("2"));
    assert_eq!(
        summary(&out),
        [
            ("CDS", nt(&[("c1", "2")])),
            ("EDS", nt(&[("c1", "2")])),
            ("LDS", nt(&[("l1", "2")])),
            ("RDS", nt(&[("r1", "2")])),
        ]
    );
}

/// A route moves from cluster c1 to new cluster c2; c1 leaves the snapshot.
fn move_route_to_c2() -> Arc<Snapshot> {
    snap(&[
        (CLUSTER, "c2", "1"),
        (ENDPOINT, "c2", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "to-c2"),
    ])
}

#[test]
fn make_before_break_across_a_snapshot_change() {
    let mut c = SotwConnection::new();
    let [_, eds, _, _] = handshake(&mut c, basic("1"));

    // 1. Clusters first, old ones kept: routes still point at c1.
    let out = c.on_snapshot(move_route_to_c2());
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "1"), ("c2", "1")]))]);
    let cds = &out.responses[0];
    assert_ne!(cds.version_info, move_route_to_c2().version(CLUSTER));
    let cds = cds.nonce.clone();

    // 2. CDS ACKed: routes still wait, for Envoy to ask for c2's endpoints.
    let out = c.on_request(req(CLUSTER, &[], &cds));
    assert!(out.responses.is_empty(), "{:?}", summary(&out));

    // 3. Envoy asks for c2's endpoints.
    let out = c.on_request(req(ENDPOINT, &["c1", "c2"], &eds));
    assert_eq!(summary(&out), [("EDS", nt(&[("c2", "1")]))]);
    let eds = out.responses[0].nonce.clone();

    // 4. Endpoints ACKed: now the route (the listener did not change).
    let out = c.on_request(req(ENDPOINT, &["c1", "c2"], &eds));
    assert_eq!(summary(&out), [("RDS", nt(&[("r1", "to-c2")]))]);
    let rds = out.responses[0].nonce.clone();

    // 5. Route ACKed: only now is c1 removed.
    let out = c.on_request(req(ROUTE, &["r1"], &rds));
    assert_eq!(summary(&out), [("CDS", nt(&[("c2", "1")]))]);
    assert_eq!(
        out.responses[0].version_info,
        move_route_to_c2().version(CLUSTER)
    );
    let cds = out.responses[0].nonce.clone();
    let out = c.on_request(req(CLUSTER, &[], &cds));
    assert!(out.responses.is_empty());
}

#[test]
fn route_nack_keeps_stale_clusters_until_a_route_is_acked() {
    let mut c = SotwConnection::new();
    let [_, eds, _, _] = handshake(&mut c, basic("1"));
    let cds = only(&c.on_snapshot(move_route_to_c2())).nonce.clone();
    c.on_request(req(CLUSTER, &[], &cds));
    let eds = only(&c.on_request(req(ENDPOINT, &["c1", "c2"], &eds)))
        .nonce
        .clone();
    let rds = only(&c.on_request(req(ENDPOINT, &["c1", "c2"], &eds)))
        .nonce
        .clone();

    let out = c.on_request(nack(ROUTE, &["r1"], &rds, "bad route"));
    assert!(
        out.responses.is_empty(),
        "c1 must stay: the old route uses it"
    );

    let mut fixed = (*move_route_to_c2()).clone();
    fixed.insert(ROUTE, "r1", crate::testutil::body(ROUTE, "r1", "fixed"));
    let out = c.on_snapshot(Arc::new(fixed));
    assert_eq!(summary(&out), [("RDS", nt(&[("r1", "fixed")]))]);
    let rds = out.responses[0].nonce.clone();
    let out = c.on_request(req(ROUTE, &["r1"], &rds));
    assert_eq!(summary(&out), [("CDS", nt(&[("c2", "1")]))]);
}

#[test]
fn cluster_removal_without_route_change_is_immediate() {
    let mut c = SotwConnection::new();
    let s = snap(&[
        (CLUSTER, "c1", "1"),
        (CLUSTER, "old", "1"),
        (LISTENER, "l1", "1"),
    ]);
    c.on_snapshot(s);
    let n = only(&c.on_request(req(CLUSTER, &[], ""))).nonce.clone();
    c.on_request(req(CLUSTER, &[], &n));
    let n = only(&c.on_request(req(LISTENER, &[], ""))).nonce.clone();
    c.on_request(req(LISTENER, &[], &n));
    // Nothing that could name "old" changes, so it goes at once.
    let out = c.on_snapshot(snap(&[(CLUSTER, "c1", "1"), (LISTENER, "l1", "1")]));
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "1")]))]);
}

#[test]
fn reconnect_gets_the_full_state_again() {
    let mut c = SotwConnection::new();
    handshake(&mut c, basic("1"));
    // A new stream knows nothing of the old one.
    let mut c = SotwConnection::new();
    c.on_snapshot(basic("1"));
    let out = c.on_request(DiscoveryRequest {
        version_info: basic("1").version(CLUSTER),
        ..req(CLUSTER, &[], "")
    });
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "1")]))]);
}

#[test]
fn unknown_types_are_served_by_name_without_ordering() {
    const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    let mut c = SotwConnection::new();
    c.on_snapshot(snap(&[(SECRET, "s1", "1"), (CLUSTER, "c1", "1")]));
    // CDS in flight with a new name does not hold the secret back.
    only(&c.on_request(req(CLUSTER, &[], "")));
    let out = c.on_request(req(SECRET, &["s1"], ""));
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].type_url, SECRET);
}

#[test]
fn nonce_from_an_earlier_stream_is_a_fresh_subscription() {
    let mut c = SotwConnection::new();
    c.on_snapshot(basic("1"));
    let out = c.on_request(req(CLUSTER, &[], "41"));
    assert!(out.events.is_empty());
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "1")]))]);
}

/// Envoy's own sequence: it asks for a new cluster's endpoints while the cluster warms and
/// ACKs the clusters only after warming, so endpoints must not wait for that ACK.
#[test]
fn new_cluster_endpoints_go_out_before_the_cluster_ack() {
    let mut c = SotwConnection::new();
    let [_, eds, _, _] = handshake(&mut c, basic("1"));
    let out = c.on_snapshot(move_route_to_c2());
    assert_eq!(summary(&out), [("CDS", nt(&[("c1", "1"), ("c2", "1")]))]);
    let cds = out.responses[0].nonce.clone();

    // No CDS ACK yet: Envoy asks for the warming cluster's endpoints first.
    let out = c.on_request(req(ENDPOINT, &["c1", "c2"], &eds));
    assert_eq!(summary(&out), [("EDS", nt(&[("c2", "1")]))]);
    let eds = out.responses[0].nonce.clone();
    let out = c.on_request(req(ENDPOINT, &["c1", "c2"], &eds));
    assert!(
        out.responses.is_empty(),
        "the route waits for the cluster ACK: {:?}",
        summary(&out)
    );

    // Warm: the cluster ACK releases the route.
    let out = c.on_request(req(CLUSTER, &[], &cds));
    assert_eq!(summary(&out), [("RDS", nt(&[("r1", "to-c2")]))]);
}

/// Envoy warms a changed cluster anew and waits for its endpoints even when they did not
/// change: they go out again after the cluster.
#[test]
fn a_changed_cluster_gets_its_unchanged_endpoints_again() {
    let mut c = SotwConnection::new();
    handshake(&mut c, basic("1"));
    let out = c.on_snapshot(snap(&[
        (CLUSTER, "c1", "2"),
        (ENDPOINT, "c1", "1"),
        (LISTENER, "l1", "1"),
        (ROUTE, "r1", "1"),
    ]));
    assert_eq!(
        summary(&out),
        [("CDS", nt(&[("c1", "2")])), ("EDS", nt(&[("c1", "1")]))]
    );
}

/// `settled`: the client runs the current snapshot — unsettled while a response is in flight
/// or rejected, settled once every subscribed type is ACKed.
#[test]
fn settled_follows_what_the_client_runs() {
    let mut c = SotwConnection::new();
    assert!(!c.settled());
    handshake(&mut c, basic("1"));
    assert!(c.settled());
    let out = c.on_snapshot(basic("2"));
    let cds = out.responses[0].nonce.clone();
    assert!(!c.settled(), "an update in flight");
    c.on_request(nack(CLUSTER, &[], &cds, "bad"));
    assert!(!c.settled(), "a rejected update is not run");
}
