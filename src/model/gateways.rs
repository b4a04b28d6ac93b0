//! GatewayClasses and Gateways Gatehouse owns, and the validity of their listeners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use gateway_api::apis::standard::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From,
};

use super::ModelConfig;
use super::conditions::{Condition, GatewayStatus, ListenerStatus, Status};
use super::tls::{self, ListenerTls};
use super::types::PathPolicy;
use crate::model::condition_names as cond;
use crate::store::{ObjKey, Store};

/// A Gateway listener as the model uses it.
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub port: u16,
    pub hostname: Option<String>,
    pub valid: bool,
    pub allowed_from: From,
    pub selector: Option<LabelSelector>,
    /// False when `allowedRoutes.kinds` excludes HTTPRoute.
    pub allows_http_route: bool,
    /// False when `allowedRoutes.kinds` excludes GRPCRoute.
    pub allows_grpc_route: bool,
    /// An HTTPS listener's certificates; `None` for HTTP.
    pub tls: Option<Arc<ListenerTls>>,
    /// Served, or an HTTPS listener that would be but for its certificates or CAs: either way
    /// requests for its hostname are its own (listener isolation), never a broader listener's.
    pub owns_hostname: bool,
}

/// A label selector over Namespaces.
#[derive(Clone, Debug, Default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    /// (key, operator, values)
    pub expressions: Vec<(String, String, Vec<String>)>,
}

impl LabelSelector {
    /// True when `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .expressions
                .iter()
                .all(|(k, op, values)| match op.as_str() {
                    "In" => labels.get(k).is_some_and(|v| values.contains(v)),
                    "NotIn" => labels.get(k).is_none_or(|v| !values.contains(v)),
                    "Exists" => labels.contains_key(k),
                    "DoesNotExist" => !labels.contains_key(k),
                    _ => false,
                })
    }
}

/// A Gateway Gatehouse serves.
#[derive(Clone, Debug)]
pub struct GatewayInfo {
    pub key: ObjKey,
    pub listeners: Vec<ListenerInfo>,
    pub conditions: Vec<Condition>,
    pub listener_conditions: Vec<Vec<Condition>>,
    pub path: PathPolicy,
    /// The client certificate presented to TLS backends (`spec.tls.backend`).
    pub backend_client: Option<Arc<tls::Certificate>>,
}

/// Names of GatewayClasses whose controller is Gatehouse; sets their `Accepted` condition.
pub fn owned_classes(store: &Store, config: &ModelConfig, status: &mut Status) -> BTreeSet<String> {
    let mut owned = BTreeSet::new();
    for (key, class) in &store.gateway_classes {
        if class.spec.controller_name == config.controller_name {
            owned.insert(key.name.clone());
            // A bad parametersRef rejects the class, but its Gateways keep being served: the
            // provisioner leaves their proxies as they are, and cutting those proxies' config
            // would turn a typo into an outage.
            let accepted = match super::parameters::of_class(store, class) {
                Ok(_) => Condition::ok(cond::ACCEPTED, cond::ACCEPTED, "handled by Gatehouse"),
                Err(why) => Condition::fail(cond::ACCEPTED, cond::INVALID_PARAMETERS, why),
            };
            status.gateway_classes.insert(key.clone(), vec![accepted]);
        }
    }
    owned
}

/// The Gateways of owned classes (and, when configured, of classes not in the store).
pub fn gateways(
    store: &Store,
    config: &ModelConfig,
    owned: &BTreeSet<String>,
    certificates: &tls::CertificateCache,
) -> Vec<GatewayInfo> {
    store
        .gateways
        .iter()
        .filter(|(_, gw)| {
            let class = &gw.spec.gateway_class_name;
            owned.contains(class)
                || (config.accept_unknown_classes
                    && !store
                        .gateway_classes
                        .contains_key(&ObjKey::cluster(class.clone())))
        })
        .map(|(key, gw)| gateway_info(store, key, gw, certificates))
        .collect()
}

