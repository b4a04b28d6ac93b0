//! Which Gateway port is scoped, and that a scoped port serves exactly the unscoped table, split by
//! host, with untouched hosts' resources shared between snapshots.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::scoped_route_configuration::key;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, ScopedRouteConfiguration};
use gatehouse_xds::type_url::{ROUTE, SCOPED_ROUTE};
use prost::Message;

use super::{TranslateOptions, scopes, translate_gateway, translate_gateway_reusing};
use crate::model::{Builder, GatewayModel, ModelConfig, PortModel, VirtualHostModel};
use crate::scale::{self, Scale, Targets};
use crate::store::Object;

const SCALE: Scale = Scale {
    gateways: 1,
    routes: 12,
    policies: 3,
    services: 2,
};

fn gateway() -> GatewayModel {
    let store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    let model = crate::model::build(&store, &ModelConfig::default());
    assert_eq!(model.gateways.len(), 1);
    (*model.gateways[0]).clone()
}

fn options(from: usize) -> TranslateOptions {
    TranslateOptions {
        route_scopes_from: from,
        ..Default::default()
    }
}

fn port(number: u16, hosts: &[&str]) -> PortModel {
    PortModel {
        port: number,
        virtual_hosts: hosts
            .iter()
            .map(|h| {
                Arc::new(VirtualHostModel {
                    hostname: h.to_string(),
                    listener: "http".into(),
                    routes: Vec::new(),
                })
            })
            .collect(),
        providers: Default::default(),
        tls: Vec::new(),
    }
}

#[test]
fn the_only_port_of_exact_hostnames_at_the_threshold_is_scoped() {
    let mut gw = gateway();
    let cases: [(&str, Vec<PortModel>, usize, Option<u16>); 7] = [
        ("below the threshold", vec![port(80, &["a", "b"])], 3, None),
        (
            "at the threshold",
            vec![port(80, &["a", "b", "c"])],
            3,
            Some(80),
        ),
        ("0 never scopes", vec![port(80, &["a"])], 0, None),
        (
            "a wildcard host",
            vec![port(80, &["*.a", "b", "c"])],
            2,
            None,
        ),
        (
            "a catch-all host",
            vec![port(80, &["*", "b", "c"])],
            2,
            None,
        ),
        ("an upper-case host", vec![port(80, &["A", "b"])], 2, None),
        // A draining listener of one port would receive the other port's scopes.
        (
            "two ports, both large enough",
            vec![port(80, &["a", "b"]), port(81, &["a", "b", "c"])],
            2,
            None,
        ),
    ];
    for (what, ports, from, want) in cases {
        gw.ports = ports;
        assert_eq!(scopes::scoped_port(&gw, from), want, "{what}");
    }

    // Few hosts, many routes: scoped from SCOPE_ROUTES_FROM routes over two hosts or more.
    let route = gateway().ports[0].virtual_hosts[0].routes[0].clone();
    let with_routes = |hosts: &[&str], routes: usize| {
        let mut p = port(80, hosts);
        for vh in &mut p.virtual_hosts {
            Arc::make_mut(vh).routes = vec![route.clone(); routes / hosts.len()];
        }
        p
    };
    let large = scopes::SCOPE_ROUTES_FROM;
    let cases = [
        (
            "two hosts, many routes",
            with_routes(&["a", "b"], large),
            Some(80),
        ),
        ("one route short", with_routes(&["a", "b"], large - 2), None),
        ("one host, many routes", with_routes(&["a"], large), None),
        (
            "a wildcard among them",
            with_routes(&["*.a", "b"], large),
            None,
        ),
    ];
    for (what, p, want) in cases {
        gw.ports = vec![p];
        assert_eq!(scopes::scoped_port(&gw, 1000), want, "{what}");
        assert_eq!(scopes::scoped_port(&gw, 0), None, "{what}: 0 never scopes");
    }
}

#[test]
fn a_scoped_port_serves_the_unscoped_table_one_host_per_scope() {
    let gw = gateway();
    let whole = translate_gateway(&gw, &options(0));
    let scoped = translate_gateway(&gw, &options(1));
    assert!(!whole.routes[0].scoped);
    assert!(scoped.routes[0].scoped);
    let table = whole.routes[0].to_proto();
    assert_eq!(table.virtual_hosts.len(), SCALE.routes);

    let snap = crate::snapshot::snapshot(&scoped);
    let routes: Vec<RouteConfiguration> = snap
        .resources(ROUTE)
        .map(|r| RouteConfiguration::decode(r.body.value.as_slice()).expect("decodes"))
        .collect();
    let scopes: Vec<ScopedRouteConfiguration> = snap
        .resources(SCOPED_ROUTE)
        .map(|r| ScopedRouteConfiguration::decode(r.body.value.as_slice()).expect("decodes"))
        .collect();
    assert_eq!(routes.len(), table.virtual_hosts.len());
    assert_eq!(scopes.len(), table.virtual_hosts.len());
    for ((rc, scope), vh) in routes.iter().zip(&scopes).zip(&table.virtual_hosts) {
        assert_eq!(rc.virtual_hosts, vec![vh.clone()], "{}", rc.name);
        assert_eq!(scope.name, rc.name);
        assert_eq!(scope.route_configuration_name, rc.name);
        let key = &scope.key.as_ref().expect("key").fragments;
        assert_eq!(
            key.iter().map(|f| f.r#type.clone()).collect::<Vec<_>>(),
            vec![Some(key::fragment::Type::StringKey(vh.name.clone()))]
        );
    }
    // The listener selects scopes instead of naming one table, and the rendered scopes
    // carry the same tables inline for a static bootstrap.
    assert_ne!(whole.listeners, scoped.listeners);
    let inline: Vec<_> = scoped.routes[0]
        .scopes(true)
        .into_iter()
        .map(|s| s.route_configuration.expect("inline"))
        .collect();
    assert_eq!(inline, routes);
}

#[test]
fn a_one_route_change_rebuilds_one_scope() {
    let options = options(1);
    let mut store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    let mut builder = Builder::default();
    let config = ModelConfig::default();
    let model = builder.build(&store, &config);
    let first = translate_gateway(&model.gateways[0], &options);
    let before = crate::snapshot::snapshot(&first);

    for (_, r) in crate::testing::store(&scale::route(5, &SCALE, 1)).http_routes {
        store.apply(Object::HttpRoute(Box::new(r)));
    }
    let model = builder.build(&store, &config);
    let next = translate_gateway_reusing(&model.gateways[0], &options, Some(&first));
    let after = crate::snapshot::snapshot(&next);

    for t in [ROUTE, SCOPED_ROUTE] {
        let rebuilt: Vec<&str> = after
            .resources(t)
            .filter(|r| !before.get(t, &r.name).is_some_and(|b| Arc::ptr_eq(b, r)))
            .map(|r| r.name.as_str())
            .collect();
        let changed: Vec<&str> = after
            .resources(t)
            .filter(|r| {
                before
                    .get(t, &r.name)
                    .is_none_or(|b| b.version != r.version)
            })
            .map(|r| r.name.as_str())
            .collect();
        let scope = format!("http-8080/{}", scale::host(5));
        assert_eq!(rebuilt, [scope.as_str()], "{t}: rebuilt");
        // The scope itself (its key) did not change; only its RouteConfiguration did.
        let want: &[&str] = if t == ROUTE { &[scope.as_str()] } else { &[] };
        assert_eq!(changed, want, "{t}: changed");
    }
    assert_eq!(
        after,
        crate::snapshot::snapshot(&translate_gateway(&model.gateways[0], &options))
    );
}
