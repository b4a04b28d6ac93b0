//! charts/gatehouse, linted and rendered by real Helm: the Helm v4 Go SDK from the pinned PyPI
//! wheel `helm-python-sdk`, which `make test` installs into `.venv` (tests/helm/render.py drives
//! it). The rendered objects are checked against what the README promises: the controller's
//! flags, the RBAC table exactly, a non-root read-only container with /healthz and /readyz
//! probes, and the schema rejecting wrong types.

use crate::support;

use std::path::Path;

use serde_json::{Value, json};
use support::helm::{helm, render};
use support::repo;

mod dashboard;
mod settings;

fn kinds(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().expect("kind"))
        .collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "exactly one {kind} expected, got {found:?}");
    found[0]
}

fn controller(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect()
}

/// The value following `flag` in the container's args.
fn flag<'a>(args: &[&'a str], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    args[at + 1]
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let names = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let chart = repo().join("charts/gatehouse/crds");
    let generated = repo().join("crds");
    assert_eq!(
        names(&chart),
        names(&generated),
        "charts/gatehouse/crds/ must hold exactly the files of crds/: cp crds/*.yaml charts/gatehouse/crds/"
    );
    for name in names(&generated) {
        assert!(
            std::fs::read(chart.join(&name)).expect("chart crd")
                == std::fs::read(generated.join(&name)).expect("crd"),
            "charts/gatehouse/crds/{name} drifted from crds/{name}: cp crds/*.yaml charts/gatehouse/crds/"
        );
    }
}

#[test]
fn lint_has_no_errors() {
    for values in [
        &[][..],
        &["tests/helm/values-all.yaml"][..],
        &["tests/helm/values-openshift.yaml"][..],
    ] {
        let mut args = vec!["lint"];
        args.extend_from_slice(values);
        let out = helm(&args);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !report.contains("[ERROR]"),
            "helm lint {values:?}:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("1 chart(s) linted, 0 error(s)"), "{report}");
    }
}

#[test]
fn default_values_render_the_controller_and_its_rbac() {
    let objects = render(&[]);
    let mut got = kinds(&objects);
    got.sort();
    assert_eq!(
        got,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "GatewayClass",
            "GatewayParameters",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ],
        "default render (no PDB with 1 replica, no ServiceMonitor)"
    );
    let mut crds: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| o["metadata"]["name"].as_str().expect("name"))
        .collect();
    crds.sort();
    assert_eq!(
        crds,
        [
            "gatewayextensions.gateway.kgateway.dev",
            "gatewayparameters.gateway.kgateway.dev",
            "trafficpolicies.gateway.kgateway.dev"
        ]
    );

    let class = one(&objects, "GatewayClass");
    assert_eq!(class["metadata"]["name"], "gatehouse");
    assert_eq!(class["spec"]["controllerName"], "gatehouse.dev/gatehouse");
    let params = one(&objects, "GatewayParameters");
    assert_eq!(
        class["spec"]["parametersRef"],
        json!({"group": "gateway.kgateway.dev", "kind": "GatewayParameters",
               "name": params["metadata"]["name"], "namespace": "gatehouse-system"})
    );
    assert_eq!(
        params["spec"]["kube"]["envoyContainer"]["image"]["tag"],
        "v1.40.0"
    );
    assert_eq!(params["spec"]["kube"]["service"]["type"], "LoadBalancer");

    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], "gatehouse-system");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let container = controller(&objects);
    let a = args(container);
    assert_eq!(a[..3], ["--log-format", "text", "controller"], "{a:?}");
    assert_eq!(flag(&a, "--xds-address"), "0.0.0.0:18000");
    assert_eq!(flag(&a, "--admin-address"), "0.0.0.0:19001");
    assert_eq!(flag(&a, "--lease-namespace"), "gatehouse-system");
    assert_eq!(flag(&a, "--leader-elect"), "true");
    assert_eq!(flag(&a, "--controller-name"), "gatehouse.dev/gatehouse");
    assert_eq!(flag(&a, "--xds-auth"), "mtls");
    assert_eq!(flag(&a, "--route-scopes-from"), "1000");
    assert_eq!(flag(&a, "--provision"), "true");
    assert_eq!(flag(&a, "--namespace"), "gatehouse-system");
    assert_eq!(
        flag(&a, "--xds-server-name"),
        "gatehouse.gatehouse-system.svc"
    );
    assert_eq!(flag(&a, "--xds-service-port"), "18000");
    let env = container["env"].as_array().expect("env");
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert!(
            env.iter()
                .any(|e| e["name"] == name && e["valueFrom"]["fieldRef"]["fieldPath"] == path),
            "{name} from the downward API: {env:?}"
        );
    }

    let service = one(&objects, "Service");
    let ports: Vec<_> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name"),
                p["port"].as_u64().expect("port"),
            )
        })
        .collect();
    assert_eq!(ports, [("xds", 18000), ("admin", 19001)]);

    let account = one(&objects, "ServiceAccount")["metadata"]["name"].clone();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        account
    );
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let subjects = &one(&objects, binding)["subjects"];
        assert_eq!(
            subjects,
            &json!([{"kind": "ServiceAccount", "name": account, "namespace": "gatehouse-system"}])
        );
    }
}

