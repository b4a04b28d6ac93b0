//! The engine's pure pipeline at 100 / 1,000 / 10,000 routes (10 Gateways, a policy per ten
//! routes): loading manifests, the model, the translation, snapshot encoding, and the whole
//! rebuild after a one-route change. `cargo bench --bench pipeline`; method and results in
//! BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse::engine::{Engine, Shared};
use gatehouse::metrics::Metrics;
use gatehouse::model::{ModelConfig, build};
use gatehouse::scale::{Scale, Targets, manifests, route};
use gatehouse::source::files::load_str;
use gatehouse::store::Store;
use gatehouse::translate::{TranslateOptions, translate_gateway};
use gatehouse_xds::{SnapshotCache, XdsStats};

fn store_of(text: &str) -> Store {
    let mut store = Store::new();
    for o in load_str(Path::new("bench.yaml"), text).objects {
        store.apply(o);
    }
    store
}

/// One route rewritten, then everything the engine does for it: the incremental model,
/// translating and publishing the one Gateway that changed.
fn one_route_change(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    store: &Store,
    scale: &Scale,
) {
    let engine = Engine::new(
        SnapshotCache::new(),
        Arc::new(Shared::default()),
        Arc::new(Metrics::new(Arc::new(XdsStats::new()))),
        ModelConfig::default(),
        TranslateOptions::default(),
    );
    let mut store = store.clone();
    engine.rebuild(&store, Vec::new());
    let mut version = 0;
    group.bench_function(id, |b| {
        b.iter(|| {
            version += 1;
            for o in load_str(Path::new("change.yaml"), &route(7, scale, version)).objects {
                store.apply(o);
            }
            engine.rebuild(&store, Vec::new());
        })
    });
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    let config = ModelConfig::default();
    let options = TranslateOptions::default();
    for routes in [100usize, 1_000, 10_000] {
        let scale = Scale::routes(routes);
        let text = manifests(&scale, &Targets::default());
        let store = store_of(&text);
        group.bench_with_input(BenchmarkId::new("load", routes), &text, |b, text| {
            b.iter(|| store_of(text))
        });
        group.bench_with_input(BenchmarkId::new("model", routes), &store, |b, store| {
            b.iter(|| build(store, &config))
        });
        let model = build(&store, &config);
        group.bench_with_input(BenchmarkId::new("translate", routes), &model, |b, model| {
            b.iter(|| {
                model
                    .gateways
                    .iter()
                    .map(|g| translate_gateway(g, &options))
                    .collect::<Vec<_>>()
            })
        });
        let resources: Vec<_> = model
            .gateways
            .iter()
            .map(|g| translate_gateway(g, &options))
            .collect();
        group.bench_with_input(
            BenchmarkId::new("snapshot", routes),
            &resources,
            |b, res| {
                b.iter(|| {
                    res.iter()
                        .map(gatehouse::snapshot::snapshot)
                        .collect::<Vec<_>>()
                })
            },
        );
        one_route_change(
            &mut group,
            BenchmarkId::new("one_route_change", routes),
            &store,
            &scale,
        );
    }
    // The propagation world of gatehouse-bench: 5,000 routes on one Gateway, so the changed
    // Gateway's RouteConfiguration holds every host.
    let scale = Scale {
        gateways: 1,
        routes: 5_000,
        policies: 500,
        services: 500,
    };
    one_route_change(
        &mut group,
        BenchmarkId::new("one_route_change_one_gateway", 5_000),
        &store_of(&manifests(&scale, &Targets::default())),
        &scale,
    );
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
