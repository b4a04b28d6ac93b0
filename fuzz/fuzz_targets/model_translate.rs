//! Whatever loads goes through the model, the translator and snapshot encoding without a
//! panic, and translating twice gives the same snapshot (determinism).
#![no_main]

use std::path::Path;

use gatehouse::model::{ModelConfig, build};
use gatehouse::store::Store;
use gatehouse::translate::{TranslateOptions, translate_gateway};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let out = gatehouse::source::files::load_str(Path::new("fuzz.yaml"), text);
    let mut store = Store::new();
    for o in out.objects {
        store.apply(o);
    }
    let config = ModelConfig {
        accept_unknown_classes: true,
        ..ModelConfig::default()
    };
    let model = build(&store, &config);
    for gw in &model.gateways {
        let a = translate_gateway(gw, &TranslateOptions::default());
        let b = translate_gateway(gw, &TranslateOptions::default());
        assert_eq!(a, b, "translation is not deterministic");
        let _ = gatehouse::snapshot::snapshot(&a);
    }
});
