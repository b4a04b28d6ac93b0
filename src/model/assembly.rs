//! One Gateway's model kept in parts between builds: a route change re-assembles only the
//! virtual hosts it touches, where assembling the whole Gateway walked every route of it (a
//! quarter of a one-route change at 5,000 routes on one Gateway, `perf`, BENCHMARKS.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::contribution::Contribution;
use super::extensions::ProviderResult;
use super::gateways::{GatewayInfo, ListenerInfo};
use super::types::{
    ClusterKey, ClusterModel, GatewayModel, PortModel, Provider, RouteAuth, TlsChain,
    VirtualHostModel,
};
use super::{counts, matches};
use crate::store::{ObjKey, ObjectRef};

/// The routes of one Gateway, arranged as its model needs them.
#[derive(Debug, Default)]
pub struct Assembly {
    /// port → hostname → host.
    hosts: BTreeMap<u16, BTreeMap<String, Host>>,
    /// Clusters the routes forward to, with how many routes use each.
    clusters: BTreeMap<ClusterKey, (ClusterModel, u32)>,
    /// Providers of the routes' own `ExternalAuth` filters, with how many routes define each.
    inline: BTreeMap<ObjKey, ((Provider, ClusterModel), u32)>,
    /// Providers the routes on each port enable, with how many route entries do.
    enabled: BTreeMap<u16, BTreeMap<ObjKey, u32>>,
}

/// One virtual host: the route entries placed on it, and its model while none changed.
#[derive(Debug, Default)]
struct Host {
    /// By (route, index into its entries): key order, as precedence ties fall back to it.
    entries: BTreeMap<(Arc<ObjectRef>, usize), Arc<Contribution>>,
    model: Option<Arc<VirtualHostModel>>,
}

fn count_in<K: Ord + Clone, V: Clone>(map: &mut BTreeMap<K, (V, u32)>, key: &K, value: &V) {
    match map.get_mut(key) {
        Some((_, n)) => *n += 1,
        None => {
            map.insert(key.clone(), (value.clone(), 1));
        }
    }
}

fn count_out<K: Ord, V>(map: &mut BTreeMap<K, (V, u32)>, key: &K) {
    if let Some((_, n)) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Assembly {
    /// Takes in what route `c` places on Gateway `gateway` (its index in the build).
    pub fn add(&mut self, c: &Arc<Contribution>, gateway: usize) {
        for (i, e) in c.entries.iter().enumerate() {
            if e.gateway != gateway {
                continue;
            }
            let port = self.hosts.entry(e.port).or_default();
            let host = match port.get_mut(&e.hostname) {
                Some(host) => host,
                None => port.entry(e.hostname.clone()).or_default(),
            };
            host.entries.insert((c.key.clone(), i), c.clone());
            host.model = None;
            if let RouteAuth::Enabled { provider, .. } = &e.route.auth {
                counts::add(self.enabled.entry(e.port).or_default(), provider);
            }
        }
        for (_, cluster) in c.clusters.iter().filter(|(g, _)| *g == gateway) {
            count_in(&mut self.clusters, &cluster.key, cluster);
        }
        for (key, p) in &c.inline_providers {
            count_in(&mut self.inline, key, p);
        }
    }

    /// Takes back what [`Assembly::add`] took in for `c`.
    pub fn remove(&mut self, c: &Arc<Contribution>, gateway: usize) {
        for (i, e) in c.entries.iter().enumerate() {
            if e.gateway != gateway {
                continue;
            }
            if let Some(port) = self.hosts.get_mut(&e.port) {
                if let Some(host) = port.get_mut(&e.hostname) {
                    host.entries.remove(&(c.key.clone(), i));
                    host.model = None;
                    if host.entries.is_empty() {
                        port.remove(&e.hostname);
                    }
                }
                if port.is_empty() {
                    self.hosts.remove(&e.port);
                }
            }
            if let RouteAuth::Enabled { provider, .. } = &e.route.auth
                && let Some(enabled) = self.enabled.get_mut(&e.port)
            {
                counts::remove(enabled, provider);
                if enabled.is_empty() {
                    self.enabled.remove(&e.port);
                }
            }
        }
        for (_, cluster) in c.clusters.iter().filter(|(g, _)| *g == gateway) {
            count_out(&mut self.clusters, &cluster.key);
        }
        for (key, _) in &c.inline_providers {
            count_out(&mut self.inline, key);
        }
    }

    /// The Gateway's model; hosts no route change touched keep their models.
    pub fn model(
        &mut self,
        info: &GatewayInfo,
        providers: &BTreeMap<ObjKey, ProviderResult>,
        attached: &BTreeMap<u16, BTreeSet<ObjKey>>,
    ) -> GatewayModel {
        let inline = &self.inline;
        // Inline provider keys cannot be GatewayExtension names (`external_auth::inline_key`).
        let lookup = |key: &ObjKey| match providers.get(key) {
            Some(found) => found.as_ref().ok(),
            None => inline.get(key).map(|(p, _)| p),
        };
        let mut clusters: BTreeMap<ClusterKey, ClusterModel> = self
            .clusters
            .iter()
            .map(|(k, (c, _))| (k.clone(), c.clone()))
            .collect();
        let mut used = BTreeMap::new();
        // Valid listeners with no routes still get an Envoy listener, so the port answers 404.
        let mut all_ports: BTreeSet<u16> = info
            .listeners
            .iter()
            .filter(|l| l.valid)
            .map(|l| l.port)
            .collect();
        all_ports.extend(self.hosts.keys().copied());
        let mut ports = Vec::with_capacity(all_ports.len());
        for port in all_ports {
            let mut port_providers = BTreeSet::new();
            let wanted = attached
                .get(&port)
                .into_iter()
                .flatten()
                .chain(self.enabled.get(&port).into_iter().flat_map(|e| e.keys()));
            for key in wanted {
                if let Some((p, c)) = lookup(key) {
                    port_providers.insert(key.clone());
                    used.insert(key.clone(), p.clone());
                    clusters.insert(c.key.clone(), c.clone());
                }
            }
            let listeners: Vec<&ListenerInfo> = info
                .listeners
                .iter()
                .filter(|l| l.valid && l.port == port)
                .collect();
            // Isolation counts the listeners that own their hostname even when their
            // certificates do not resolve: their hosts answer 404, not a broader listener's
            // routes (and policies).
            let owners: Vec<&ListenerInfo> = info
                .listeners
                .iter()
                .filter(|l| l.owns_hostname && l.port == port)
                .collect();
            let mut hosts: BTreeMap<String, Arc<VirtualHostModel>> = BTreeMap::new();
            for (hostname, host) in self.hosts.get_mut(&port).into_iter().flatten() {
                let model = host
                    .model
                    .get_or_insert_with(|| {
                        Arc::new(host_model(
                            hostname,
                            &host.entries,
                            owner(hostname, &owners),
                        ))
                    })
                    .clone();
                // A host whose routes all came through a less specific listener is left to the
                // owner's (wildcard or catch-all) host.
                if !model.routes.is_empty() {
                    hosts.insert(hostname.clone(), model);
                }
            }
            // Listener isolation: a listener with a hostname owns the requests for it, so it
            // gets a host even without routes (404), rather than leaving them to another
            // listener's less specific host.
            for l in &owners {
                if let Some(h) = &l.hostname {
                    hosts.entry(h.clone()).or_insert_with(|| {
                        Arc::new(VirtualHostModel {
                            hostname: h.clone(),
                            listener: l.name.clone(),
                            routes: Vec::new(),
                        })
                    });
                }
            }
            let virtual_hosts = hosts.into_values().collect();
            let tls = listeners
                .iter()
                .filter_map(|l| {
                    let t = l.tls.as_ref()?;
                    Some(TlsChain {
                        listener: l.name.clone(),
                        hostname: l.hostname.clone(),
                        certificates: t.certificates.clone(),
                        clients: t.clients.clone(),
                    })
                })
                .collect();
            ports.push(PortModel {
                port,
                virtual_hosts,
                providers: port_providers,
                tls,
            });
        }
        GatewayModel {
            key: info.key.clone(),
            path: info.path,
            ports,
            clusters,
            providers: used,
            backend_client: info.backend_client.clone(),
        }
    }
}

/// The listener that owns requests for `hostname` on its port: the most specific one whose
/// hostname matches it (Gateway API listener isolation: exact, then the longest wildcard, then
/// none). `None` only when no listener of the port matches, which attachment rules out.
fn owner<'a>(hostname: &str, listeners: &[&'a ListenerInfo]) -> Option<&'a ListenerInfo> {
    listeners
        .iter()
        .filter_map(|l| specificity(l.hostname.as_deref(), hostname).map(|s| (s, *l)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, l)| l)
}

