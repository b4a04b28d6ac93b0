//! Ready endpoints by Service and port name, kept up to date as EndpointSlices change: every
//! route to a Service shares one list, where each computed and copied its own (12% of a
//! 10,000-route model build, `perf`, BENCHMARKS.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One ready endpoint address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// A Service's ready endpoints by the name of the slice port they serve ("" when unnamed).
pub type ByPort = BTreeMap<String, Arc<Vec<Endpoint>>>;

/// The endpoints `slices` (one Service's) hold. A slice port is matched by name, as kube-proxy
/// does; within a slice the first port of a name counts.
pub fn by_port<'a>(slices: impl Iterator<Item = &'a EndpointSlice>) -> ByPort {
    let mut out: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    for slice in slices {
        let mut seen = BTreeSet::new();
        for port in slice.ports.iter().flatten() {
            let name = port.name.as_deref().unwrap_or("");
            if !seen.insert(name) {
                continue;
            }
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let list = out.entry(name.to_string()).or_default();
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for address in &ep.addresses {
                    list.push(Endpoint {
                        address: address.clone(),
                        port: number,
                    });
                }
            }
        }
    }
    out.into_iter()
        .map(|(name, mut list)| {
            list.sort();
            list.dedup();
            (name, Arc::new(list))
        })
        .collect()
}
