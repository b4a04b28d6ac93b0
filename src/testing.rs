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

/// A Gateway `infra/gw` (one HTTP listener on 8080, routes from every namespace) and a Service
/// `app/web:80`: what model tests of one route build on.
pub const GATEWAY_AND_WEB: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec: {ports: [{name: http, port: 80}]}
"#;
