//! xDS proxy authentication and grouping: which Gateway a proxy proves it serves, and the
//! cache group it is answered from.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use gatehouse_xds::{NodeGrouper, Peer, Snapshot, SnapshotCache};

use super::{Engine, Shared};
use crate::bootstrap::gateway_of;
use crate::store::ObjKey;

/// How a proxy proves which Gateway it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsAuth {
    /// It says so in its node metadata; fine on loopback (standalone mode), nowhere else.
    NodeMetadata,
    /// Its client certificate names the Gateway (see [`crate::pki`]); node metadata, when
    /// present, must agree.
    ClientCertificate,
}

/// The cache group of a Gateway's proxies.
pub fn group(gateway: &ObjKey) -> String {
    gateway.to_string()
}

impl Engine {
    /// The grouper the ADS server uses for this engine's proxies.
    pub fn grouper(&self, auth: XdsAuth) -> Arc<dyn NodeGrouper> {
        Arc::new(Grouper {
            shared: self.shared.clone(),
            cache: self.cache.clone(),
            auth,
        })
    }
}

struct Grouper {
    shared: Arc<Shared>,
    cache: SnapshotCache,
    auth: XdsAuth,
}

impl Grouper {
    fn gateway(&self, node: &Node, peer: &Peer) -> Result<ObjKey, String> {
        let claimed = gateway_of(node);
        match self.auth {
            XdsAuth::NodeMetadata => claimed.ok_or_else(|| {
                format!(
                    "proxy did not say which Gateway it serves (node metadata {})",
                    crate::bootstrap::GATEWAY_METADATA_KEY
                )
            }),
            XdsAuth::ClientCertificate => {
                let leaf = peer
                    .certs
                    .as_ref()
                    .and_then(|chain| chain.first())
                    .ok_or("no client certificate")?;
                let proven = crate::pki::gateway_of_cert(leaf)
                    .ok_or("the client certificate names no Gateway")?;
                match claimed {
                    Some(claimed) if claimed != proven => Err(format!(
                        "certificate of Gateway {proven} cannot fetch the config of Gateway {claimed}"
                    )),
                    _ => Ok(proven),
                }
            }
        }
    }
}

impl NodeGrouper for Grouper {
    fn group(&self, node: &Node, peer: &Peer) -> Result<String, String> {
        let gateway = self.gateway(node, peer)?;
        if let Ok(mut requested) = self.shared.requested.lock() {
            requested.insert(gateway.clone());
        }
        let key = group(&gateway);
        if self.shared.ready() && !self.shared.serves(&gateway) {
            tracing::warn!(node = %node.id, gateway = %gateway, "proxy asked for a Gateway Gatehouse does not serve; it gets an empty configuration");
            if self.cache.get(&key).is_none() {
                self.cache.set(&key, Snapshot::new());
            }
        }
        Ok(key)
    }
}
