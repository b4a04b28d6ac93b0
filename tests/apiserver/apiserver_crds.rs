//! Against a real kube-apiserver v1.33 (`make kube-apiserver`): the Gateway API standard CRDs and
//! Gatehouse's `crds/` install, the API server itself enforces the CRDs' CEL rules with their
//! messages, and accepts the walkthrough's objects. Also checks the test harness: API server
//! stop/restart keeps etcd's data, RBAC applies to extra tokens, and a TestNet host is
//! reachable from the root namespace, directly and through Envoy.

use crate::support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use support::apiserver::{ApiServer, apply, read_documents};
use support::procs::{Proc, free_port, wait_for_port, workspace_bin};
use support::testnet::TestNet;

const KGATEWAY: &str = "gateway.kgateway.dev/v1alpha1";

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    apply(client, &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// Applies `doc` and asserts the API server refuses it as invalid (422) with `message`.
async fn assert_rejected(client: &kube::Client, doc: Value, message: &str) {
    match apply(client, &doc).await {
        Ok(obj) => panic!(
            "the API server accepted an object it must reject with {message:?}: {}",
            serde_json::to_string(&obj).unwrap_or_default()
        ),
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                status.code, 422,
                "want 422 Invalid with {message:?}, got {status:?}"
            );
            assert!(
                status.message.contains(message),
                "the rejection does not carry the CRD's message {message:?}: {}",
                status.message
            );
        }
        Err(e) => panic!("want 422 Invalid with {message:?}, got {e}"),
    }
}

/// The API resource of a kind (plural guessed the way kube-rs does, right for these kinds).
fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn gateway_extension(ext_auth: Value) -> Value {
    json!({
        "apiVersion": KGATEWAY,
        "kind": "GatewayExtension",
        "metadata": {"namespace": "policies", "name": "bad-ext-auth"},
        "spec": {"type": "ExtAuth", "extAuth": ext_auth},
    })
}

#[tokio::test]
async fn api_server_rejects_objects_breaking_the_crd_cel_rules() {
    let server = ApiServer::start();
    let installed = server.install_gateway_api_and_gatehouse_crds().await;
    for want in [
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "tlsroutes.gateway.networking.k8s.io",
        "trafficpolicies.gateway.kgateway.dev",
        "gatewayextensions.gateway.kgateway.dev",
    ] {
        assert!(
            installed.iter().any(|n| n == want),
            "{want} not installed: {installed:?}"
        );
    }
    let client = server.client().await;
    create_namespace(&client, "policies").await;

    assert_rejected(
        &client,
        json!({
            "apiVersion": KGATEWAY,
            "kind": "TrafficPolicy",
            "metadata": {"namespace": "policies", "name": "both"},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "http"}],
                "extAuth": {"extensionRef": {"name": "basic-ext-auth"}, "disable": {}},
            },
        }),
        "exactly one of extensionRef or disable must be set",
    )
    .await;

    assert_rejected(
        &client,
        json!({
            "apiVersion": KGATEWAY,
            "kind": "TrafficPolicy",
            "metadata": {"namespace": "policies", "name": "select-all"},
            "spec": {
                "targetSelectors": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "matchLabels": {}}],
                "extAuth": {"disable": {}},
            },
        }),
        "matchLabels must name at least one label",
    )
    .await;

    // A kgateway policy: no targetRefs, a selector, and fields Gatehouse does not serve. The
    // server keeps them as written, so Gatehouse can report them (and fail closed on jwtAuth).
    let kgateway = json!({
        "apiVersion": KGATEWAY,
        "kind": "TrafficPolicy",
        "metadata": {"namespace": "policies", "name": "kgateway-style"},
        "spec": {
            "targetSelectors": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "matchLabels": {"app": "web"}, "sectionName": "admin"}],
            "jwtAuth": {"providers": {"a": {"issuer": "https://issuer.example.com"}}},
            "cors": {"allowOrigins": ["https://a.example.com"]},
            "autoHostRewrite": true,
        },
    });
    let stored = apply(&client, &kgateway)
        .await
        .expect("a kgateway TrafficPolicy is accepted");
    assert_eq!(stored.data["spec"], kgateway["spec"], "stored as written");

    let grpc = json!({"backendRef": {"name": "ext-authz", "port": 4444}});
    assert_rejected(
        &client,
        gateway_extension(json!({"grpcService": grpc, "httpService": grpc})),
        "exactly one of grpcService or httpService must be set",
    )
    .await;

    assert_rejected(
        &client,
        gateway_extension(json!({"grpcService": grpc, "statusOnError": 600})),
        "statusOnError must be between 100 and 511",
    )
    .await;

    // None of them was stored; the same object with a valid status is.
    let exts: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "policies",
        &resource("gateway.kgateway.dev", "v1alpha1", "GatewayExtension"),
    );
    assert!(
        exts.list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    apply(
        &client,
        &gateway_extension(json!({"grpcService": grpc, "statusOnError": 503})),
    )
    .await
    .expect("a GatewayExtension with statusOnError 503 is valid");
}

