//! Helpers for unit tests: stores from YAML text.

use std::path::Path;

use crate::source::files::load_str;
use crate::store::Store;

/// A store holding the objects of `yaml`; panics on load errors so tests fail loudly.
pub fn store(yaml: &str) -> Store {
    let out = load_str(Path::new("test.yaml"), yaml);
    assert!(
        out.errors.is_empty(),
        "fixture does not load: {:?}",
        out.errors
    );
    let mut store = Store::new();
    for o in out.objects {
        store.apply(o);
    }
    store
}
