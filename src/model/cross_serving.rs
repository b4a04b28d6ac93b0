//! HTTPRoutes and GRPCRoutes on one listener with hostnames in common (Gateway API v1.5.1,
//! `GRPCRouteSpec.hostnames`): "the implementation MUST accept exactly one of these two
//! routes": the oldest, then the first by `{namespace}/{name}`; the other gets
//! `Accepted=False` on that parent and serves nothing there.
//!
//! Decided per listener over the routes' computed contributions, so that a route change
//! re-decides only the listeners it was or is attached to; the loser's contribution is the
//! computed one with that listener's entries taken out (see [`served`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::conditions::Condition;
use super::contribution::{Contribution, ListenerAt};
use super::gateways::GatewayInfo;
use super::hostname;
use crate::model::condition_names as cond;
use crate::store::{Kind, ObjectRef};

/// A route's claim on one listener.
#[derive(Clone, Debug)]
struct Claim {
    created: Arc<str>,
    hostnames: Arc<Vec<String>>,
}

/// Which routes lost where, kept between builds.
#[derive(Debug, Default)]
pub struct CrossServing {
    by_listener: BTreeMap<ListenerAt, BTreeMap<Arc<ObjectRef>, Claim>>,
    /// Route → listener → the route it lost to.
    lost: BTreeMap<Arc<ObjectRef>, BTreeMap<ListenerAt, Arc<ObjectRef>>>,
}

impl CrossServing {
    /// Takes a route's computed contribution out; returns the listeners it claimed.
    pub fn remove(&mut self, c: &Contribution) -> Vec<ListenerAt> {
        let mut out = Vec::new();
        for (at, _) in &c.attachments {
            if let Some(routes) = self.by_listener.get_mut(at) {
                routes.remove(&c.key);
                if routes.is_empty() {
                    self.by_listener.remove(at);
                }
            }
            out.push(*at);
        }
        out
    }

    /// Takes a route's computed contribution in; returns the listeners it claims.
    pub fn add(&mut self, c: &Contribution) -> Vec<ListenerAt> {
        let mut out = Vec::new();
        for (at, hostnames) in &c.attachments {
            let claim = Claim {
                created: c.created.clone(),
                hostnames: hostnames.clone(),
            };
            self.by_listener
                .entry(*at)
                .or_default()
                .insert(c.key.clone(), claim);
            out.push(*at);
        }
        out
    }

    /// Decides `listeners` again; returns every route whose losses changed.
    pub fn decide(&mut self, listeners: &BTreeSet<ListenerAt>) -> BTreeSet<Arc<ObjectRef>> {
        let mut changed = BTreeSet::new();
        for at in listeners {
            let before: BTreeMap<Arc<ObjectRef>, Arc<ObjectRef>> = self
                .lost
                .iter()
                .filter_map(|(route, losses)| Some((route.clone(), losses.get(at)?.clone())))
                .collect();
            let after = self.decide_one(at);
            for route in before.keys().chain(after.keys()) {
                if before.get(route) != after.get(route) {
                    changed.insert(route.clone());
                }
            }
            for route in before.keys() {
                if let Some(losses) = self.lost.get_mut(route) {
                    losses.remove(at);
                    if losses.is_empty() {
                        self.lost.remove(route);
                    }
                }
            }
            for (route, winner) in after {
                self.lost.entry(route).or_default().insert(*at, winner);
            }
        }
        changed
    }

