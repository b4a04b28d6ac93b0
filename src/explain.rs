//! "Who authorizes this route, and why": the effective ext auth of every route, derived from
//! the model, as rows, a table, or a mermaid attachment graph.

use serde::Serialize;

use crate::model::{GatewayModel, MatchModel, Model, PathMatch, ProviderService, RouteAuth};
use crate::translate::{DEFAULT_STATUS_ON_ERROR, DEFAULT_TIMEOUT};

/// The effective auth of one route.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Auth {
    /// No policy covers the route.
    Unprotected,
    #[serde(rename_all = "camelCase")]
    Enabled {
        provider: String,
        protocol: &'static str,
        service: String,
        timeout: String,
        fail_open: bool,
        status_on_error: u32,
        context: std::collections::BTreeMap<String, String>,
        decided_by: String,
    },
    #[serde(rename_all = "camelCase")]
    Disabled { decided_by: String },
    #[serde(rename_all = "camelCase")]
    FailsClosed { decided_by: String, reason: String },
}

/// One route of one virtual host of one listener port.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub gateway: String,
    pub listener: String,
    pub port: u16,
    pub host: String,
    pub route: String,
    pub rule: String,
    #[serde(rename = "match")]
    pub matches: String,
    pub auth: Auth,
    /// Set when the Gateway's proxies rejected the last update: they still serve the previous
    /// configuration, not this row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxies_rejected: Option<String>,
}

fn describe_match(m: &MatchModel) -> String {
    let mut out = match &m.path {
        PathMatch::Exact(p) => format!("path = {p}"),
        PathMatch::Prefix(p) => format!("path {p}*"),
        PathMatch::Regex(p) => format!("path ~ {p}"),
    };
    if let Some(method) = &m.method {
        out.push_str(&format!(", method {method}"));
    }
    for h in &m.headers {
        out.push_str(&format!(
            ", header {}{}{}",
            h.name,
            if h.regex { " ~ " } else { " = " },
            h.value
        ));
    }
    for q in &m.query {
        out.push_str(&format!(
            ", query {}{}{}",
            q.name,
            if q.regex { " ~ " } else { " = " },
            q.value
        ));
    }
    out
}

fn auth(gw: &GatewayModel, a: &RouteAuth) -> Auth {
    match a {
        RouteAuth::None => Auth::Unprotected,
        RouteAuth::Disabled { policy } => Auth::Disabled {
            decided_by: policy.to_string(),
        },
        RouteAuth::FailClosed { policy, reason } => Auth::FailsClosed {
            decided_by: policy.to_string(),
            reason: reason.clone(),
        },
        RouteAuth::Enabled {
            provider,
            policy,
            context_extensions,
            ..
        } => {
            let p = gw.providers.get(provider);
            let (protocol, timeout) = match p.map(|p| &p.service) {
                Some(ProviderService::Grpc(g)) => ("gRPC", g.request_timeout.clone()),
                Some(ProviderService::Http(h)) => ("HTTP", h.request_timeout.clone()),
                None => ("?", None),
            };
            let cluster = p.and_then(|p| gw.clusters.get(&p.cluster));
            Auth::Enabled {
                provider: provider.to_string(),
                protocol,
                service: cluster
                    .map(|c| format!("{}:{}", c.service, c.port))
                    .unwrap_or_default(),
                timeout: timeout
                    .unwrap_or_else(|| format!("{}s (default)", DEFAULT_TIMEOUT.as_secs())),
                fail_open: p.and_then(|p| p.spec.fail_open).unwrap_or(false),
                status_on_error: p
                    .and_then(|p| p.spec.status_on_error)
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(DEFAULT_STATUS_ON_ERROR),
                context: context_extensions.clone(),
                decided_by: policy.to_string(),
            }
        }
    }
}

/// Every route of every served Gateway, in listener, host and precedence order.
pub fn explain(model: &Model) -> Vec<Row> {
    let mut rows = Vec::new();
    for gw in &model.gateways {
        for port in &gw.ports {
            for vh in &port.virtual_hosts {
                for r in &vh.routes {
                    rows.push(Row {
                        gateway: gw.key.to_string(),
                        listener: vh.listener.clone(),
                        port: port.port,
                        host: vh.hostname.clone(),
                        // HTTPRoutes by name, as before GRPCRoutes were served; others by kind too.
                        route: match r.route.kind {
                            crate::store::Kind::HttpRoute => r.route.key.to_string(),
                            _ => r.route.to_string(),
                        },
                        rule: r
                            .rule_name
                            .clone()
                            .unwrap_or_else(|| r.rule_index.to_string()),
                        matches: describe_match(&r.matches),
                        auth: auth(gw, &r.auth),
                        proxies_rejected: None,
                    });
                }
            }
        }
    }
    rows
}

