//! The incremental [`Builder`] against fresh builds, over a sequence of store changes.

use std::path::Path;
use std::sync::Arc;

use super::{Builder, Model, ModelConfig, build};
use crate::scale::{self, NAMESPACE, Scale, Targets};
use crate::source::files::load_str;
use crate::store::{Kind, ObjKey, ObjectRef, Store};
use crate::testing::{http_route, traffic_policy};

fn apply(store: &mut Store, yaml: &str) {
    let out = load_str(Path::new("change.yaml"), yaml);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    for o in out.objects {
        store.apply(o);
    }
}

fn delete(store: &mut Store, kind: Kind, name: &str) {
    let key = match kind {
        Kind::Namespace | Kind::GatewayClass => ObjKey::cluster(name),
        _ => ObjKey::new(NAMESPACE, name),
    };
    assert!(store.delete(&ObjectRef { kind, key }), "{name} existed");
}

/// Builds incrementally, and checks the result against a build from scratch.
fn check(builder: &mut Builder, store: &Store, step: &str) -> Model {
    let config = ModelConfig::default();
    let incremental = builder.build(store, &config);
    let fresh = build(store, &config);
    assert_eq!(incremental.status, fresh.status, "status after {step}");
    assert_eq!(
        incremental.gateways, fresh.gateways,
        "gateways after {step}"
    );
    incremental
}

/// Which of `before`'s Gateway models `after` kept (the same allocation), by name.
fn kept(before: &Model, after: &Model) -> Vec<String> {
    after
        .gateways
        .iter()
        .filter(|g| before.gateways.iter().any(|b| Arc::ptr_eq(b, g)))
        .map(|g| g.key.name.clone())
        .collect()
}

/// Hostnames of `gateway`'s virtual hosts in `after` that are `before`'s (the same allocation),
/// and the number of hosts it has.
fn kept_hosts(before: &Model, after: &Model, gateway: &str) -> (Vec<String>, usize) {
    let hosts = |m: &Model| -> Vec<Arc<super::VirtualHostModel>> {
        m.gateways
            .iter()
            .filter(|g| g.key.name == gateway)
            .flat_map(|g| g.ports.iter().flat_map(|p| p.virtual_hosts.iter().cloned()))
            .collect()
    };
    let old = hosts(before);
    let new = hosts(after);
    let kept = new
        .iter()
        .filter(|h| old.iter().any(|o| Arc::ptr_eq(o, h)))
        .map(|h| h.hostname.clone())
        .collect();
    (kept, new.len())
}

/// The scale world and a builder that has built it once.
fn world() -> (Store, Builder, Model) {
    let store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    let mut builder = Builder::default();
    let first = check(&mut builder, &store, "the first build");
    (store, builder, first)
}

/// A TrafficPolicy turning ext auth on for all of gw-0.
fn gateway_wide_policy() -> String {
    traffic_policy(
        NAMESPACE,
        "gw-wide",
        "Gateway",
        "gw-0",
        None,
        "{extensionRef: {name: authz}}",
    )
}

/// One step of a test's store history.
type Change = dyn Fn(&mut Store);

const SCALE: Scale = Scale {
    gateways: 3,
    routes: 30,
    policies: 5,
    services: 4,
};

#[test]
fn route_changes_rebuild_only_the_gateways_they_touch() {
    let (mut store, mut builder, m0) = world();
    assert_eq!(m0.gateways.len(), 3);

    // r4 is on gw-1.
    apply(&mut store, &scale::route(4, &SCALE, 1));
    let m1 = check(&mut builder, &store, "a route change");
    assert_eq!(kept(&m0, &m1), ["gw-0", "gw-2"]);
    // Within gw-1, only r4's host is assembled again.
    let (hosts, total) = kept_hosts(&m0, &m1, "gw-1");
    assert_eq!(hosts.len(), total - 1);
    assert!(!hosts.contains(&scale::host(4)));

    apply(&mut store, &scale::route(4, &SCALE, 1));
    let m2 = check(&mut builder, &store, "re-applying the same route");
    assert_eq!(kept(&m1, &m2), ["gw-0", "gw-1", "gw-2"]);

    // r5 moves from gw-2 to gw-0: both change, gw-1 does not.
    apply(
        &mut store,
        &scale::route(5, &SCALE, 0).replace("name: gw-2", "name: gw-0"),
    );
    let m3 = check(&mut builder, &store, "a route moving between Gateways");
    assert_eq!(kept(&m2, &m3), ["gw-1"]);

    delete(&mut store, Kind::HttpRoute, "r7");
    let m4 = check(&mut builder, &store, "a route deletion");
    assert_eq!(kept(&m3, &m4), ["gw-0", "gw-2"]);

    // A route nobody serves (unknown parent) changes no Gateway but has status.
    apply(
        &mut store,
        &scale::route(100, &SCALE, 0).replace("name: gw-1", "name: missing"),
    );
    let m5 = check(&mut builder, &store, "a route to a missing Gateway");
    assert_eq!(kept(&m4, &m5), ["gw-0", "gw-1", "gw-2"]);
    assert!(
        m5.status
            .http_routes
            .contains_key(&ObjKey::new(NAMESPACE, "r100"))
    );

    // r6 is policy p1's target: its status follows the route off its Gateway and back.
    let p1 = ObjKey::new(NAMESPACE, "p1");
    apply(
        &mut store,
        &scale::route(6, &SCALE, 0).replace("name: gw-0", "name: missing"),
    );
    let m6 = check(
        &mut builder,
        &store,
        "a protected route leaving its Gateway",
    );
    assert_ne!(
        m6.status.traffic_policies[&p1],
        m5.status.traffic_policies[&p1]
    );
    // Deciding nothing before and after: only the target's own change says the status moved.
    delete(&mut store, Kind::HttpRoute, "r6");
    let m7 = check(
        &mut builder,
        &store,
        "a detached protected route's deletion",
    );
    assert_ne!(
        m7.status.traffic_policies[&p1],
        m6.status.traffic_policies[&p1]
    );
    apply(&mut store, &scale::route(6, &SCALE, 0));
    let m8 = check(&mut builder, &store, "a protected route coming back");
    assert_eq!(
        m8.status.traffic_policies[&p1],
        m5.status.traffic_policies[&p1]
    );
}

