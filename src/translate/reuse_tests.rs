//! Translating with the previous translation gives what a fresh one gives, and reuses exactly
//! the virtual hosts whose routes are unchanged.

use std::sync::Arc;

use super::{GatewayResources, TranslateOptions, translate_gateway, translate_gateway_reusing};
use crate::model::{Builder, GatewayModel, ModelConfig};
use crate::scale::{self, Scale, Targets};
use crate::store::{Object, Store};

const SCALE: Scale = Scale {
    gateways: 1,
    routes: 20,
    policies: 4,
    services: 3,
};

fn apply(store: &mut Store, yaml: &str) {
    for (_, r) in crate::testing::store(yaml).http_routes {
        store.apply(Object::HttpRoute(Box::new(r)));
    }
}

fn only(models: &[Arc<GatewayModel>]) -> &GatewayModel {
    assert_eq!(models.len(), 1);
    &models[0]
}

/// Hosts of `new` that are the same `Arc` as some host of `old`.
fn reused(old: &GatewayResources, new: &GatewayResources) -> usize {
    let hosts = |r: &GatewayResources| -> Vec<_> {
        r.routes
            .iter()
            .flat_map(|t| t.virtual_hosts.iter().cloned())
            .collect()
    };
    let before = hosts(old);
    hosts(new)
        .iter()
        .filter(|h| before.iter().any(|b| Arc::ptr_eq(b, h)))
        .count()
}

fn bytes(res: &GatewayResources) -> Vec<(String, Vec<u8>)> {
    let snap = crate::snapshot::snapshot(res);
    snap.resources(gatehouse_xds::type_url::ROUTE)
        .map(|r| (r.name.clone(), r.body.value.clone()))
        .collect()
}

#[test]
fn changed_added_and_removed_routes_retranslate_only_their_hosts() {
    let options = TranslateOptions::default();
    let mut store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    let mut builder = Builder::default();
    let config = ModelConfig::default();
    let model = builder.build(&store, &config);
    let first = translate_gateway(only(&model.gateways), &options);
    let hosts = first.routes[0].virtual_hosts.len();
    assert_eq!(hosts, SCALE.routes);

    let steps: [(&str, String, usize); 3] = [
        (
            "route 4 changes its path",
            scale::route(4, &SCALE, 1),
            hosts - 1,
        ),
        ("route 99 is added", scale::route(99, &SCALE, 0), hosts),
        ("route 7 changes again", scale::route(7, &SCALE, 2), hosts),
    ];
    let mut previous = first;
    for (what, yaml, kept) in steps {
        apply(&mut store, &yaml);
        let model = builder.build(&store, &config);
        let gw = only(&model.gateways);
        let next = translate_gateway_reusing(gw, &options, Some(&previous));
        let fresh = translate_gateway(gw, &options);
        assert_eq!(next, fresh, "{what}: same resources as a fresh translation");
        assert_eq!(bytes(&next), bytes(&fresh), "{what}: same bytes");
        assert_eq!(reused(&previous, &next), kept, "{what}: hosts reused");
        previous = next;
    }
}

#[test]
fn hosts_translated_for_another_chain_are_not_reused() {
    let options = TranslateOptions::default();
    let store = crate::testing::store(&scale::manifests(&SCALE, &Targets::default()));
    let model = crate::model::build(&store, &ModelConfig::default());
    let gw = only(&model.gateways);
    let first = translate_gateway(gw, &options);
    let provider = gw.providers.values().next().expect("a provider").clone();
    // Same route models on another chain: routes name the chain's providers (disabled routes)
    // and their identities (protected routes), so no host may be reused.
    let mut more = gw.clone();
    let extra = crate::store::ObjKey::new("bench", "another-provider");
    let mut added = provider.clone();
    added.key = extra.clone();
    more.providers.insert(extra.clone(), added);
    for port in &mut more.ports {
        port.providers.insert(extra.clone());
    }
    let mut fail_open = gw.clone();
    let mut changed = provider.clone();
    changed.spec.fail_open = Some(true);
    fail_open.providers.insert(provider.key.clone(), changed);
    for other in [&more, &fail_open] {
        let next = translate_gateway_reusing(other, &options, Some(&first));
        assert_eq!(reused(&first, &next), 0);
        assert_eq!(next, translate_gateway(other, &options));
    }
    assert_eq!(
        reused(
            &first,
            &translate_gateway_reusing(gw, &options, Some(&first))
        ),
        SCALE.routes
    );
}