/// A plain-text table for humans.
pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "GATEWAY".to_string(),
        "LISTENER".into(),
        "HOST".into(),
        "ROUTE".into(),
        "RULE".into(),
        "MATCH".into(),
        "EXT AUTH".into(),
    ]];
    for r in rows {
        let decision = match &r.auth {
            Auth::Unprotected => "none (no policy)".to_string(),
            Auth::Enabled {
                provider,
                protocol,
                service,
                timeout,
                fail_open,
                status_on_error,
                context,
                decided_by,
            } => {
                let mut s = format!(
                    "{provider} ({protocol} {service}, timeout {timeout}, {}, on error {status_on_error}) by {decided_by}",
                    if *fail_open {
                        "fail open"
                    } else {
                        "fail closed"
                    }
                );
                if !context.is_empty() {
                    let ctx: Vec<String> =
                        context.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    s.push_str(&format!(", context {}", ctx.join(",")));
                }
                s
            }
            Auth::Disabled { decided_by } => format!("disabled by {decided_by}"),
            Auth::FailsClosed { decided_by, reason } => {
                format!("fails closed (500) because {decided_by}: {reason}")
            }
        };
        lines.push([
            r.gateway.clone(),
            format!("{}:{}", r.listener, r.port),
            r.host.clone(),
            r.route.clone(),
            r.rule.clone(),
            r.matches.clone(),
            decision,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut notes: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let why = r.proxies_rejected.as_ref()?;
            Some(format!(
                "NOTE {}: not in effect, its proxies rejected the last update: {why}\n",
                r.gateway
            ))
        })
        .collect();
    notes.dedup();
    let table: String = lines
        .iter()
        .map(|l| {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 6 {
                        c.clone()
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string() + "\n"
        })
        .collect();
    table + &notes.concat()
}

fn node_id(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{clean}")
}

/// A mermaid flowchart: Gateway → listeners → routes → policies → providers.
pub fn mermaid(rows: &[Row]) -> String {
    let mut nodes = std::collections::BTreeMap::new();
    let mut edges = std::collections::BTreeSet::new();
    for r in rows {
        let gw = node_id("gw", &r.gateway);
        let listener = node_id("l", &format!("{}/{}", r.gateway, r.listener));
        let route = node_id("r", &format!("{}/{}", r.route, r.rule));
        nodes.insert(gw.clone(), format!("{gw}[\"Gateway {}\"]", r.gateway));
        nodes.insert(
            listener.clone(),
            format!("{listener}[\"listener {}:{}\"]", r.listener, r.port),
        );
        nodes.insert(
            route.clone(),
            format!("{route}[\"{} rule {}\"]", r.route, r.rule),
        );
        edges.insert(format!("{gw} --> {listener}"));
        edges.insert(format!("{listener} -->|{}| {route}", r.host));
        match &r.auth {
            Auth::Unprotected => {}
            Auth::Enabled {
                provider,
                decided_by,
                ..
            } => {
                let policy = node_id("p", decided_by);
                let prov = node_id("x", provider);
                nodes.insert(
                    policy.clone(),
                    format!("{policy}{{{{\"TrafficPolicy {decided_by}\"}}}}"),
                );
                nodes.insert(
                    prov.clone(),
                    format!("{prov}([\"GatewayExtension {provider}\"])"),
                );
                edges.insert(format!("{route} -.->|decided by| {policy}"));
                edges.insert(format!("{policy} --> {prov}"));
            }
            Auth::Disabled { decided_by } => {
                let policy = node_id("p", decided_by);
                nodes.insert(
                    policy.clone(),
                    format!("{policy}{{{{\"TrafficPolicy {decided_by} (disable)\"}}}}"),
                );
                edges.insert(format!("{route} -.->|disabled by| {policy}"));
            }
            Auth::FailsClosed { decided_by, .. } => {
                let policy = node_id("p", decided_by);
                nodes.insert(
                    policy.clone(),
                    format!("{policy}{{{{\"TrafficPolicy {decided_by} (broken)\"}}}}"),
                );
                edges.insert(format!("{route} -.->|fails closed| {policy}"));
            }
        }
    }
    let mut out = String::from("flowchart LR\n");
    for n in nodes.values() {
        out.push_str(&format!("  {n}\n"));
    }
    for e in &edges {
        out.push_str(&format!("  {e}\n"));
    }
    out
}
