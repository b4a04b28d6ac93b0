//! The controller Deployment's settings users expect (security contexts that install under
//! OpenShift's restricted-v2, extra args/env/volumes, topology spread, priority, labels, image
//! digest), names unique per release namespace, and a values schema that describes every key.

use super::{args, controller, kinds, one, rules};
use crate::support;

use serde_json::{Value, json};
use support::helm::{render, render_in};
use support::repo;

fn pod_spec(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]
}

#[test]
fn every_new_option_renders() {
    let objects = render(&["tests/helm/values-all.yaml"]);
    let deployment = one(&objects, "Deployment");
    let template = &deployment["spec"]["template"];
    let pod = &template["spec"];

    assert_eq!(
        template["metadata"]["labels"]["example.com/pod-tier"],
        "control-plane"
    );
    assert!(
        deployment["spec"]["selector"]["matchLabels"]
            .get("example.com/pod-tier")
            .is_none(),
        "podLabels must stay out of the immutable selector"
    );
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let container = controller(&objects);
    assert_eq!(
        container["securityContext"]["seccompProfile"],
        json!({"type": "Localhost", "localhostProfile": "profiles/gatehouse.json"})
    );

    // extraArgs come last, after the chart's flags, so they can add any flag.
    let a = args(container);
    assert_eq!(
        a[a.len() - 2..],
        ["--cluster-removal-grace", "30s"],
        "{a:?}"
    );
    assert_eq!(a[2], "controller");

    let env = container["env"].as_array().expect("env");
    let names: Vec<_> = env
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "POD_NAME",
            "POD_NAMESPACE",
            "RUST_LOG",
            "HTTPS_PROXY",
            "NODE_NAME"
        ]
    );
    assert_eq!(env[3]["value"], "http://proxy.example.com:3128");
    assert_eq!(
        env[4]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );

    assert_eq!(
        pod["volumes"],
        json!([{"name": "tmp", "emptyDir": {}},
               {"name": "extra-ca", "configMap": {"name": "extra-ca"}}])
    );
    assert_eq!(
        container["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"},
               {"name": "extra-ca", "mountPath": "/etc/extra-ca", "readOnly": true}])
    );

    // A constraint without labelSelector counts the controller's pods; one with its own keeps it.
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector}},
            {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
             "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"example.com/spread": "custom"}}},
        ])
    );

    // commonLabels: on every object the chart renders (crds/ is installed verbatim).
    for o in &objects {
        if o["kind"] == "CustomResourceDefinition" {
            continue;
        }
        assert_eq!(
            o["metadata"]["labels"]["example.com/owner"], "platform-team",
            "commonLabels missing on {} {}",
            o["kind"], o["metadata"]["name"]
        );
    }
    assert_eq!(
        template["metadata"]["labels"]["example.com/owner"],
        "platform-team"
    );
}