#[test]
fn incremental_builds_follow_every_kind_of_change() {
    let (mut store, mut builder, _) = world();
    let inline_auth = http_route(
        NAMESPACE,
        "inline",
        "gw-1",
        &["inline.example.com"],
        r"  - filters:
    - type: ExternalAuth
      externalAuth: {protocol: GRPC, backendRef: {name: authz, port: 9000}}
    backendRefs: [{name: svc-1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /broken}}]
    backendRefs: [{name: nowhere, port: 80}]
",
    );
    apply(&mut store, &inline_auth);
    check(&mut builder, &store, "a route with an inline provider");
    // Same hostname as r1 (gw-1), older: precedence between two routes.
    apply(
        &mut store,
        &scale::route(1, &SCALE, 0).replace("name: r1,", "name: r1-twin,"),
    );
    check(&mut builder, &store, "a second route on a hostname");

    let steps: [(&str, Box<Change>); 6] = [
        (
            "a policy disabling auth on a protected route",
            Box::new(|s| {
                apply(
                    s,
                    &traffic_policy(NAMESPACE, "off", "HTTPRoute", "r0", None, "{disable: {}}"),
                )
            }),
        ),
        (
            "a Gateway-wide policy",
            Box::new(|s| apply(s, &gateway_wide_policy())),
        ),
        (
            "a backend Service deletion",
            Box::new(|s| delete(s, Kind::Service, "svc-1")),
        ),
        (
            "an auth provider deletion",
            Box::new(|s| delete(s, Kind::GatewayExtension, "authz")),
        ),
        (
            "a Gateway deletion",
            Box::new(|s| delete(s, Kind::Gateway, "gw-2")),
        ),
        (
            "a route change after context changes",
            Box::new(|s| apply(s, &scale::route(3, &SCALE, 2))),
        ),
    ];
    for (step, change) in steps {
        change(&mut store);
        check(&mut builder, &store, step);
    }
}

#[test]
fn a_different_config_is_not_served_from_the_memo() {
    let store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    let mut builder = Builder::default();
    let ours = builder.build(&store, &ModelConfig::default());
    let other = ModelConfig {
        controller_name: "example.com/other".into(),
        accept_unknown_classes: false,
    };
    let theirs = builder.build(&store, &other);
    assert_eq!(ours.gateways.len(), 3);
    assert!(theirs.gateways.is_empty(), "no Gateway is of that class");
    assert_eq!(theirs, build(&store, &other));
}

#[test]
fn policy_status_follows_the_routes_a_gateway_policy_decides() {
    let mut store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    apply(&mut store, &gateway_wide_policy());
    let policy = ObjKey::new(NAMESPACE, "gw-wide");
    let mut builder = Builder::default();
    let first = check(&mut builder, &store, "the first build");
    // Routes 0, 3, 6, … are gw-0's: take them away one at a time, then bring them back.
    let on_gw0: Vec<usize> = (0..SCALE.routes).step_by(SCALE.gateways).collect();
    for &i in &on_gw0 {
        delete(&mut store, Kind::HttpRoute, &format!("r{i}"));
        check(&mut builder, &store, &format!("deleting r{i}"));
    }
    let empty = check(&mut builder, &store, "gw-0 without routes");
    assert_ne!(
        empty.status.traffic_policies[&policy], first.status.traffic_policies[&policy],
        "a policy that decides no route any more"
    );
    for &i in &on_gw0 {
        apply(&mut store, &scale::route(i, &SCALE, 0));
        check(&mut builder, &store, &format!("r{i} coming back"));
    }
    let back = check(&mut builder, &store, "gw-0 with its routes");
    assert_eq!(
        back.status.traffic_policies[&policy],
        first.status.traffic_policies[&policy]
    );
}

#[test]
fn a_builder_on_another_store_or_far_behind_walks_every_route() {
    let (mut store, mut builder, _) = world();
    // A clone shares the context revision but not the route history.
    let mut other = store.clone();
    delete(&mut other, Kind::HttpRoute, "r2");
    check(&mut builder, &other, "a clone that lost a route");
    check(&mut builder, &store, "the original again");

    delete(&mut store, Kind::HttpRoute, "r5");
    for i in 0..=crate::store::REMEMBERED_DELETIONS {
        let name = format!("tmp{i}");
        apply(
            &mut store,
            &scale::route(1, &SCALE, 0).replace("name: r1,", &format!("name: {name},")),
        );
        delete(&mut store, Kind::HttpRoute, &name);
    }
    let m = check(
        &mut builder,
        &store,
        "more deletions than the store remembers",
    );
    assert!(
        !m.status
            .http_routes
            .contains_key(&ObjKey::new(NAMESPACE, "r5"))
    );
}
