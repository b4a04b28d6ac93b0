//! The world both modes are measured on side by side: one Gateway (one HTTP listener), N
//! HTTPRoutes spread over 50 hostnames (route `i` on hostname `i % 50`, exact path `/r{i}`),
//! a backend Service with an EndpointSlice per 10 routes, one ext auth provider and a
//! TrafficPolicy per 10 routes. Generated with `gatehouse::scale` and rewritten per route.

use anyhow::bail;
use gatehouse::scale::{self, Scale, Targets};

/// Hostnames the routes spread over.
pub const HOSTS: usize = 50;
/// The Gateway, as `gatehouse bootstrap --gateway` names it.
pub const GATEWAY: &str = "bench/gw-0";

/// The shape at `routes` routes.
pub fn scale(routes: usize) -> Scale {
    Scale {
        gateways: 1,
        routes,
        policies: (routes / 10).max(1),
        services: (routes / 10).max(1),
    }
}

/// A route no policy protects (policies protect every tenth route from r0).
pub const PLAIN: usize = 1;

/// Hostname and path that reach route `i` once it is served.
pub fn target(i: usize) -> (String, String) {
    (scale::host(i % HOSTS), format!("/r{i}"))
}

/// Route `i` (any `i`: new routes past `scale.routes` reuse its backends).
pub fn route(i: usize, scale: &Scale) -> anyhow::Result<String> {
    let text = scale::route(i, scale, 0);
    let (host, path) = target(i);
    let hostnames = format!("hostnames: [{}]", scale::host(i));
    let matches = "{path: {type: PathPrefix, value: /}}";
    if !text.contains(&hostnames) || !text.contains(matches) {
        bail!("gatehouse::scale::route changed its shape; update bench/src/shared.rs:\n{text}");
    }
    Ok(text
        .replace(&hostnames, &format!("hostnames: [{host}]"))
        .replace(
            matches,
            &format!("{{path: {{type: Exact, value: {path}}}}}"),
        ))
}

/// Everything but the routes and policies: namespace, class, Gateway, Services, provider.
pub fn base(scale: &Scale, targets: &Targets) -> String {
    let empty = Scale {
        routes: 0,
        policies: 0,
        ..*scale
    };
    scale::manifests(&empty, targets)
}

/// The routes and the policies, in that order.
pub fn routes(scale: &Scale) -> anyhow::Result<String> {
    let mut out = String::with_capacity(scale.routes * 400);
    for i in 0..scale.routes {
        out.push_str(&route(i, scale)?);
    }
    for p in 0..scale.policies {
        out.push_str(&scale::policy(p, scale));
    }
    Ok(out)
}

/// The whole world as one manifest text (standalone's watched file).
pub fn manifests(scale: &Scale, targets: &Targets) -> anyhow::Result<String> {
    Ok(base(scale, targets) + &routes(scale)?)
}

/// The YAML documents of `text` as JSON values (empty documents left out).
pub fn documents(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for de in yaml_serde::Deserializer::from_str(text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(de)?;
        if !doc.is_null() {
            out.push(doc);
        }
    }
    Ok(out)
}

/// Makes the Services of `docs` headless (`clusterIP: None`): the tests' API server allocates
/// cluster IPs from a /24, too few for a Service per 10 routes at 10,000 routes, and backends
/// are reached through their EndpointSlices anyway.
pub fn headless(docs: &mut [serde_json::Value]) {
    for doc in docs.iter_mut().filter(|d| d["kind"] == "Service") {
        if let Some(spec) = doc.get_mut("spec").and_then(|s| s.as_object_mut()) {
            spec.insert("clusterIP".into(), "None".into());
        }
    }
}
