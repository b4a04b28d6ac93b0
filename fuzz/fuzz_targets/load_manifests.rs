//! Manifest loading: any bytes give objects and errors, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let out = gatehouse::source::files::load_str(Path::new("fuzz.yaml"), text);
        // Every error names where it came from.
        for e in &out.errors {
            assert!(!e.to_string().is_empty());
        }
    }
});
