//! A Gateway's path normalization through a real Envoy: the safe default, and each
//! GatewayParameters `spec.path` choice the Gateway's listeners then apply.

use crate::support;

use support::http;
use support::standalone::{HOST, World};

/// Points the walkthrough's Gateway at GatewayParameters `paths` holding `path`, then waits
/// until the answer to `/admin%2Fx` passes `check`.
fn set_path(w: &World, path: &str, check: impl Fn(&http::Response) -> bool) {
    let gateway = std::fs::read_to_string(w.manifests.join("gateway.yaml")).expect("gateway");
    let class = "  gatewayClassName: gatehouse\n";
    assert!(gateway.contains(class));
    if !gateway.contains("parametersRef") {
        w.write(
            "gateway.yaml",
            &gateway.replace(
                class,
                &format!("{class}  infrastructure: {{parametersRef: {{group: gateway.kgateway.dev, kind: GatewayParameters, name: paths}}}}\n"),
            ),
        );
    }
    w.write(
        "paths.yaml",
        &format!(
            "apiVersion: gateway.kgateway.dev/v1alpha1\nkind: GatewayParameters\nmetadata: {{name: paths, namespace: kgateway-system}}\nspec: {{path: {path}}}\n"
        ),
    );
    w.wait_for_response(
        &format!("/admin%2Fx with {path}"),
        || get(w, "/admin%2Fx"),
        check,
    );
}

fn get(w: &World, path: &str) -> std::io::Result<http::Response> {
    http::get(w.listener_port, HOST, path, &[])
}

/// The path the echo backend received.
fn echoed_path(r: &http::Response) -> String {
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    doc["path"].as_str().unwrap_or_default().to_string()
}

#[test]
fn escaped_slashes_and_merged_slashes_follow_the_gateways_parameters() {
    let w = World::start(false);

    // Default: redirected to the unescaped path; `//` merged before matching and forwarding.
    let r = get(&w, "/admin%2Fx").expect("request");
    assert!((300..400).contains(&r.status), "{r:?}");
    assert_eq!(r.header("location"), Some("/admin/x"), "{r:?}");
    let r = get(&w, "//admin").expect("request");
    assert_eq!((r.status, echoed_path(&r)), (200, "/admin".into()));

    set_path(&w, "{escapedSlashesAction: RejectRequest}", |r| {
        r.status == 400
    });

    // KeepUnchanged: matched and forwarded as sent (what GitLab-style APIs need).
    set_path(&w, "{escapedSlashesAction: KeepUnchanged}", |r| {
        r.status == 200 && echoed_path(r) == "/admin%2Fx"
    });

    // UnescapeAndForward: the backend gets the unescaped path, no redirect.
    set_path(&w, "{escapedSlashesAction: UnescapeAndForward}", |r| {
        r.status == 200 && echoed_path(r) == "/admin/x"
    });

    // disableMergeSlashes: `//admin` reaches the backend as sent; escaped slashes are back to
    // the default redirect, and dot segments are still resolved.
    set_path(&w, "{disableMergeSlashes: true}", |r| {
        r.header("location") == Some("/admin/x")
    });
    let r = w.wait_for_response(
        "//admin kept",
        || get(&w, "//admin"),
        |r| r.status == 200 && echoed_path(r) == "//admin",
    );
    assert_eq!(r.status, 200);
    let r = get(&w, "/public/../admin").expect("request");
    assert_eq!((r.status, echoed_path(&r)), (200, "/admin".into()));
}