#[tokio::test]
async fn api_server_accepts_the_walkthrough_objects() {
    let net = TestNet::new("crds");
    let server = ApiServer::start();
    server.install_gateway_api_and_gatehouse_crds().await;
    let client = server.client().await;
    // Gateway API's ValidatingAdmissionPolicy applies on v1.33 and was installed with the CRDs.
    let vap = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "safe-upgrades.gateway.networking.k8s.io"},
    });
    let vaps = resource(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
    );
    Api::<DynamicObject>::all_with(client.clone(), &vaps)
        .get(vap["metadata"]["name"].as_str().unwrap_or_default())
        .await
        .expect("the Gateway API ValidatingAdmissionPolicy is installed");

    create_namespace(&client, "kgateway-system").await;
    let repo = support::repo();
    let docs = read_documents(&[
        repo.join("examples/ext-auth/base"),
        repo.join("examples/ext-auth/steps"),
    ]);
    let mut applied = Vec::new();
    for (file, mut doc) in docs {
        if doc["kind"] == "EndpointSlice" {
            // The examples point at 127.0.0.1, which the API server refuses (that is why
            // tests run their backends in a TestNet): the loopback slice is rejected, the same
            // slice pointing at the TestNet host is accepted.
            assert_rejected(&client, doc.clone(), "loopback").await;
            doc["endpoints"][0]["addresses"] = json!([net.host_ip().to_string()]);
        }
        let obj = apply(&client, &doc).await.unwrap_or_else(|e| {
            panic!(
                "{} {} from {} was refused: {e}",
                doc["kind"],
                doc["metadata"]["name"],
                file.display()
            )
        });
        // Gatehouse's objects come back with the spec as written.
        if doc["apiVersion"] == KGATEWAY {
            let spec = doc["spec"].as_object().expect("spec");
            for (k, v) in spec {
                assert_eq!(
                    &obj.data["spec"][k], v,
                    "{} {}: spec.{k} changed on the server",
                    doc["kind"], doc["metadata"]["name"]
                );
            }
        }
        applied.push(doc["kind"].as_str().unwrap_or_default().to_string());
    }
    let count = |kind: &str| applied.iter().filter(|k| *k == kind).count();
    // The HTTPS step (03) applies the base GatewayClass and Gateway again, with an HTTPS
    // listener: the API server's CEL rules accept it.
    for (kind, n) in [
        ("GatewayExtension", 1),
        ("TrafficPolicy", 2),
        ("GatewayClass", 2),
        ("Gateway", 2),
        ("HTTPRoute", 1),
        ("EndpointSlice", 2),
    ] {
        assert_eq!(count(kind), n, "{kind}s applied: {applied:?}");
    }
}