fn gateway_info(
    store: &Store,
    key: &ObjKey,
    gw: &Gateway,
    certificates: &tls::CertificateCache,
) -> GatewayInfo {
    // Certificates are checked for expiry when the Gateway's inputs change, not on a timer.
    let now = SystemTime::now();
    let mut ports = Ports::default();
    let mut listeners = Vec::new();
    let mut listener_conditions = Vec::new();
    let frontend = gw.spec.tls.as_ref().and_then(|t| t.frontend.as_ref());
    for l in &gw.spec.listeners {
        let tls = (l.protocol == "HTTPS").then(|| {
            let mut t = tls::listener_tls(store, key, l.tls.as_ref(), now, certificates)?;
            if let Some(f) = frontend.and_then(|f| tls::frontend_for_port(f, l.port)) {
                let (clients, problem) = tls::client_validation(store, key, &f);
                // Without a CA to check clients against, the listener would admit everyone.
                let clients = clients.map_err(|why| {
                    tls::Unsupported(
                        cond::NO_VALID_CA_CERTIFICATE,
                        format!("no client CA of spec.tls.frontend resolves ({why}); the listener is not served without it"),
                    )
                })?;
                t.clients = Some(clients);
                if t.problem.is_none() {
                    t.problem = problem;
                }
            }
            Ok(t)
        });
        let (info, conditions) = listener_info(l, tls, &mut ports);
        listeners.push(info);
        listener_conditions.push(conditions);
    }
    let any_valid = listeners.iter().any(|l| l.valid);
    let programmed = if any_valid {
        Condition::ok(
            cond::PROGRAMMED,
            cond::PROGRAMMED,
            "configuration is served to Envoy",
        )
    } else {
        Condition::fail(cond::PROGRAMMED, cond::INVALID, "no listener is valid")
    };
    let class = store
        .gateway_classes
        .get(&ObjKey::cluster(gw.spec.gateway_class_name.clone()));
    let path = super::parameters::path_policy(store, class, key, gw);
    let mut conditions = vec![
        // Served either way, as for a class with bad parameters (see `owned_classes`).
        match super::parameters::of_gateway(store, key, gw) {
            Ok(_) => Condition::ok(cond::ACCEPTED, cond::ACCEPTED, accepted_message(&path)),
            Err(why) => Condition::fail(cond::ACCEPTED, cond::INVALID_PARAMETERS, why),
        },
        programmed,
    ];
    // Only Gateways that name a backend client certificate get `ResolvedRefs`: it is the one
    // Gateway-level reference.
    let client_ref = gw
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.backend.as_ref())
        .and_then(|b| b.client_certificate_ref.as_ref());
    let backend_client =
        client_ref.and_then(
            |r| match tls::backend_client(store, key, r, now, certificates) {
                Ok(c) => {
                    conditions.push(Condition::ok(
                        cond::RESOLVED_REFS,
                        cond::RESOLVED_REFS,
                        "the backend client certificate is presented to TLS backends",
                    ));
                    Some(c)
                }
                Err(e) => {
                    conditions.push(Condition::fail(
                        cond::RESOLVED_REFS,
                        e.reason,
                        format!(
                            "{}; TLS backends are connected to without a client certificate",
                            e.message
                        ),
                    ));
                    None
                }
            },
        );
    GatewayInfo {
        key: key.clone(),
        listeners,
        conditions,
        listener_conditions,
        path,
        backend_client,
    }
}

/// A weakened path normalization is allowed but not silent: whoever reads the Gateway's status
/// sees which requests its routes no longer see as the backend will.
fn accepted_message(path: &PathPolicy) -> String {
    let weakened = path.weakened();
    if weakened.is_empty() {
        "handled by Gatehouse".into()
    } else {
        format!(
            "handled by Gatehouse; path normalization weakened by GatewayParameters: {}",
            weakened.join("; ")
        )
    }
}

/// What earlier listeners of a Gateway claimed: ports by protocol, and (port, hostname) pairs.
#[derive(Default)]
struct Ports {
    protocols: BTreeMap<i32, String>,
    hostnames: BTreeSet<(i32, String)>,
    names: BTreeSet<String>,
}

/// Gateway API's listener hostname: a lower-case DNS name, optionally `*.` first (the CRD's
/// pattern, which standalone mode does not get from an API server). Envoy refuses other
/// wildcards in a filter chain's `server_names`, which would reject the whole port.
fn valid_hostname(h: &str) -> bool {
    crate::api::is_dns_subdomain(h.strip_prefix("*.").unwrap_or(h))
}