/// The README's table ("In a cluster: gatehouse controller"), parsed from README.md itself.
fn readme_rbac() -> Vec<(String, Vec<String>, Vec<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme
        .find("| API group | resources | verbs |")
        .expect("README's RBAC table");
    let cells = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cols: Vec<_> = line.trim_matches('|').split('|').map(str::trim).collect();
            let group = cols[0].split('`').nth(1).expect("`group`");
            let group = if group == "\"\"" { "" } else { group };
            // "leases (in the lease namespace)" → "leases"
            let resources = cols[1].split(" (").next().expect("resources");
            (group.to_string(), cells(resources), cells(cols[2]))
        })
        .collect()
}

fn rules(role: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|s| s.as_str().expect("string").to_string())
            .collect()
    };
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let groups = strings(&r["apiGroups"]);
            assert_eq!(groups.len(), 1, "one API group per rule: {r}");
            assert!(r.get("nonResourceURLs").is_none(), "{r}");
            // Only its own CRDs are named (read to spot kgateway's of the same names).
            if let Some(names) = r.get("resourceNames") {
                assert_eq!(
                    strings(&r["resources"]),
                    ["customresourcedefinitions"],
                    "{r}"
                );
                let ours: Vec<String> = gatehouse::crds::definitions()
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect();
                assert_eq!(strings(names), ours, "{r}");
            }
            (
                groups[0].clone(),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect()
}

#[test]
fn rbac_is_exactly_the_readme_table() {
    let table = readme_rbac();
    // The exact comparison below is the test; this only proves the table was parsed (rows are
    // added as features need rights, so no fixed count).
    assert!(
        table.len() >= 11 && table.iter().any(|(g, _, _)| g == "coordination.k8s.io"),
        "README's RBAC table: {table:?}"
    );
    let (leases, cluster): (Vec<_>, Vec<_>) = table
        .into_iter()
        .partition(|(group, _, _)| group == "coordination.k8s.io");

    let objects = render(&[]);
    assert_eq!(
        rules(one(&objects, "ClusterRole")),
        cluster,
        "ClusterRole vs README"
    );
    let role = one(&objects, "Role");
    assert_eq!(role["metadata"]["namespace"], "gatehouse-system");
    assert_eq!(rules(role), leases, "leader election Role vs README");
    for (binding, role) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        assert_eq!(
            one(&objects, binding)["roleRef"]["name"],
            one(&objects, role)["metadata"]["name"]
        );
    }
}

