use std::cell::Cell;

use std::collections::BTreeMap;

use gatehouse_xds::{Rejection, XdsStats};

use super::health::{count_unhealthy, holds};
use super::*;

thread_local! {
    static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// The seam the test uses to make a build panic as a bug in the model would.
pub(super) fn maybe_panic() {
    if PANIC_NEXT.with(|p| p.replace(false)) {
        panic!("injected by the test");
    }
}

/// An engine with default settings publishing to `cache`.
fn engine_with(cache: SnapshotCache) -> Engine {
    Engine::new(
        cache,
        Arc::new(Shared::default()),
        Arc::new(Metrics::new(Arc::new(XdsStats::new()))),
        ModelConfig::default(),
        TranslateOptions::default(),
    )
}

#[test]
fn a_route_change_retranslates_only_its_gateway() {
    use crate::scale::{self, Scale, Targets};
    let scale = Scale {
        gateways: 3,
        routes: 12,
        policies: 2,
        services: 2,
    };
    let cache = SnapshotCache::new();
    let engine = engine_with(cache.clone());
    let mut store = crate::testing::store(&scale::manifests(&scale, &Targets::default()));
    engine.rebuild(&store, Vec::new());
    let before = engine.shared.view().resources;
    let snapshots: Vec<_> = before
        .keys()
        .map(|k| cache.get(&group(k)).expect("published"))
        .collect();
    // Route 4 is on gw-1.
    let changed = crate::testing::store(&scale::route(4, &scale, 1));
    for (_, r) in changed.http_routes {
        store.apply(crate::store::Object::HttpRoute(Box::new(r)));
    }
    engine.rebuild(&store, Vec::new());
    let after = engine.shared.view().resources;
    for ((key, old), snap) in before.iter().zip(&snapshots) {
        let kept = Arc::ptr_eq(old, &after[key]);
        let same = cache
            .get(&group(key))
            .is_some_and(|s| s.same_versions(snap));
        assert_eq!(kept, key.name != "gw-1", "{key} translation reused");
        assert_eq!(same, key.name != "gw-1", "{key} snapshot unchanged");
    }
}

#[test]
fn a_provisioning_conflict_sets_programmed_false_over_rejections_and_clears() {
    let engine = engine_with(SnapshotCache::new());
    engine.rebuild(
        &crate::testing::store(crate::testing::GATEWAY_AND_WEB),
        Vec::new(),
    );
    let shared = &engine.shared;
    let key = shared
        .view()
        .model
        .status
        .gateways
        .keys()
        .next()
        .cloned()
        .expect("a Gateway");
    let programmed = |shared: &Shared| {
        shared.view().status().gateways[&key]
            .conditions
            .iter()
            .filter(|c| c.type_ == "Programmed")
            .map(|c| (c.status, c.reason.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(programmed(shared), [("True", "Programmed".to_string())]);
    shared.set_rejections(BTreeMap::from([(
        group(&key),
        vec![Rejection {
            node: "n".into(),
            type_url: "t".into(),
            version: "1".into(),
            message: "bad".into(),
        }],
    )]));
    let conflict = crate::provision::conflict_condition(&[crate::provision::Conflict {
        kind: "ConfigMap",
        name: "gatehouse-x".into(),
    }]);
    shared.set_unprovisioned(BTreeMap::from([(key.clone(), conflict)]));
    assert_eq!(
        programmed(shared),
        [("False", "NoResources".to_string())],
        "one Programmed condition, the conflict's"
    );
    shared.set_rejections(BTreeMap::new());
    shared.set_unprovisioned(BTreeMap::new());
    assert_eq!(programmed(shared), [("True", "Programmed".to_string())]);
}

#[test]
fn the_unhealthy_count_follows_routes_going_bad_and_good() {
    use crate::scale::{self, Scale, Targets};
    let scale = Scale {
        gateways: 2,
        routes: 6,
        policies: 1,
        services: 2,
    };
    let metrics = Arc::new(Metrics::new(Arc::new(XdsStats::new())));
    let engine = Engine::new(
        SnapshotCache::new(),
        Arc::new(Shared::default()),
        metrics.clone(),
        ModelConfig::default(),
        TranslateOptions::default(),
    );
    let mut store = crate::testing::store(&scale::manifests(&scale, &Targets::default()));
    let unhealthy = |engine: &Engine, store: &Store| {
        engine.rebuild(store, Vec::new());
        let counted = metrics.unhealthy_objects.get();
        // What counting every object from scratch finds.
        let status = crate::model::build(store, &ModelConfig::default()).status;
        let bad = |c: &[model::Condition]| !c.iter().all(holds);
        let routes = status
            .http_routes
            .values()
            .filter(|p| p.iter().any(|p| bad(&p.conditions)))
            .count();
        assert_eq!(counted, (count_unhealthy(&status) + routes) as i64);
        counted
    };
    let apply = |store: &mut Store, yaml: &str| {
        for (_, r) in crate::testing::store(yaml).http_routes {
            store.apply(crate::store::Object::HttpRoute(Box::new(r)));
        }
    };
    let good = unhealthy(&engine, &store);
    let broken = scale::route(2, &scale, 0).replace("name: svc-0", "name: missing");
    apply(&mut store, &broken);
    assert_eq!(
        unhealthy(&engine, &store),
        good + 1,
        "a route loses its backend"
    );
    apply(&mut store, &broken.replace("name: r2,", "name: r9,"));
    assert_eq!(
        unhealthy(&engine, &store),
        good + 2,
        "a broken route is added"
    );
    apply(&mut store, &scale::route(2, &scale, 0));
    assert_eq!(unhealthy(&engine, &store), good + 1, "a route is fixed");
    store.delete(&crate::store::ObjectRef {
        kind: crate::store::Kind::HttpRoute,
        key: ObjKey::new(scale::NAMESPACE, "r9"),
    });
    assert_eq!(
        unhealthy(&engine, &store),
        good,
        "a broken route is deleted"
    );
}

#[test]
fn a_panicking_build_keeps_the_previous_snapshots_and_reports_degraded() {
    let cache = SnapshotCache::new();
    let shared = Arc::new(Shared::default());
    let metrics = Arc::new(Metrics::new(Arc::new(XdsStats::new())));
    let engine = Engine::new(
        cache.clone(),
        shared.clone(),
        metrics.clone(),
        ModelConfig::default(),
        TranslateOptions::default(),
    );
    let store = crate::testing::store(
        &(crate::testing::gateway_class("gatehouse", "gatehouse.dev/gatehouse", "")
            + &crate::testing::gateway(
                "ns",
                "gw",
                "gatehouse",
                "listeners: [{name: http, protocol: HTTP, port: 8080}]",
            )),
    );
    engine.rebuild(&store, Vec::new());
    let key = group(&ObjKey::new("ns", "gw"));
    let before = cache.get(&key).expect("snapshot built");
    assert!(shared.ready() && shared.degraded().is_none());

    PANIC_NEXT.with(|p| p.set(true));
    engine.rebuild(&Store::new(), Vec::new());
    let degraded = shared.degraded().expect("degraded after a panic");
    assert!(degraded.contains("injected by the test"), "{degraded}");
    assert_eq!(metrics.build_panics.get(), 1);
    assert_eq!(metrics.degraded.get(), 1);
    // Every replica sees the same input and panics alike: none leaves the Service for it.
    let (code, body) = crate::admin::readiness(&shared);
    assert_eq!(code, axum::http::StatusCode::OK, "{body}");
    assert!(body.contains("degraded: the last build panicked"), "{body}");
    let kept = cache.get(&key).expect("snapshot kept");
    assert!(
        kept.same_versions(&before),
        "the previous snapshot is still served"
    );
    assert!(
        shared.serves(&ObjKey::new("ns", "gw")),
        "the previous view is still shown"
    );

    engine.rebuild(&store, Vec::new());
    assert!(shared.degraded().is_none(), "a good build clears it");
    assert_eq!(metrics.degraded.get(), 0);
    assert_eq!(crate::admin::readiness(&shared).1, "ready\n");
}

/// The controller's path: the watchers' state, built under its lock as `rebuild_loop` does. A
/// one-route change resolves that route only, and the echo of a status write builds nothing.
#[test]
fn a_controller_rebuild_after_one_change_visits_only_that_route() {
    use crate::scale::{self, Scale, Targets};
    use crate::source::kube::KubeState;
    let scale = Scale {
        gateways: 2,
        routes: 200,
        policies: 4,
        services: 4,
    };
    let state = KubeState::default();
    let world = crate::testing::store(&scale::manifests(&scale, &Targets::default()));
    for kind in crate::store::Kind::ALL {
        struct All<'a>(&'a crate::store::Store);
        impl crate::store::KindFn for All<'_> {
            type Output = Vec<crate::store::Object>;
            fn call<K: crate::store::StoredKind>(self) -> Self::Output {
                K::map(self.0)
                    .values()
                    .map(|o| o.clone().into_object())
                    .collect()
            }
        }
        state.relisted(kind, kind.with(All(&world)));
    }
    let engine = engine_with(SnapshotCache::new());
    let resolutions = || engine.metrics.route_resolutions.get();
    let build = || state.with_store(|s| engine.rebuild(s, state.problems()));
    let rebuild_asked = || futures::FutureExt::now_or_never(state.changed()).is_some();
    assert!(rebuild_asked());
    build();
    assert_eq!(resolutions(), 200, "the first build resolves every route");

    let changed = crate::testing::store(&scale::route(7, &scale, 1));
    let route = changed.http_routes.into_values().next().expect("a route");
    state.apply(crate::store::Object::HttpRoute(Box::new(route.clone())));
    assert!(rebuild_asked());
    build();
    assert_eq!(resolutions(), 201, "a one-route change resolves that route");

    let mut echo = route;
    echo.status = Some(Default::default());
    echo.metadata.resource_version = Some("99".into());
    state.apply(crate::store::Object::HttpRoute(Box::new(echo)));
    assert!(!rebuild_asked(), "a status echo asks for no rebuild");
    build();
    assert_eq!(resolutions(), 201, "and a build after it resolves nothing");
}

/// A route change that keeps the Gateway's clusters shares their resources with the previous
/// snapshot; one that drops a cluster builds them again. Either way the published snapshot is
/// the one a fresh translation makes.
#[test]
fn unchanged_clusters_keep_their_resources_and_snapshots_equal_fresh_ones() {
    use crate::scale::{self, Scale, Targets};
    use gatehouse_xds::type_url::{CLUSTER, ENDPOINT};
    let scale = Scale {
        gateways: 1,
        routes: 6,
        policies: 1,
        services: 6,
    };
    let cache = SnapshotCache::new();
    let engine = engine_with(cache.clone());
    let mut store = crate::testing::store(&scale::manifests(&scale, &Targets::default()));
    let published = || {
        cache
            .get(&group(&ObjKey::new(scale::NAMESPACE, "gw-0")))
            .expect("published")
    };
    let fresh = || {
        let model = engine.shared.view().model.clone();
        crate::snapshot::snapshot(&translate::translate_gateway(
            &model.gateways[0],
            &TranslateOptions::default(),
        ))
    };
    let apply = |store: &mut crate::store::Store, yaml: &str| {
        for (_, r) in crate::testing::store(yaml).http_routes {
            store.apply(crate::store::Object::HttpRoute(Box::new(r)));
        }
    };
    engine.rebuild(&store, Vec::new());
    let first = published();
    assert_eq!(first.count(CLUSTER), 7, "six backends and the auth service");

    apply(&mut store, &scale::route(3, &scale, 1));
    engine.rebuild(&store, Vec::new());
    let second = published();
    assert!(!second.same_versions(&first), "the route changed");
    for t in [CLUSTER, ENDPOINT] {
        let shared = second
            .resources(t)
            .zip(first.resources(t))
            .all(|(a, b)| Arc::ptr_eq(a, b));
        assert!(shared, "{t} resources are the previous snapshot's");
    }
    assert_eq!(*second, fresh());

    store.delete(&crate::store::ObjectRef {
        kind: crate::store::Kind::HttpRoute,
        key: ObjKey::new(scale::NAMESPACE, "r5"),
    });
    engine.rebuild(&store, Vec::new());
    let third = published();
    assert_eq!(third.count(CLUSTER), 6, "svc-5 has no route left");
    assert_eq!(*third, fresh());
}
