//! The store's own bookkeeping: revisions, HTTPRoute history, the EndpointSlice index.

mod basics {
    use super::super::*;
    use crate::testing;

    #[test]
    fn revisions_move_only_when_content_changes() {
        let route = |path: &str| {
            testing::http_route(
                "a",
                "r",
                "",
                &[],
                &format!("  - {{matches: [{{path: {{type: PathPrefix, value: {path}}}}}]}}\n"),
            )
        };
        let svc = testing::bare("v1", "Service", Some("a"), "s");
        let mut store = testing::store(&(route("/") + &svc));
        let key = ObjKey::new("a", "r");
        let at = ObjectRef {
            kind: Kind::HttpRoute,
            key: key.clone(),
        };
        let (context, r1) = (store.context_revision(), store.route_revision(&at));
        assert_ne!(r1, 0);
        let same = testing::store(&route("/")).http_routes[&key].clone();
        assert_eq!(
            store.apply(Object::HttpRoute(Box::new(same))),
            Applied::Unchanged
        );
        assert_eq!(store.route_revision(&at), r1, "an identical apply");
        let moved = testing::store(&route("/v2")).http_routes[&key].clone();
        assert_eq!(
            store.apply(Object::HttpRoute(Box::new(moved))),
            Applied::Changed
        );
        let r2 = store.route_revision(&at);
        assert!(
            r2 != r1 && store.context_revision() == context,
            "a route change"
        );
        let copy = store.clone();
        assert!(store.delete(&ObjectRef {
            kind: Kind::Service,
            key: ObjKey::new("a", "s"),
        }));
        assert!(store.context_revision() != context && store.route_revision(&at) == r2);
        assert_eq!(copy.context_revision(), context, "a clone keeps its own");
        assert!(store.delete(&ObjectRef {
            kind: Kind::HttpRoute,
            key: key.clone(),
        }));
        assert_eq!(store.route_revision(&at), 0);
        assert_ne!(
            Store::new().context_revision(),
            Store::new().context_revision(),
            "two empty stores never look like the same build input"
        );
    }

    #[test]
    fn replace_kind_deletes_what_a_relist_no_longer_has() {
        let mut store = testing::store(
            &(testing::namespace("a")
                + &testing::namespace("b")
                + &testing::bare("v1", "Service", Some("a"), "s")),
        );
        let relist = testing::store(&(testing::namespace("b") + &testing::namespace("c")));
        let objects: Vec<Object> = relist
            .namespaces
            .values()
            .map(|n| Object::Namespace(Box::new(n.clone())))
            .collect();
        assert_eq!(
            store.replace_kind(Kind::Namespace, objects.clone()),
            Applied::Changed
        );
        assert_eq!(
            store.keys(Kind::Namespace),
            vec![ObjKey::cluster("b"), ObjKey::cluster("c")]
        );
        assert_eq!(store.services.len(), 1, "other kinds untouched");
        assert_eq!(
            store.replace_kind(Kind::Namespace, objects),
            Applied::Unchanged,
            "same list, no change"
        );
    }
}

mod history {
    use super::super::*;
    use crate::testing;

    fn route(name: &str, path: &str) -> Object {
        let yaml = testing::http_route(
            "a",
            name,
            "",
            &[],
            &format!("  - {{matches: [{{path: {{type: PathPrefix, value: {path}}}}}]}}\n"),
        );
        let key = ObjKey::new("a", name);
        Object::HttpRoute(Box::new(testing::store(&yaml).http_routes[&key].clone()))
    }