/// How specifically a listener hostname matches a host's hostname (which may itself be a
/// wildcard): `None` when it does not.
fn specificity(listener: Option<&str>, host: &str) -> Option<usize> {
    let Some(listener) = listener else {
        return Some(0);
    };
    if listener == host {
        return Some(2 + listener.len());
    }
    let suffix = listener.strip_prefix('*')?;
    let covered = match host.strip_prefix('*') {
        Some(host_suffix) => host_suffix.ends_with(suffix),
        None => host.ends_with(suffix),
    };
    covered.then_some(1 + suffix.len())
}

fn host_model(
    hostname: &str,
    entries: &BTreeMap<(Arc<ObjectRef>, usize), Arc<Contribution>>,
    owner: Option<&ListenerInfo>,
) -> VirtualHostModel {
    let mut routes: Vec<_> = entries
        .iter()
        .map(|((_, i), c)| &c.entries[*i])
        .filter(|e| owner.is_none_or(|o| o.name == e.listener))
        .collect();
    let listener = owner.map(|o| o.name.clone()).unwrap_or_else(|| {
        routes
            .first()
            .map(|e| e.listener.clone())
            .unwrap_or_default()
    });
    // Stable: routes equal in precedence stay in key order.
    routes.sort_by(|a, b| matches::precedence((&a.route, &a.created), (&b.route, &b.created)));
    VirtualHostModel {
        hostname: hostname.to_string(),
        listener,
        routes: routes.into_iter().map(|e| e.route.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::specificity;

    #[test]
    fn exact_beats_the_longest_wildcard_beats_a_shorter_one_beats_none() {
        let host = "api.internal.example.com";
        let order: Vec<Option<usize>> = [
            Some("api.internal.example.com"),
            Some("*.internal.example.com"),
            Some("*.example.com"),
            None,
        ]
        .into_iter()
        .map(|l| specificity(l, host))
        .collect();
        assert!(order.windows(2).all(|w| w[0] > w[1]), "{order:?}");
        assert_eq!(specificity(Some("other.example.com"), host), None);
        assert_eq!(specificity(Some("*.example.org"), host), None);
        // A wildcard host is covered by an equal or broader wildcard listener only.
        assert!(specificity(Some("*.example.com"), "*.internal.example.com").is_some());
        assert_eq!(
            specificity(Some("*.internal.example.com"), "*.example.com"),
            None
        );
        assert_eq!(specificity(Some("api.example.com"), "*.example.com"), None);
    }
}