#[test]
fn controller_runs_non_root_read_only_with_probes() {
    let objects = render(&[]);
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let container = controller(&objects);
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    // The uid is the pod's: OpenShift users remove it in one place (podSecurityContext).
    assert!(security.get("runAsUser").is_none(), "{security}");
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");

    let admin = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("admin port");
    assert_eq!(admin["containerPort"], 19001);
    assert_eq!(
        container["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "admin"})
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
}

#[test]
fn every_option_renders() {
    let objects = render(&["tests/helm/values-all.yaml"]);
    let mut got = kinds(&objects);
    got.sort();
    for kind in [
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Deployment",
        "GatewayClass",
        "Role",
    ] {
        assert!(got.contains(&kind), "{kind} missing from {got:?}");
    }
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );
    let container = controller(&objects);
    assert_eq!(
        container["image"],
        "registry.example.com/gatehouse@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "image.digest wins over image.tag"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    let a = args(container);
    assert_eq!(flag(&a, "--log-format"), "json");
    assert_eq!(flag(&a, "--controller-name"), "example.com/gatehouse-test");
    assert_eq!(flag(&a, "--lease-name"), "gatehouse-test-lease");

    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "admin", "path": "/metrics", "interval": "15s"}])
    );
    let class = one(&objects, "GatewayClass");
    assert_eq!(class["metadata"]["name"], "gatehouse-test");
    assert_eq!(
        class["spec"]["controllerName"],
        "example.com/gatehouse-test"
    );
    assert_eq!(one(&objects, "Service")["spec"]["type"], "LoadBalancer");
    let params = one(&objects, "GatewayParameters");
    assert_eq!(params["spec"]["kube"]["deployment"]["replicas"], 2);
    assert_eq!(params["spec"]["kube"]["service"]["type"], "ClusterIP");
    assert_eq!(
        params["spec"]["kube"]["envoyContainer"]["image"]["repository"],
        "mirror.example.com/envoy"
    );
    assert_eq!(
        params["spec"]["kube"]["envoyContainer"]["resources"]["limits"]["memory"],
        "1Gi"
    );
    assert_eq!(
        params["spec"]["kube"]["envoyContainer"]["bootstrap"]["logLevel"],
        "debug"
    );
    assert_eq!(
        flag(&a, "--proxy-image"),
        "mirror.example.com/envoy:v1.40.0-test"
    );
    assert_eq!(flag(&a, "--proxy-service-type"), "ClusterIP");
}

