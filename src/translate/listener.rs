//! One Envoy listener per Gateway port: an HTTP connection manager fed by RDS (or scoped RDS,
//! see `scopes`): the chain guard (see `guard`), one disabled-by-default ext_authz filter per
//! provider, the router.

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::BoolValue;

use envoy_types::util::pack_any;

use super::common::{ads, duration, hcm_listener, socket};
use super::guard::{self, ChainProviders};
use super::{TranslateOptions, ext_authz, names, scopes, tls};
use crate::model::{EscapedSlashes, PathPolicy, PortModel, Provider};

/// How long an HTTP/2 connection on a draining chain gets between Envoy's first GOAWAY and the
/// last: Envoy's default, written down because docs/security-model.md relies on drains ending.
pub const HCM_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The listener of one port. `providers` are the port's resolved providers, in key order, and
/// `chain` their identities; `path` is the Gateway's path normalization.
pub fn listener(
    port: &PortModel,
    providers: &[&Provider],
    chain: &ChainProviders,
    scoped: bool,
    path: &PathPolicy,
    options: &TranslateOptions,
) -> Listener {
    let name = names::listener(port.port);
    let mut http_filters = vec![guard::filter(chain)];
    http_filters.extend(providers.iter().map(|p| HttpFilter {
        name: names::ext_authz_filter(&p.key),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            ext_authz::filter(p),
        ))),
        // Off unless a route enables it: a route no policy covers is not checked.
        disabled: true,
        ..Default::default()
    }));
    http_filters.push(HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    });
    let route_config = names::route_config(port.port);
    let route_specifier = if scoped {
        http_connection_manager::RouteSpecifier::ScopedRoutes(scopes::scoped_routes(&route_config))
    } else {
        http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_config,
        })
    };
    let hcm = HttpConnectionManager {
        stat_prefix: name.clone(),
        route_specifier: Some(route_specifier),
        http_filters,
        use_remote_address: Some(BoolValue { value: true }),
        drain_timeout: Some(duration(HCM_DRAIN_TIMEOUT)),
        // Route matching and policy see the path a backend will act on: `/a/../admin`,
        // `/./admin`, `/%61dmin` and `//admin` match as `/admin`, and `/admin%2Fx` is
        // redirected to `/admin/x` (what Envoy Gateway does by default). Without this a
        // protected rule is bypassed by spelling its path another way (docs/security-model.md).
        // Only the slash handling is a GatewayParameters choice (`%2F` has meaning to some
        // APIs); dot segments have none a backend could rely on, so they are always resolved.
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: path.merge_slashes,
        // `admin.example.com.` is the same host as `admin.example.com`: match it as such, not
        // as an unknown host falling to a catch-all.
        strip_trailing_host_dot: true,
        path_with_escaped_slashes_action: escaped_slashes_action(path.escaped_slashes) as i32,
        // Backends with appProtocol kubernetes.io/ws (and any other) may take WebSocket
        // upgrades; Envoy refuses them unless allowed here.
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let address = socket(&options.bind_address, port.port);
    if port.tls.is_empty() {
        return hcm_listener(name, address, hcm);
    }
    Listener {
        name,
        address: Some(address),
        listener_filters: vec![tls::inspector()],
        filter_chains: port.tls.iter().map(|t| tls::chain(t, &hcm)).collect(),
        ..Default::default()
    }
}

fn escaped_slashes_action(
    action: EscapedSlashes,
) -> http_connection_manager::PathWithEscapedSlashesAction {
    use http_connection_manager::PathWithEscapedSlashesAction as Envoy;
    match action {
        EscapedSlashes::UnescapeAndRedirect => Envoy::UnescapeAndRedirect,
        EscapedSlashes::RejectRequest => Envoy::RejectRequest,
        EscapedSlashes::UnescapeAndForward => Envoy::UnescapeAndForward,
        EscapedSlashes::KeepUnchanged => Envoy::KeepUnchanged,
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager::PathWithEscapedSlashesAction as Envoy,
    };
    use prost::Message;

    use super::listener;
    use crate::model::{EscapedSlashes, PathPolicy, PortModel};
    use crate::translate::{TranslateOptions, guard};

    fn hcm(path: PathPolicy) -> HttpConnectionManager {
        let port = PortModel {
            port: 8080,
            virtual_hosts: Vec::new(),
            providers: Default::default(),
            tls: Vec::new(),
        };
        let chain = guard::chain([]);
        let l = listener(
            &port,
            &[],
            &chain,
            false,
            &path,
            &TranslateOptions::default(),
        );
        let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
            panic!("no HCM")
        };
        HttpConnectionManager::decode(any.value.as_slice()).expect("HCM")
    }

    #[test]
    fn path_settings_reach_the_connection_manager_and_dot_segments_always_resolve() {
        use EscapedSlashes::*;
        for (escaped_slashes, envoy) in [
            (UnescapeAndRedirect, Envoy::UnescapeAndRedirect),
            (RejectRequest, Envoy::RejectRequest),
            (UnescapeAndForward, Envoy::UnescapeAndForward),
            (KeepUnchanged, Envoy::KeepUnchanged),
        ] {
            for merge_slashes in [true, false] {
                let h = hcm(PathPolicy {
                    escaped_slashes,
                    merge_slashes,
                });
                assert_eq!(h.path_with_escaped_slashes_action, envoy as i32);
                assert_eq!(h.merge_slashes, merge_slashes);
                assert_eq!(h.normalize_path.map(|b| b.value), Some(true));
            }
        }
        let default = hcm(PathPolicy::default());
        assert_eq!(
            default.path_with_escaped_slashes_action,
            Envoy::UnescapeAndRedirect as i32
        );
        assert!(default.merge_slashes);
    }
}
