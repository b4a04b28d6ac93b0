//! The cluster quickstart (examples/in-cluster/) against a real kube-apiserver, as a user applies
//! it after `helm install`: the chart's objects (RBAC, GatewayParameters, GatewayClass), then
//! every quickstart file unchanged, then the controller with the chart's command line and only
//! the chart's RBAC. Every object is accepted, every status the README promises is written, the
//! Gateway's proxy objects are provisioned, and the Deployments run the images `make image`
//! builds. There is no kubelet: pods never run, so `Programmed` (which follows the proxies) is
//! not asserted, and the requests of the README's curl steps are not sent.

use crate::support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;
use support::apiserver::{self, ApiServer, read_documents};
use support::helm::render;
use support::procs::{Proc, free_port, gatehouse};
use support::walkthrough::{GW, KG, holds};

const RELEASE_NS: &str = "gatehouse-system";
const DEMO_NS: &str = "gatehouse-demo";
const APP_NS: &str = "httpbin";
const SA_USER: &str = "system:serviceaccount:gatehouse-system:gatehouse";
const SA_TOKEN: &str = "quickstart-service-account-token";

fn quickstart_dir() -> PathBuf {
    support::repo().join("examples/in-cluster")
}

async fn dynamic_api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (resource, caps) =
        kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
            .await
            .unwrap_or_else(|e| panic!("discover {api_version} {kind}: {e}"));
    if caps.scope == Scope::Namespaced {
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

/// The chart's command line for the controller (its Deployment's args and downward-API env),
/// with the listen addresses moved to free loopback ports.
fn chart_controller(chart: &[Value], kubeconfig: &std::path::Path) -> (Command, u16) {
    let deployment = chart
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart's Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    let admin_port = free_port();
    let mut moved = 0;
    for i in 0..args.len() {
        let port = match args[i].as_str() {
            "--xds-address" => free_port(),
            "--admin-address" => admin_port,
            _ => continue,
        };
        args[i + 1] = format!("127.0.0.1:{port}");
        moved += 1;
    }
    assert_eq!(
        moved, 2,
        "the chart sets --xds-address and --admin-address: {args:?}"
    );
    args.extend([
        "--debug-address".to_string(),
        format!("127.0.0.1:{}", free_port()),
    ]);
    let mut cmd = Command::new(gatehouse());
    cmd.args(&args)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", "gatehouse-quickstart")
        .env("POD_NAMESPACE", RELEASE_NS)
        .env("RUST_LOG", "info,gatehouse=debug");
    (cmd, admin_port)
}

struct World {
    api: ApiServer,
    client: kube::Client,
    controller: Option<Proc>,
    dir: tempfile::TempDir,
}

impl World {
    fn logs(&self) -> String {
        let mut out = self
            .controller
            .as_ref()
            .map(|p| p.tail(80))
            .unwrap_or_default();
        out.push_str(&self.api.logs(20));
        out
    }

    async fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let api = dynamic_api(&self.client, api_version, kind, ns).await;
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .map(|o| serde_json::to_value(o).expect("json"))
    }

    /// Polls an object until `check` holds for it (30 s); returns it.
    async fn wait(
        &self,
        what: &str,
        (api_version, kind, ns, name): (&str, &str, &str, &str),
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.get(api_version, kind, ns, name).await;
            if last.as_ref().is_some_and(&check) {
                return last.expect("checked");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out waiting for {what} ({kind} {ns}/{name}); last: {:#}\n{}",
            last.unwrap_or(Value::Null),
            self.logs()
        );
    }
}

/// `status.parents[]` of a route: one entry, Accepted and ResolvedRefs.
fn route_resolved(route: &Value) -> bool {
    route["status"]["parents"].as_array().is_some_and(|p| {
        p.len() == 1
            && holds(&p[0]["conditions"], "Accepted")
            && holds(&p[0]["conditions"], "ResolvedRefs")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_applies_and_the_controller_accepts_and_provisions_it() {
    let groups: &[&str] = &[
        "system:serviceaccounts",
        "system:serviceaccounts:gatehouse-system",
    ];
    let api = ApiServer::start_with_tokens(&[(SA_TOKEN, SA_USER, "quickstart-sa-uid", groups)]);
    // `helm install`: the CRDs (the Gateway API's are the README's step before), the release
    // namespace, the chart's objects.
    api.install_gateway_api_and_gatehouse_crds().await;
    let client = api.client().await;
    let mut w = World {
        api,
        client,
        controller: None,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    apiserver::apply(
        &w.client,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NS}}),
    )
    .await
    .expect("release namespace");
    let chart = render(&[]);
    for doc in chart
        .iter()
        .filter(|d| d["kind"] != "CustomResourceDefinition")
    {
        apiserver::apply(&w.client, doc).await.unwrap_or_else(|e| {
            panic!(
                "apply the chart's {} {}: {e}",
                doc["kind"], doc["metadata"]["name"]
            )
        });
    }

    // `kubectl apply -f examples/in-cluster/`: every file in name order, unchanged.
    let docs = read_documents(&[quickstart_dir()]);
    let mut applied = Vec::new();
    for (file, doc) in &docs {
        apiserver::apply(&w.client, doc).await.unwrap_or_else(|e| {
            panic!(
                "{}: {} {} rejected: {e}",
                file.display(),
                doc["kind"],
                doc["metadata"]["name"]
            )
        });
        applied.push(format!(
            "{}/{}",
            doc["kind"].as_str().unwrap_or_default(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    for want in [
        "Namespace/gatehouse-demo",
        "Namespace/httpbin",
        "Deployment/ext-authz",
        "Service/ext-authz",
        "Deployment/httpbin",
        "Service/httpbin",
        "Gateway/http",
        "HTTPRoute/httpbin",
        "HTTPRoute/httpbin-public",
        "GatewayExtension/basic-ext-auth",
        "TrafficPolicy/gateway-ext-auth-policy",
        "TrafficPolicy/route-ext-auth-policy",
    ] {
        assert!(
            applied.iter().any(|a| a == want),
            "{want} not in the quickstart: {applied:?}"
        );
    }

    // The Deployments run the images `make image` builds, under the same names and tags.
    let out = Command::new("make")
        .args(["-s", "image-names"])
        .current_dir(support::repo())
        .env_remove("IMAGE_REGISTRY")
        .env_remove("IMAGE_TAG")
        .env_remove("MAKEFLAGS")
        .output()
        .expect("make image-names");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for (ns, name) in [(DEMO_NS, "ext-authz"), (APP_NS, "httpbin")] {
        let deploy = w
            .get("apps/v1", "Deployment", ns, name)
            .await
            .expect("stored");
        for c in deploy["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
        {
            let image = c["image"].as_str().expect("image");
            assert!(
                built.iter().any(|b| b == image),
                "{ns}/{name} runs {image}, `make image` builds {built:?}"
            );
            assert_eq!(
                c["imagePullPolicy"], "IfNotPresent",
                "kind-loaded images are not pulled"
            );
        }
    }

    // The controller as the chart runs it, with only the chart's rights.
    let kubeconfig = w.api.kubeconfig_for(SA_USER);
    let (cmd, admin_port) = chart_controller(&chart, &kubeconfig);
    w.controller = Some(Proc::spawn("gatehouse", cmd, w.dir.path()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err() {
        let exited = w
            .controller
            .as_mut()
            .and_then(|p| p.child.try_wait().ok().flatten());
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the controller did not start\n{}",
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    w.wait(
        "GatewayClass Accepted",
        (GW, "GatewayClass", "", "gatehouse"),
        |o| holds(&o["status"]["conditions"], "Accepted"),
    )
    .await;
    // Both routes attached: the quickstart's Gateway is complete.
    let gw = w
        .wait(
            "Gateway Accepted, listener resolved, both routes attached",
            (GW, "Gateway", DEMO_NS, "http"),
            |o| {
                let s = &o["status"];
                holds(&s["conditions"], "Accepted")
                    && s["listeners"].as_array().is_some_and(|l| {
                        l.len() == 1
                            && holds(&l[0]["conditions"], "ResolvedRefs")
                            && holds(&l[0]["conditions"], "Accepted")
                            && l[0]["attachedRoutes"] == 2
                    })
            },
        )
        .await;
    assert_eq!(gw["status"]["listeners"][0]["name"], "http", "{gw:#}");
    // Routes resolve with their Services alone: with no kubelet the Services have no
    // endpoints, and the backendRefs still resolve (endpoints decide traffic, not status).
    for name in ["httpbin", "httpbin-public"] {
        w.wait(
            "HTTPRoute Accepted and ResolvedRefs",
            (GW, "HTTPRoute", APP_NS, name),
            route_resolved,
        )
        .await;
    }
    let ext = w
        .wait(
            "GatewayExtension Accepted",
            (KG, "GatewayExtension", DEMO_NS, "basic-ext-auth"),
            |o| holds(&o["status"]["conditions"], "Accepted"),
        )
        .await;
    assert!(
        holds(&ext["status"]["conditions"], "ResolvedRefs"),
        "{ext:#}"
    );
    for (ns, name, ancestor) in [
        (DEMO_NS, "gateway-ext-auth-policy", "http"),
        (APP_NS, "route-ext-auth-policy", "http"),
    ] {
        let policy = w
            .wait(
                "TrafficPolicy Accepted and Attached",
                (KG, "TrafficPolicy", ns, name),
                |o| {
                    o["status"]["ancestors"].as_array().is_some_and(|a| {
                        !a.is_empty()
                            && holds(&a[0]["conditions"], "Accepted")
                            && holds(&a[0]["conditions"], "Attached")
                    })
                },
            )
            .await;
        assert_eq!(
            policy["status"]["ancestors"][0]["ancestorRef"]["name"], ancestor,
            "{policy:#}"
        );
    }

    // The Gateway's proxy, provisioned where the README port-forwards to it.
    for kind in ["Deployment", "Service", "ServiceAccount", "ConfigMap"] {
        let api_version = if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        };
        w.wait(
            &format!("the provisioned {kind}"),
            (api_version, kind, DEMO_NS, "gatehouse-http"),
            |_| true,
        )
        .await;
    }
    w.wait(
        "the proxies' certificate Secret",
        ("v1", "Secret", DEMO_NS, "gatehouse-http-xds-tls"),
        |_| true,
    )
    .await;
    let svc = w
        .get("v1", "Service", DEMO_NS, "gatehouse-http")
        .await
        .expect("Service");
    let ports: Vec<&Value> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["port"])
        .collect();
    assert_eq!(
        ports,
        [&Value::from(8080)],
        "the README port-forwards 8080: {svc:#}"
    );
    let proxy = w
        .get("apps/v1", "Deployment", DEMO_NS, "gatehouse-http")
        .await
        .expect("Deployment");
    let params = chart
        .iter()
        .find(|o| o["kind"] == "GatewayParameters")
        .expect("the chart's GatewayParameters");
    let envoy = proxy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "envoy")
        .unwrap_or_else(|| panic!("no envoy container: {proxy:#}"));
    let image = &params["spec"]["kube"]["envoyContainer"]["image"];
    assert!(
        envoy["image"]
            .as_str()
            .is_some_and(|i| i.contains(image["repository"].as_str().unwrap_or("?"))
                && i.ends_with(image["tag"].as_str().unwrap_or("?"))),
        "proxy image {} is not the chart's {image}",
        envoy["image"]
    );
    // The proxies dial the chart's controller Service.
    let cm = w
        .get("v1", "ConfigMap", DEMO_NS, "gatehouse-http")
        .await
        .expect("ConfigMap");
    let bootstrap: Value = serde_json::from_str(
        cm["data"]["bootstrap.json"]
            .as_str()
            .expect("bootstrap.json"),
    )
    .expect("JSON");
    let xds = serde_json::to_string(&bootstrap["staticResources"]["clusters"][0]).expect("json");
    assert!(xds.contains("gatehouse.gatehouse-system.svc"), "{xds}");
    assert!(
        chart
            .iter()
            .any(|o| o["kind"] == "Service" && o["metadata"]["name"] == "gatehouse")
    );

    let log = w
        .controller
        .as_ref()
        .map(|p| p.tail(400))
        .unwrap_or_default();
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "RBAC denials:\n{log}"
    );
}