#[tokio::test]
async fn api_server_restart_keeps_objects_and_rbac_applies_to_extra_tokens() {
    let mut server =
        ApiServer::start_with_tokens(&[("viewer-token-1", "viewer", "viewer-uid", &["testers"])]);
    let (api_rss, etcd_rss) = server.rss_kib();
    eprintln!(
        "kube-apiserver ready after {:?}; RSS kube-apiserver {} MiB, etcd {} MiB",
        server.last_ready_after(),
        api_rss / 1024,
        etcd_rss / 1024
    );
    let client = server.client().await;
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": "default", "name": "survives"},
        "data": {"k": "v"},
    });
    apply(&client, &cm).await.expect("create ConfigMap");

    // RBAC: the extra user is authenticated but granted nothing.
    let viewer = server.client_for("viewer").await;
    let cms: Api<DynamicObject> =
        Api::namespaced_with(viewer, "default", &resource("", "v1", "ConfigMap"));
    match cms.get("survives").await {
        Err(kube::Error::Api(s)) => assert!(
            s.code == 403 && s.message.contains("\"viewer\""),
            "want 403 for user viewer, got {s:?}"
        ),
        other => panic!("an unprivileged token read a ConfigMap: {other:?}"),
    }

    let stopping = Instant::now();
    server.stop();
    eprintln!("stopped (SIGTERM) in {:?}", stopping.elapsed());
    assert!(!server.is_running());
    let admin = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &resource("", "v1", "ConfigMap"),
    );
    assert!(
        admin.get("survives").await.is_err(),
        "the API server still answers after stop()"
    );

    server.restart();
    eprintln!("restarted, ready after {:?}", server.last_ready_after());
    let got = admin
        .get("survives")
        .await
        .expect("the old client reads again after restart");
    assert_eq!(got.data["data"]["k"], "v");
}

#[test]
fn testnet_host_is_reachable_from_the_root_namespace_and_through_envoy() {
    let net = TestNet::new("reach");
    let host = net.host_ip();
    assert_ne!(host, net.root_ip());
    assert!(host.is_private() && !host.is_loopback());
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut echo = net.command(workspace_bin("gatehouse-echo"));
    echo.args(["--addr", &format!("{host}:{port}"), "--name", "in-netns"]);
    let echo = Proc::spawn("echo", echo, dir.path());
    // `ip netns exec` enters the namespace after the fork: poll until the child is inside.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !net.pids().contains(&echo.child.id()) {
        assert!(
            Instant::now() < deadline,
            "the echo server does not run inside {}",
            net.name()
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Directly from the test process, which lives in the root namespace.
    let deadline = Instant::now() + Duration::from_secs(10);
    let direct = loop {
        match get_from(host, port, "/headers") {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!(
                "GET http://{host}:{port}/headers failed: {e}\n{}",
                echo.tail(20)
            ),
        }
    };
    assert!(direct.starts_with("HTTP/1.1 200"), "{direct}");
    assert!(
        direct
            .to_ascii_lowercase()
            .contains("x-echo-backend: in-netns"),
        "{direct}"
    );

    // Through a real Envoy in the root namespace: a static listener on loopback whose cluster
    // is the TestNet host.
    let (listener, admin) = (free_port(), free_port());
    let bootstrap = dir.path().join("envoy.yaml");
    std::fs::write(&bootstrap, envoy_bootstrap(listener, admin, host, port)).expect("write");
    let envoy = support::envoy_command(&bootstrap);
    let envoy = Proc::spawn("envoy", envoy, dir.path());
    wait_for_port(listener, Duration::from_secs(20), "envoy");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = support::http::get(listener, "www.example.com", "/headers", &[]);
        match r {
            Ok(r) if r.status == 200 => {
                assert_eq!(r.header("x-echo-backend"), Some("in-netns"));
                break;
            }
            other if Instant::now() > deadline => panic!(
                "Envoy did not reach {host}:{port}: {other:?}\n{}{}",
                envoy.tail(20),
                echo.tail(20)
            ),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    drop(envoy);
    let name = net.name().to_string();
    drop(echo);
    drop(net);
    let left = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&name),
        "namespace {name} left behind"
    );
}

/// One HTTP/1.1 GET to `ip:port`; the raw response.
fn get_from(ip: Ipv4Addr, port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn envoy_bootstrap(listener: u16, admin: u16, host: Ipv4Addr, port: u16) -> String {
    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: testnet
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listener}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: testnet
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: testnet}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: testnet
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: testnet
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {host}, port_value: {port}}}}}}}
"#
    )
}