    /// The losers on one listener and who beat them: routes in age order, each accepted
    /// unless a route of the other kind accepted before it shares a hostname with it.
    fn decide_one(&self, at: &ListenerAt) -> BTreeMap<Arc<ObjectRef>, Arc<ObjectRef>> {
        let mut out = BTreeMap::new();
        let Some(routes) = self.by_listener.get(at) else {
            return out;
        };
        let kinds: BTreeSet<Kind> = routes.keys().map(|r| r.kind).collect();
        if kinds.len() < 2 {
            return out;
        }
        let mut order: Vec<(&Arc<ObjectRef>, &Claim)> = routes.iter().collect();
        // "The oldest Route based on creation timestamp", then "the Route appearing first in
        // alphabetical order by {namespace}/{name}" (the string: `-` sorts before `/`).
        let name = |r: &ObjectRef| format!("{}/{}", r.key.namespace, r.key.name);
        order.sort_by_cached_key(|(r, c)| (c.created.clone(), name(r), r.kind));
        let mut accepted: Vec<(&Arc<ObjectRef>, &Claim)> = Vec::new();
        for (route, claim) in order {
            let winner = accepted.iter().find(|(other, o)| {
                other.kind != route.kind && overlap(&o.hostnames, &claim.hostnames)
            });
            match winner {
                Some((other, _)) => {
                    out.insert(route.clone(), (*other).clone());
                }
                None => accepted.push((route, claim)),
            }
        }
        out
    }

    /// Where `route` lost, and to whom.
    pub fn losses(&self, route: &ObjectRef) -> Option<&BTreeMap<ListenerAt, Arc<ObjectRef>>> {
        self.lost.get(route)
    }
}

/// True when some hostname of `a` and some of `b` name a host in common (`*` is any host).
fn overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            x == "*"
                || y == "*"
                || !hostname::intersect(Some(x), std::slice::from_ref(y)).is_empty()
        })
    })
}