#[test]
fn toggles_remove_what_they_disable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "replicas: 2\nleaderElection: {enabled: false}\ngatewayClass: {create: false}\npdb: {enabled: false}\nprovisioning: {enabled: false}\nxds: {auth: none, routeScopesFrom: 0}\n",
    )
    .expect("write values");
    let objects = render(&[values.to_str().expect("utf-8 path")]);
    let got = kinds(&objects);
    for kind in [
        "GatewayClass",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "GatewayParameters",
    ] {
        assert!(
            !got.contains(&kind),
            "{kind} rendered although disabled: {got:?}"
        );
    }
    let a = args(controller(&objects));
    assert_eq!(flag(&a, "--leader-elect"), "false");
    assert_eq!(flag(&a, "--provision"), "false");
    assert_eq!(flag(&a, "--xds-auth"), "none");
    assert_eq!(flag(&a, "--route-scopes-from"), "0");

    // pdb.enabled unset: a PDB exactly when replicas > 1.
    std::fs::write(&values, "replicas: 2\n").expect("write values");
    let objects = render(&[values.to_str().expect("utf-8 path")]);
    assert_eq!(
        one(&objects, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
}

#[test]
fn schema_rejects_wrong_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (values, want) in [
        (
            "replicas: \"two\"\n",
            "at '/replicas': got string, want integer",
        ),
        ("logFormat: xml\n", "/logFormat"),
        ("service: {ports: {xds: \"18000\"}}\n", "/service/ports/xds"),
        ("replica: 2\n", "replica"),
        ("proxy: {replicas: \"1\"}\n", "/proxy/replicas"),
        ("xds: {auth: token}\n", "/xds/auth"),
        ("extraArgs: --verbose\n", "/extraArgs"),
        ("extraArgs: [30]\n", "/extraArgs/0"),
        ("extraEnv: [{value: x}]\n", "/extraEnv/0"),
        ("extraVolumes: {a: b}\n", "/extraVolumes"),
        ("extraVolumeMounts: [{name: a}]\n", "/extraVolumeMounts/0"),
        ("podLabels: {tier: 1}\n", "/podLabels/tier"),
        ("commonLabels: [a]\n", "/commonLabels"),
        // The chart's own labels (the selector's among them) are not the user's to set.
        (
            "commonLabels: {app.kubernetes.io/name: x}\n",
            "invalid propertyName 'app.kubernetes.io/name'",
        ),
        (
            "podLabels: {app.kubernetes.io/instance: x}\n",
            "invalid propertyName 'app.kubernetes.io/instance'",
        ),
        ("priorityClassName: 5\n", "/priorityClassName"),
        (
            "topologySpreadConstraints: [{maxSkew: \"1\", topologyKey: zone, whenUnsatisfiable: ScheduleAnyway}]\n",
            "/topologySpreadConstraints/0/maxSkew",
        ),
        (
            "podSecurityContext: {runAsUser: \"65532\"}\n",
            "/podSecurityContext/runAsUser",
        ),
        (
            "securityContext: {capabilities: {drop: ALL}}\n",
            "/securityContext/capabilities/drop",
        ),
        ("image: {digest: \"0.1.0\"}\n", "/image/digest"),
        (
            "grafanaDashboard: {enabled: \"yes\"}\n",
            "/grafanaDashboard/enabled",
        ),
        (
            "grafanaDashboard: {labels: {grafana_dashboard: 1}}\n",
            "/grafanaDashboard/labels/grafana_dashboard",
        ),
        ("grafanaDashboard: {folder: x}\n", "folder"),
    ] {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).expect("write values");
        let out = helm(&["render", file.to_str().expect("utf-8 path")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{values:?} must be rejected: {stderr}"
        );
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(want),
            "{values:?}: unclear schema error: {stderr}"
        );
    }
}

/// `certificateNamespaces`: the ClusterRole no longer lists or watches Secrets and ConfigMaps;
/// a Role in each named namespace does, and the controller watches those namespaces only.
#[test]
fn certificate_namespaces_narrow_secret_and_config_map_reads() {
    let objects = render(&["tests/helm/values-certificate-namespaces.yaml"]);
    let cluster = rules(one(&objects, "ClusterRole"));
    for (group, resources, verbs) in &cluster {
        let reads = verbs.iter().any(|v| v == "list" || v == "watch");
        let sensitive = resources
            .iter()
            .any(|r| r == "secrets" || r == "configmaps");
        assert!(
            !(group.is_empty() && reads && sensitive),
            "the ClusterRole still lists {resources:?}"
        );
    }
    let roles: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["kind"] == "Role"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-certificates"))
        })
        .collect();
    let namespaces: Vec<&str> = roles
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(namespaces, ["certs", "kgateway-system"]);
    for role in &roles {
        assert_eq!(
            rules(role),
            [(
                String::new(),
                vec!["secrets".to_string(), "configmaps".to_string()],
                vec!["get".to_string(), "list".to_string(), "watch".to_string()]
            )]
        );
    }
    let bindings = objects
        .iter()
        .filter(|o| {
            o["kind"] == "RoleBinding"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-certificates"))
        })
        .count();
    assert_eq!(bindings, 2);
    let args = args(controller(&objects));
    let at = args
        .iter()
        .position(|a| *a == "--certificate-namespaces")
        .expect("--certificate-namespaces");
    assert_eq!(args[at + 1], "certs,kgateway-system");
    // Without the value nothing changes: no flag, no extra Roles.
    let default = render(&[]);
    assert!(!args_of(&default).contains(&"--certificate-namespaces"));
}

fn args_of(objects: &[Value]) -> Vec<&str> {
    args(controller(objects))
}