    fn gone(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::HttpRoute,
            key: ObjKey::new("a", name),
        }
    }

    /// (name, present) of each change since `since`.
    fn changes(store: &Store, since: RouteCursor) -> Option<Vec<(String, bool)>> {
        store.route_changes(since).map(|c| {
            c.into_iter()
                .map(|(k, now)| (k.key.name.clone(), now.is_some()))
                .collect()
        })
    }

    #[test]
    fn changes_since_a_cursor_name_each_route_once() {
        let mut store = Store::new();
        let start = store.route_cursor();
        store.apply(route("a", "/"));
        store.apply(route("b", "/"));
        assert_eq!(
            changes(&store, start),
            Some(vec![("a".into(), true), ("b".into(), true)])
        );
        let seen = store.route_cursor();
        assert_eq!(changes(&store, seen), Some(vec![]));
        assert_eq!(
            store.apply(route("a", "/")),
            Applied::Unchanged,
            "an identical apply"
        );
        assert_eq!(changes(&store, seen), Some(vec![]));
        store.apply(route("a", "/v2"));
        store.delete(&gone("b"));
        store.apply(route("a", "/v3"));
        store.apply(route("c", "/"));
        // In the order of each route's last change; `a` once.
        assert_eq!(
            changes(&store, seen),
            Some(vec![
                ("b".into(), false),
                ("a".into(), true),
                ("c".into(), true)
            ])
        );
        // A route deleted and back is one change, present.
        let seen = store.route_cursor();
        store.delete(&gone("c"));
        store.apply(route("c", "/"));
        assert_eq!(changes(&store, seen), Some(vec![("c".into(), true)]));
        // Other kinds are not in the route history.
        let seen = store.route_cursor();
        store.apply(
            testing::store(&testing::bare("v1", "Service", Some("a"), "s"))
                .services
                .into_values()
                .map(|s| Object::Service(Box::new(s)))
                .next()
                .expect("a service"),
        );
        assert_eq!(changes(&store, seen), Some(vec![]));
    }

    /// A status write's echo (new status, new resourceVersion) is stored for the status
    /// writer but is no change for the model: no revision moves, so nothing is rebuilt.
    #[test]
    fn status_and_resource_version_are_observed_not_changes() {
        let mut store = Store::new();
        store.apply(route("a", "/"));
        let seen = store.route_cursor();
        let context = store.context_revision();
        let Object::HttpRoute(mut echo) = route("a", "/") else {
            unreachable!("route() makes HTTPRoutes")
        };
        echo.metadata.resource_version = Some("42".into());
        echo.status = Some(Default::default());
        assert_eq!(
            store.apply(Object::HttpRoute(echo.clone())),
            Applied::Observed
        );
        assert_eq!(changes(&store, seen), Some(vec![]), "no route revision");
        assert_eq!(store.context_revision(), context);
        let stored = &store.http_routes[&ObjKey::new("a", "a")];
        assert_eq!(stored.metadata.resource_version.as_deref(), Some("42"));
        assert!(stored.status.is_some(), "the status writer reads it");

        // A label is something the model reads (policies select routes by label).
        echo.metadata.labels = Some([("team".to_string(), "x".to_string())].into());
        assert_eq!(store.apply(Object::HttpRoute(echo)), Applied::Changed);
        assert_eq!(changes(&store, seen), Some(vec![("a".into(), true)]));

        // The same for a kind in the context: a Gateway's status write moves nothing.
        let gw = testing::store(&testing::gateway(
            "infra",
            "gw",
            "gatehouse",
            "listeners: [{name: http, protocol: HTTP, port: 80}]",
        ))
        .gateways
        .into_values()
        .next()
        .expect("a gateway");
        store.apply(Object::Gateway(Box::new(gw.clone())));
        let context = store.context_revision();
        let mut written = gw;
        written.status = Some(Default::default());
        assert_eq!(
            store.apply(Object::Gateway(Box::new(written))),
            Applied::Observed
        );
        assert_eq!(store.context_revision(), context);
    }

    #[test]
    fn a_clone_or_a_forgotten_deletion_asks_for_a_full_walk() {
        let mut store = Store::new();
        store.apply(route("a", "/"));
        let seen = store.route_cursor();
        let mut copy = store.clone();
        copy.apply(route("b", "/"));
        assert_eq!(changes(&copy, seen), None, "a cursor of another history");
        assert_eq!(changes(&store, seen), Some(vec![]));

        for i in 0..=REMEMBERED_DELETIONS {
            let name = format!("d{i}");
            store.apply(route(&name, "/"));
            store.delete(&gone(&name));
        }
        assert_eq!(changes(&store, seen), None, "a deletion was forgotten");
        let recent = store.route_cursor();
        store.delete(&gone("a"));
        assert_eq!(changes(&store, recent), Some(vec![("a".into(), false)]));
        // Superseded deletions are not what gets forgotten: the history stays bounded.
        assert!(store.revisions.deleted.len() <= REMEMBERED_DELETIONS);
        assert_eq!(store.revisions.log.len(), store.revisions.deleted.len());
    }
}

mod endpoints {
    use super::super::*;
    use crate::testing;

    fn slice(name: &str, service: &str, addresses: &[&str]) -> Object {
        let yaml = testing::endpoint_slice(
            "a",
            name,
            service,
            &format!(
                r"addressType: IPv4
ports: [{{name: http, port: 8080}}, {{port: 9090}}]
endpoints:
- addresses: [{}]
- addresses: [10.9.9.9]
  conditions: {{ready: false}}
",
                addresses.join(", ")
            ),
        );
        let key = ObjKey::new("a", name);
        Object::EndpointSlice(Box::new(
            testing::store(&yaml).endpoint_slices[&key].clone(),
        ))
    }

    fn addresses(store: &Store, service: &str, port: &str) -> Vec<String> {
        store
            .endpoints_of(&ObjKey::new("a", service), port)
            .iter()
            .map(|e| format!("{}:{}", e.address, e.port))
            .collect()
    }

    #[test]
    fn endpoints_follow_slices_as_they_change_move_and_go() {
        let mut store = Store::new();
        store.apply(slice("s1", "web", &["10.0.0.2", "10.0.0.1"]));
        store.apply(slice("s2", "web", &["10.0.0.1", "10.0.0.3"]));
        // Sorted, without repeats, ready only, by port name.
        assert_eq!(
            addresses(&store, "web", "http"),
            ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
        );
        assert_eq!(addresses(&store, "web", "").len(), 3, "the unnamed port");
        assert!(addresses(&store, "web", "grpc").is_empty());

        // s2 moves to another Service: both Services change.
        store.apply(slice("s2", "api", &["10.0.0.3"]));
        assert_eq!(
            addresses(&store, "web", "http"),
            ["10.0.0.1:8080", "10.0.0.2:8080"]
        );
        assert_eq!(addresses(&store, "api", "http"), ["10.0.0.3:8080"]);

        store.delete(&ObjectRef {
            kind: Kind::EndpointSlice,
            key: ObjKey::new("a", "s1"),
        });
        assert!(addresses(&store, "web", "http").is_empty());
        assert_eq!(addresses(&store, "api", "http"), ["10.0.0.3:8080"]);
    }
}
