//! Status health: which objects have a condition that does not hold, counted for the
//! `unhealthy_objects` metric, and each object's status change logged.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};

use crate::model::{self, Status};
use crate::store::Kind;

/// True when a condition is in its good state (`Conflicted` is good when False).
pub(super) fn holds(c: &model::Condition) -> bool {
    if c.type_ == "Conflicted" {
        !c.is_true()
    } else {
        c.is_true()
    }
}

fn all_hold(conditions: &[model::Condition]) -> bool {
    conditions.iter().all(holds)
}

fn route_ok(parents: &[model::RouteParentStatus]) -> bool {
    parents.iter().all(|p| all_hold(&p.conditions))
}

/// Objects other than HTTPRoutes with a condition that does not hold.
pub(super) fn count_unhealthy(status: &Status) -> usize {
    let bad = |c: &[model::Condition]| !all_hold(c);
    status
        .gateways
        .values()
        .filter(|g| bad(&g.conditions) || g.listeners.iter().any(|l| bad(&l.conditions)))
        .count()
        + status
            .traffic_policies
            .values()
            .filter(|a| a.iter().any(|a| bad(&a.conditions)))
            .count()
        + status
            .gateway_extensions
            .values()
            .filter(|c| bad(c))
            .count()
}

/// Logs each object whose conditions changed, at warn level when one does not hold; returns
/// the change in the number of HTTPRoutes with a condition that does not hold.
pub(super) fn log_status_changes(old: &Status, new: &Status) -> isize {
    log_changed(
        "Gateway",
        &old.gateways,
        &new.gateways,
        PartialEq::eq,
        |g| all_hold(&g.conditions) && g.listeners.iter().all(|l| all_hold(&l.conditions)),
    );
    let bad_routes = log_route_changes(old, new);
    log_changed(
        "TrafficPolicy",
        &old.traffic_policies,
        &new.traffic_policies,
        PartialEq::eq,
        |a| a.iter().all(|a| all_hold(&a.conditions)),
    );
    log_changed(
        "GatewayExtension",
        &old.gateway_extensions,
        &new.gateway_extensions,
        PartialEq::eq,
        |c| all_hold(c),
    );
    bad_routes
}

/// Logs the objects of one kind whose status is new or changed. Walks both maps together
/// rather than looking each key up, so that the diff stays a small part of a one-route
/// rebuild (BENCHMARKS.md, item 15).
fn log_changed<K: Ord + Display, V: Debug>(
    kind: &str,
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
    healthy: impl Fn(&V) -> bool,
) {
    let mut old = old.iter().peekable();
    for (key, v) in new {
        while old.next_if(|(k, _)| *k < key).is_some() {}
        if old
            .next_if(|(k, _)| *k == key)
            .is_some_and(|(_, o)| same(o, v))
        {
            continue;
        }
        if healthy(v) {
            tracing::info!(kind, object = %key, "status: all conditions hold");
        } else {
            tracing::warn!(kind, object = %key, status = ?v, "status: a condition does not hold");
        }
    }
}

/// Logs the routes (HTTPRoutes, GRPCRoutes) whose status changed; returns the change in the
/// number of them with a condition that does not hold. The route maps are persistent: the
/// diff skips the subtrees both builds share.
fn log_route_changes(old: &Status, new: &Status) -> isize {
    let mut bad_routes = 0isize;
    for kind in [Kind::HttpRoute, Kind::GrpcRoute] {
        let kind_name = kind.name();
        for item in old.routes_of(kind).diff(new.routes_of(kind)) {
            let (was, now) = match item {
                imbl::ordmap::DiffItem::Add(key, v) => (None, (key, v)),
                imbl::ordmap::DiffItem::Update { old, new } => (Some(old.1), new),
                imbl::ordmap::DiffItem::Remove(_, v) => {
                    bad_routes -= isize::from(!route_ok(v));
                    continue;
                }
            };
            bad_routes -= isize::from(was.is_some_and(|v| !route_ok(v)));
            let (key, v) = now;
            if route_ok(v) {
                tracing::info!(kind = kind_name, object = %key, "status: all conditions hold");
            } else {
                bad_routes += 1;
                tracing::warn!(kind = kind_name, object = %key, status = ?v, "status: a condition does not hold");
            }
        }
    }
    bad_routes
}