#[test]
fn defaults_set_none_of_the_new_options() {
    let objects = render(&[]);
    let pod = pod_spec(&objects);
    for key in ["priorityClassName", "topologySpreadConstraints"] {
        assert!(pod.get(key).is_none(), "{key} rendered by default: {pod}");
    }
    assert_eq!(pod["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));
    let container = controller(&objects);
    assert_eq!(container["image"], "ghcr.io/gatehouse-dev/gatehouse:0.1.0");
    assert_eq!(container["env"].as_array().expect("env").len(), 3);
    assert_eq!(args(container).last(), Some(&"LoadBalancer"));
    assert!(
        !kinds(&objects).contains(&"ConfigMap"),
        "dashboard is opt-in"
    );
}

/// restricted-v2 assigns the uid, gid and fsGroup from the namespace's range and rejects pods
/// that fix them; it requires non-root, no privilege escalation, ALL capabilities dropped and
/// the RuntimeDefault seccomp profile.
#[test]
fn openshift_values_leave_the_uid_to_the_platform_and_keep_the_hardening() {
    let objects = render(&["tests/helm/values-openshift.yaml"]);
    let pod = pod_spec(&objects);
    let container = controller(&objects);
    let (pod_sc, sc) = (&pod["securityContext"], &container["securityContext"]);
    for key in ["runAsUser", "runAsGroup", "fsGroup"] {
        assert!(pod_sc.get(key).is_none(), "pod {key}: {pod_sc}");
        assert!(sc.get(key).is_none(), "container {key}: {sc}");
    }
    assert_eq!(pod_sc["runAsNonRoot"], true);
    assert_eq!(pod_sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sc["readOnlyRootFilesystem"], true);
}

/// Names of the objects a release owns outside its namespace, by kind.
fn foreign_names(objects: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = objects
        .iter()
        .filter(|o| {
            o["kind"] != "CustomResourceDefinition"
                && o["metadata"]["namespace"] != "gatehouse-system"
                && o["metadata"]["namespace"] != "other-system"
        })
        .map(|o| {
            (
                o["kind"].as_str().expect("kind").to_string(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                o["metadata"]["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Two releases named `gatehouse` in two namespaces: their ClusterRoles, ClusterRoleBindings
/// and certificate Roles (in a namespace both read) must not collide; bindings point at their
/// own role and ServiceAccount. The GatewayClass is the user's to rename (gatewayClass.name).
#[test]
fn cluster_scoped_names_are_unique_per_release_namespace() {
    let values = [
        "tests/helm/values-certificate-namespaces.yaml",
        "tests/helm/values-all.yaml",
    ];
    let a = render_in("gatehouse-system", &values);
    let b = render_in("other-system", &values);
    let (na, nb) = (foreign_names(&a), foreign_names(&b));
    let kinds_of = |n: &[(String, String, String)]| {
        let mut k: Vec<_> = n.iter().map(|(k, _, _)| k.clone()).collect();
        k.dedup();
        k
    };
    assert_eq!(
        kinds_of(&na),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "GatewayClass",
            "Role",
            "RoleBinding"
        ]
    );
    for x in &na {
        if x.0 == "GatewayClass" {
            continue;
        }
        assert!(!nb.contains(x), "{x:?} rendered by both releases");
    }
    assert_eq!(
        one(&a, "ClusterRole")["metadata"]["name"],
        "gatehouse-gatehouse-system"
    );
    assert_eq!(
        one(&b, "ClusterRole")["metadata"]["name"],
        "gatehouse-other-system"
    );
    for (objects, ns) in [(&a, "gatehouse-system"), (&b, "other-system")] {
        let binding = one(objects, "ClusterRoleBinding");
        assert_eq!(
            binding["roleRef"]["name"],
            one(objects, "ClusterRole")["metadata"]["name"]
        );
        assert_eq!(binding["subjects"][0]["namespace"], ns);
        let certificate_roles: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" && o["metadata"]["namespace"] != ns)
            .collect();
        assert_eq!(certificate_roles.len(), 2);
        for rb in certificate_roles {
            let role = objects
                .iter()
                .find(|o| {
                    o["kind"] == "Role"
                        && o["metadata"]["name"] == rb["roleRef"]["name"]
                        && o["metadata"]["namespace"] == rb["metadata"]["namespace"]
                })
                .unwrap_or_else(|| panic!("{rb}: its Role is not rendered"));
            assert_eq!(rules(role).len(), 1);
            assert_eq!(
                rb["subjects"],
                json!([{"kind": "ServiceAccount", "name": "gatehouse", "namespace": ns}])
            );
        }
    }
}

/// Every property of values.schema.json (nested ones and array items' too) has a description
/// and a type, and every key of values.yaml is in the schema.
#[test]
fn schema_describes_every_property() {
    let text = std::fs::read_to_string(repo().join("charts/gatehouse/values.schema.json"))
        .expect("values.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node["properties"].as_object() {
            for (key, prop) in props {
                let here = format!("{path}/{key}");
                if !prop["description"].is_string() {
                    missing.push(format!("{here}: description"));
                }
                if ["type", "$ref", "oneOf"]
                    .iter()
                    .all(|k| prop.get(k).is_none())
                {
                    missing.push(format!("{here}: type"));
                }
                walk(prop, &here, missing);
            }
        }
        if node["items"].is_object() {
            walk(&node["items"], &format!("{path}/*"), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "schema properties lacking a description or type: {missing:?}"
    );

    let values: Value = yaml_serde::from_str(
        &std::fs::read_to_string(repo().join("charts/gatehouse/values.yaml")).expect("values"),
    )
    .expect("values.yaml parses");
    for key in values.as_object().expect("map").keys() {
        assert!(
            schema["properties"].get(key).is_some(),
            "values.yaml key {key} is not in the schema"
        );
    }
}