/// `raw` as served when it lost on the listeners of `lost`: nothing of it there, and
/// `Accepted=False` on each parentRef whose every listener it lost.
pub fn served(
    raw: &Arc<Contribution>,
    lost: Option<&BTreeMap<ListenerAt, Arc<ObjectRef>>>,
    gateways: &[GatewayInfo],
) -> Arc<Contribution> {
    let Some(lost) = lost.filter(|l| !l.is_empty()) else {
        return raw.clone();
    };
    let listener_name = |(g, l): ListenerAt| gateways[g].listeners[l].name.as_str();
    let mut c = Contribution::clone(raw);
    c.entries.retain(|e| {
        !lost
            .keys()
            .any(|at| at.0 == e.gateway && listener_name(*at) == e.listener)
    });
    c.attachments.retain(|(at, _)| !lost.contains_key(at));
    let kept: BTreeSet<usize> = c.attachments.iter().map(|((g, _), _)| *g).collect();
    c.gateways.retain(|g| kept.contains(g));
    c.clusters.retain(|(g, _)| kept.contains(g));
    c.parents = c
        .parents
        .iter()
        .filter(|p| kept.iter().any(|g| gateways[*g].key == **p))
        .cloned()
        .collect();
    if let Some(status) = &raw.status {
        let mut status = (**status).clone();
        for (p, via) in status.iter_mut().zip(&raw.through) {
            // The parent is rejected when every listener it attached through was lost.
            let Some(first) = via.first() else { continue };
            if !via.iter().all(|at| lost.contains_key(at)) {
                continue;
            }
            let (winner, listener) = (&lost[first], &gateways[first.0].listeners[first.1].name);
            p.conditions.retain(|c| c.type_ != cond::ACCEPTED);
            p.conditions.insert(
                0,
                Condition::fail(
                    cond::ACCEPTED,
                    cond::CONFLICTED,
                    format!(
                        "{winner} shares a hostname with this route on listener {listener} and was there first (older, or first by namespace/name); an HTTPRoute and a GRPCRoute cannot serve the same hostname on one listener"
                    ),
                ),
            );
        }
        c.status = Some(Arc::new(status));
    }
    Arc::new(c)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Builder, Model, ModelConfig, build};
    use crate::source::files::load_str;
    use crate::store::{Kind, ObjKey, ObjectRef, Store};

    const BASE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gatehouse}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: app}\nspec:\n  gatewayClassName: gatehouse\n  listeners:\n  - {name: a, protocol: HTTP, port: 8080}\n  - {name: b, protocol: HTTP, port: 8081}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {ports: [{port: 80}]}\n";

    /// A route of `kind` created `created`, on `section` (all listeners when empty).
    fn route(kind: &str, name: &str, created: &str, host: &str, section: &str) -> String {
        let section = if section.is_empty() {
            String::new()
        } else {
            format!(", sectionName: {section}")
        };
        let rule = if kind == "GRPCRoute" {
            "{backendRefs: [{name: web, port: 80}]}"
        } else {
            "{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: web, port: 80}]}"
        };
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: app, creationTimestamp: '{created}'}}\nspec:\n  parentRefs: [{{name: gw{section}}}]\n  hostnames: ['{host}']\n  rules: [{rule}]\n"
        )
    }

    fn apply(store: &mut Store, yaml: &str) {
        let out = load_str(Path::new("change.yaml"), yaml);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        for o in out.objects {
            store.apply(o);
        }
    }

    /// Incremental build, held to a fresh one.
    fn check(builder: &mut Builder, store: &Store) -> Model {
        let incremental = builder.build(store, &ModelConfig::default());
        let fresh = build(store, &ModelConfig::default());
        assert_eq!(incremental.status, fresh.status);
        assert_eq!(incremental.gateways, fresh.gateways);
        incremental
    }

    /// (Accepted status, reason) of a route's first parent.
    fn accepted(m: &Model, kind: Kind, name: &str) -> (String, String) {
        let parents = &m.status.routes_of(kind)[&ObjKey::new("app", name)];
        let c = parents[0]
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted")
            .expect("Accepted");
        (c.status.to_string(), c.reason.clone())
    }

    /// The route names served on `port`'s virtual host `host`.
    fn served(m: &Model, port: u16, host: &str) -> Vec<String> {
        let mut names: Vec<String> = m.gateways[0]
            .ports
            .iter()
            .filter(|p| p.port == port)
            .flat_map(|p| &p.virtual_hosts)
            .filter(|v| v.hostname == host)
            .flat_map(|v| &v.routes)
            .map(|r| r.route.to_string())
            .collect();
        names.dedup();
        names
    }

    /// Applies `routes` (kind, name, created, host, section), then builds and checks.
    fn put(
        store: &mut Store,
        builder: &mut Builder,
        routes: &[(&str, &str, &str, &str, &str)],
    ) -> Model {
        for (kind, name, created, host, section) in routes {
            apply(store, &route(kind, name, created, host, section));
        }
        check(builder, store)
    }

    const OLD: &str = "2025-01-01T00:00:00Z";
    const MID: &str = "2026-01-01T00:00:00Z";
    const NEW: &str = "2027-01-01T00:00:00Z";

    #[test]
    fn the_older_route_wins_a_shared_hostname_and_the_other_is_not_served_there() {
        let (mut store, mut builder) = (Store::new(), Builder::default());
        apply(&mut store, BASE);
        let (s, b) = (&mut store, &mut builder);
        let conflicted = ("False".to_string(), "Conflicted".to_string());
        let web = ("HTTPRoute", "web", MID, "a.example.com", "");

        let m = put(s, b, &[web, ("GRPCRoute", "api", NEW, "a.example.com", "")]);
        assert_eq!(accepted(&m, Kind::GrpcRoute, "api"), conflicted);
        assert_eq!(accepted(&m, Kind::HttpRoute, "web").0, "True");
        assert_eq!(served(&m, 8080, "a.example.com"), ["HTTPRoute app/web"]);
        let listeners = &m.status.gateways[&ObjKey::new("app", "gw")].listeners;
        assert_eq!(listeners[0].attached_routes, 1, "the loser is not attached");

        // The GRPCRoute becomes the older one: the HTTPRoute loses.
        let m = put(s, b, &[("GRPCRoute", "api", OLD, "a.example.com", "")]);
        assert_eq!(accepted(&m, Kind::HttpRoute, "web"), conflicted);
        assert_eq!(accepted(&m, Kind::GrpcRoute, "api").0, "True");
        assert_eq!(served(&m, 8081, "a.example.com"), ["GRPCRoute app/api"]);

        // A wildcard hostname overlaps too; a different hostname does not.
        let m = put(s, b, &[("GRPCRoute", "api", OLD, "*.example.com", "")]);
        assert_eq!(accepted(&m, Kind::HttpRoute, "web"), conflicted);
        let m = put(s, b, &[("GRPCRoute", "api", OLD, "b.example.com", "")]);
        assert_eq!(accepted(&m, Kind::HttpRoute, "web").0, "True");
        assert_eq!(served(&m, 8080, "a.example.com"), ["HTTPRoute app/web"]);
        assert_eq!(served(&m, 8080, "b.example.com"), ["GRPCRoute app/api"]);

        // On one listener each, the same hostname is no conflict.
        let m = put(
            s,
            b,
            &[
                ("GRPCRoute", "api", OLD, "a.example.com", "b"),
                ("HTTPRoute", "web", MID, "a.example.com", "a"),
            ],
        );
        assert_eq!(accepted(&m, Kind::HttpRoute, "web").0, "True");
        assert_eq!(accepted(&m, Kind::GrpcRoute, "api").0, "True");

        // A third route loses to the accepted GRPCRoute, not to the rejected HTTPRoute.
        let m = put(
            s,
            b,
            &[
                web,
                ("GRPCRoute", "api", OLD, "a.example.com", ""),
                ("GRPCRoute", "api2", NEW, "a.example.com", ""),
            ],
        );
        assert_eq!(accepted(&m, Kind::GrpcRoute, "api2").0, "True");
        assert_eq!(accepted(&m, Kind::HttpRoute, "web"), conflicted);

        // The winners go: the loser is served again.
        for name in ["api", "api2"] {
            assert!(s.delete(&ObjectRef {
                kind: Kind::GrpcRoute,
                key: ObjKey::new("app", name),
            }));
        }
        let m = check(b, s);
        assert_eq!(accepted(&m, Kind::HttpRoute, "web").0, "True");
        assert_eq!(served(&m, 8080, "a.example.com"), ["HTTPRoute app/web"]);
    }

    /// A route with a parentRef per listener that loses on one: that parentRef says so, the
    /// other stays accepted and served.
    #[test]
    fn each_parent_ref_says_whether_it_lost() {
        let (mut store, mut builder) = (Store::new(), Builder::default());
        apply(&mut store, BASE);
        let (s, b) = (&mut store, &mut builder);
        apply(
            s,
            &route("GRPCRoute", "api", NEW, "a.example.com", "a").replace(
                "parentRefs: [{name: gw, sectionName: a}]",
                "parentRefs: [{name: gw, sectionName: a}, {name: gw, sectionName: b}]",
            ),
        );
        let m = put(s, b, &[("HTTPRoute", "web", OLD, "a.example.com", "a")]);
        let parents = &m.status.grpc_routes[&ObjKey::new("app", "api")];
        let accepted_of = |i: usize| {
            let c = parents[i]
                .conditions
                .iter()
                .find(|c| c.type_ == "Accepted")
                .expect("Accepted");
            (
                parents[i].parent_ref.section_name.clone(),
                c.status.to_string(),
                c.reason.clone(),
            )
        };
        assert_eq!(
            accepted_of(0),
            (Some("a".into()), "False".into(), "Conflicted".into())
        );
        assert_eq!(
            accepted_of(1),
            (Some("b".into()), "True".into(), "Accepted".into())
        );
        assert_eq!(served(&m, 8080, "a.example.com"), ["HTTPRoute app/web"]);
        assert_eq!(served(&m, 8081, "a.example.com"), ["GRPCRoute app/api"]);
    }
}