/// Protocols Gatehouse serves on a listener.
const SERVED_PROTOCOLS: [&str; 2] = ["HTTP", "HTTPS"];

fn listener_info(
    l: &GatewayListeners,
    tls: Option<Result<ListenerTls, tls::Unsupported>>,
    ports: &mut Ports,
) -> (ListenerInfo, Vec<Condition>) {
    let allowed = l.allowed_routes.as_ref();
    let namespaces = allowed.and_then(|a| a.namespaces.as_ref());
    let allowed_from = namespaces
        .and_then(|n| n.from.clone())
        .unwrap_or(From::Same);
    let selector = namespaces
        .and_then(|n| n.selector.as_ref())
        .map(|s| LabelSelector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.operator.clone(),
                        e.values.clone().unwrap_or_default(),
                    )
                })
                .collect(),
        });
    let allows = |kind: &str| {
        allowed.and_then(|a| a.kinds.as_ref()).is_none_or(|kinds| {
            kinds.iter().any(|k| {
                k.kind == kind
                    && k.group.as_deref().unwrap_or("gateway.networking.k8s.io")
                        == "gateway.networking.k8s.io"
            })
        })
    };
    let (allows_http_route, allows_grpc_route) = (allows("HTTPRoute"), allows("GRPCRoute"));
    let mut conditions = Vec::new();
    let port = u16::try_from(l.port).ok().filter(|p| *p > 0);
    let (tls, unsupported) = match tls {
        Some(Ok(t)) => (Some(Arc::new(t)), None),
        Some(Err(tls::Unsupported(reason, why))) => (None, Some((reason, why))),
        None => (None, None),
    };
    // A listener that would be served but for its TLS settings still claims its port's
    // protocol and its hostname: otherwise a conflicting plaintext listener, or a less
    // specific one, would take its requests when a certificate or CA goes bad.
    let mut claims = false;
    if !SERVED_PROTOCOLS.contains(&l.protocol.as_str()) {
        conditions.push(Condition::fail(
            cond::ACCEPTED,
            cond::UNSUPPORTED_PROTOCOL,
            format!(
                "protocol {} is not supported; use HTTP or HTTPS",
                l.protocol
            ),
        ));
    } else if port.is_none() {
        conditions.push(Condition::fail(
            cond::ACCEPTED,
            cond::PORT_UNAVAILABLE,
            format!("port {} is out of range", l.port),
        ));
    } else if let Some(h) = l.hostname.as_deref().filter(|h| !valid_hostname(h)) {
        conditions.push(Condition::fail(
            cond::ACCEPTED,
            cond::UNSUPPORTED_VALUE,
            format!(
                "hostname {h:?} is not a lower-case DNS name, optionally with one leading `*.`"
            ),
        ));
    } else if !ports.names.insert(l.name.clone()) {
        conditions.push(Condition::fail(
            cond::ACCEPTED,
            cond::UNSUPPORTED_VALUE,
            format!("another listener of this Gateway is named {:?}", l.name),
        ));
    } else if let Some((reason, why)) = &unsupported {
        claims = true;
        conditions.push(Condition::fail(cond::ACCEPTED, reason, why.clone()));
    } else {
        claims = true;
        conditions.push(Condition::ok(
            cond::ACCEPTED,
            cond::ACCEPTED,
            "listener is valid",
        ));
    }
    let host = l.hostname.clone().unwrap_or_else(|| "*".into());
    let claimed = claims.then(|| {
        ports
            .protocols
            .entry(l.port)
            .or_insert_with(|| l.protocol.clone())
    });
    let mut owns_hostname = false;
    if let Some(other) = claimed.filter(|p| **p != l.protocol) {
        let message = format!("an earlier listener serves {other} on port {}", l.port);
        conditions.push(Condition::ok(
            cond::CONFLICTED,
            cond::PROTOCOL_CONFLICT,
            message,
        ));
    } else if claims && !ports.hostnames.insert((l.port, host.clone())) {
        conditions.push(Condition::ok(
            cond::CONFLICTED,
            cond::HOSTNAME_CONFLICT,
            format!("another listener on port {} serves hostname {host}", l.port),
        ));
    } else {
        owns_hostname = claims;
        conditions.push(Condition::fail(
            cond::CONFLICTED,
            cond::NO_CONFLICTS,
            "no conflicts",
        ));
    }
    let mut valid = owns_hostname && unsupported.is_none();
    let tls_problem = tls.as_ref().and_then(|t| t.problem.clone());
    if let Some(problem) = &tls_problem {
        conditions.push(Condition::fail(
            cond::RESOLVED_REFS,
            problem.reason,
            problem.message.clone(),
        ));
    } else if allows_http_route || allows_grpc_route {
        conditions.push(Condition::ok(
            cond::RESOLVED_REFS,
            cond::RESOLVED_REFS,
            "all references resolved",
        ));
    } else {
        conditions.push(Condition::fail(
            cond::RESOLVED_REFS,
            cond::INVALID_ROUTE_KINDS,
            "allowedRoutes.kinds names no supported kind; Gatehouse serves HTTPRoute and GRPCRoute",
        ));
    }
    let no_certificate = tls.as_ref().is_some_and(|t| t.certificates.is_empty());
    if valid && no_certificate {
        valid = false;
        conditions.push(Condition::fail(
            cond::PROGRAMMED,
            cond::INVALID,
            "listener is not served: none of its certificateRefs resolves to a certificate",
        ));
    } else if valid {
        conditions.push(Condition::ok(
            cond::PROGRAMMED,
            cond::PROGRAMMED,
            "listener is served to Envoy",
        ));
    } else {
        conditions.push(Condition::fail(
            cond::PROGRAMMED,
            cond::INVALID,
            "listener is not served",
        ));
    }
    let info = ListenerInfo {
        name: l.name.clone(),
        port: port.unwrap_or(0),
        hostname: l.hostname.clone(),
        valid,
        owns_hostname,
        allowed_from,
        selector,
        allows_http_route,
        allows_grpc_route,
        tls,
    };
    (info, conditions)
}

/// Writes the Gateway's status once routes are counted.
pub fn finish_status(store: &Store, info: &GatewayInfo, attached: &[i32], status: &mut Status) {
    let listeners = info
        .listeners
        .iter()
        .zip(&info.listener_conditions)
        .zip(attached)
        .map(|((l, c), n)| ListenerStatus {
            name: l.name.clone(),
            attached_routes: *n,
            conditions: c.clone(),
            supported_kinds: [
                (l.allows_http_route, "HTTPRoute"),
                (l.allows_grpc_route, "GRPCRoute"),
            ]
            .into_iter()
            .filter_map(|(allowed, kind)| allowed.then_some(kind))
            .collect(),
        })
        .collect();
    status.gateways.insert(
        info.key.clone(),
        GatewayStatus {
            conditions: info.conditions.clone(),
            listeners,
            addresses: addresses(store, &info.key),
        },
    );
}

/// Addresses of the Service Gatehouse provisioned for `gateway`: load-balancer ingress when
/// the cloud assigned some, else the cluster IP. A Service with that name that is not
/// Gatehouse's for this Gateway reports nothing: its addresses are not the Gateway's.
pub fn addresses(store: &Store, gateway: &ObjKey) -> Vec<(String, String)> {
    let key = ObjKey::new(
        gateway.namespace.clone(),
        crate::provisioned::proxy_name(&gateway.name),
    );
    let Some(svc) = store.services.get(&key) else {
        return Vec::new();
    };
    let gateway_uid = store
        .gateways
        .get(gateway)
        .and_then(|g| g.metadata.uid.as_deref())
        .unwrap_or_default();
    let ours = matches!(
        crate::provisioned::ownership(Some(&svc.metadata), gateway_uid),
        crate::provisioned::Ownership::Owned { .. }
    );
    if !ours {
        return Vec::new();
    }
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut out: Vec<(String, String)> = ingress
        .into_iter()
        .flatten()
        .filter_map(|i| match (&i.ip, &i.hostname) {
            (Some(ip), _) => Some(("IPAddress".to_string(), ip.clone())),
            (None, Some(host)) => Some(("Hostname".to_string(), host.clone())),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        let spec = svc.spec.as_ref();
        let ips = spec
            .and_then(|s| s.cluster_ips.clone())
            .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
            .unwrap_or_default();
        out = ips
            .into_iter()
            .filter(|ip| !ip.is_empty() && ip != "None")
            .map(|ip| ("IPAddress".to_string(), ip))
            .collect();
    }
    out
}
