use gateway_api::apis::standard::gateways::{GatewayInfrastructure, GatewayListeners, GatewaySpec};

use super::*;
use crate::provisioned::names::CONFIG_HASH_ANNOTATION;

fn gateway(ports: &[i32]) -> Gateway {
    Gateway {
        metadata: ObjectMeta {
            name: Some("http".into()),
            namespace: Some("edge".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: GatewaySpec {
            gateway_class_name: "gatehouse".into(),
            listeners: ports
                .iter()
                .enumerate()
                .map(|(i, p)| GatewayListeners {
                    name: format!("l{i}"),
                    port: *p,
                    protocol: "HTTP".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        status: None,
    }
}

fn xds() -> XdsEndpoint {
    XdsEndpoint {
        host: "gatehouse.gatehouse-system.svc".into(),
        port: 18000,
        server_name: "gatehouse.gatehouse-system.svc".into(),
    }
}

fn cert(n: &str) -> Issued {
    Issued {
        cert_pem: format!("cert {n}"),
        key_pem: format!("key {n}"),
    }
}

fn render_default(gw: &Gateway) -> ProxyObjects {
    render(gw, &ProxySettings::default(), &xds(), &cert("1"), "ca").expect("render")
}

#[test]
fn every_object_is_controlled_by_its_gateway() {
    let o = render_default(&gateway(&[80]));
    let metas = [
        &o.service_account.metadata,
        &o.tls_secret.metadata,
        &o.config_map.metadata,
        &o.service.metadata,
        &o.deployment.metadata,
    ];
    for m in metas {
        let owners = m.owner_references.as_ref().expect("owners");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "Gateway");
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(m.namespace.as_deref(), Some("edge"));
        let labels = m.labels.as_ref().expect("labels");
        assert_eq!(labels[names::GATEWAY_NAME_LABEL], "http");
        // What is rendered is what the next sync recognises as its own.
        let stored = ObjectMeta {
            uid: Some("object-uid".into()),
            ..m.clone()
        };
        assert_eq!(
            crate::provision::ownership(Some(&stored), "uid-1"),
            crate::provision::Ownership::Owned {
                uid: "object-uid".into()
            }
        );
    }
}

#[test]
fn a_gateway_without_uid_is_not_rendered() {
    let mut gw = gateway(&[80]);
    gw.metadata.uid = None;
    assert!(matches!(
        render(&gw, &ProxySettings::default(), &xds(), &cert("1"), "ca"),
        Err(RenderError::NoUid)
    ));
}

#[test]
fn service_ports_follow_listener_ports() {
    let cases: [(&[i32], &[i32]); 3] = [
        (&[80], &[80]),
        (&[8080, 80, 8080], &[80, 8080]),
        (&[443, 80], &[80, 443]),
    ];
    for (listeners, want) in cases {
        let o = render_default(&gateway(listeners));
        let spec = o.service.spec.expect("spec");
        let got: Vec<i32> = spec
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(got, want, "listeners {listeners:?}");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        let pod = o.deployment.spec.expect("spec").template.spec.expect("pod");
        let container_ports: Vec<i32> = pod.containers[0]
            .ports
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|p| p.container_port)
            .collect();
        let mut expected = want.to_vec();
        expected.push(i32::from(READINESS_PORT));
        assert_eq!(container_ports, expected);
    }
}

#[test]
fn proxies_run_unprivileged_and_bind_low_ports_by_sysctl() {
    let o = render_default(&gateway(&[80]));
    let pod = o.deployment.spec.expect("spec").template.spec.expect("pod");
    let psc = pod.security_context.expect("pod security");
    assert_eq!(psc.run_as_non_root, Some(true));
    let sysctls = psc.sysctls.unwrap_or_default();
    assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");
    let sc = pod.containers[0]
        .security_context
        .clone()
        .expect("container security");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn proxies_drain_old_filter_chains_at_once_and_for_a_bounded_time() {
    let o = render_default(&gateway(&[80]));
    let pod = o.deployment.spec.expect("spec").template.spec.expect("pod");
    let args = pod.containers[0].args.clone().unwrap_or_default();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    assert_eq!(value("--drain-strategy").as_deref(), Some("immediate"));
    assert_eq!(value("--drain-time-s"), Some(DRAIN_TIME_S.to_string()));
}

#[test]
fn bootstrap_names_the_gateway_and_verifies_the_server() {
    let o = render_default(&gateway(&[80]));
    let text = &o.config_map.data.expect("data")[BOOTSTRAP_FILE];
    let doc: serde_json::Value = serde_json::from_str(text).expect("json");
    assert_eq!(
        doc["node"]["metadata"]["gatehouse.dev/gateway"],
        "edge/http"
    );
    let tls = &doc["staticResources"]["clusters"][0]["transportSocket"]["typedConfig"];
    assert_eq!(tls["sni"], "gatehouse.gatehouse-system.svc");
    assert_eq!(
        tls["commonTlsContext"]["tlsCertificates"][0]["certificateChain"]["filename"],
        format!("{TLS_DIR}/tls.crt")
    );
}

#[test]
fn a_new_certificate_or_bootstrap_rolls_the_pods() {
    let gw = gateway(&[80]);
    let hash_of = |o: &ProxyObjects| {
        o.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .map(|a| a[CONFIG_HASH_ANNOTATION].clone())
    };
    let a = render_default(&gw);
    let b = render(&gw, &ProxySettings::default(), &xds(), &cert("2"), "ca").expect("render");
    let mut other = xds();
    other.port = 18001;
    let c = render(&gw, &ProxySettings::default(), &other, &cert("1"), "ca").expect("render");
    assert_ne!(hash_of(&a), hash_of(&b));
    assert_ne!(hash_of(&a), hash_of(&c));
    assert_eq!(hash_of(&a), hash_of(&render_default(&gw)), "stable");
}

#[test]
fn infrastructure_and_parameters_metadata_reach_the_objects() {
    let mut gw = gateway(&[80]);
    gw.spec.infrastructure = Some(GatewayInfrastructure {
        labels: Some(BTreeMap::from([("team".into(), "a".into())])),
        annotations: Some(BTreeMap::from([("note".into(), "x".into())])),
        parameters_ref: None,
    });
    let settings = ProxySettings {
        service_type: "ClusterIP".into(),
        service_annotations: BTreeMap::from([("lb".into(), "internal".into())]),
        replicas: 3,
        ..Default::default()
    };
    let o = render(&gw, &settings, &xds(), &cert("1"), "ca").expect("render");
    let svc_meta = &o.service.metadata;
    assert_eq!(svc_meta.labels.as_ref().expect("labels")["team"], "a");
    let annotations = svc_meta.annotations.as_ref().expect("annotations");
    assert_eq!(annotations["note"], "x");
    assert_eq!(annotations["lb"], "internal");
    assert_eq!(
        o.service.spec.and_then(|s| s.type_).as_deref(),
        Some("ClusterIP")
    );
    assert_eq!(o.deployment.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        o.config_map.metadata.labels.as_ref().expect("labels")["team"],
        "a"
    );
}

/// The settings of one GatewayParameters `kube:` flow mapping, e.g. `{podTemplate: {...}}`.
fn settings_of(kube: &str) -> ProxySettings {
    let spec: crate::api::GatewayParametersSpec =
        yaml_serde::from_str(&format!("kube: {kube}")).expect("parameters parse");
    assert_eq!(spec.invalid(), None, "{kube}");
    let mut settings = ProxySettings::default();
    settings.apply(&spec);
    settings
}

fn render_with(kube: &str) -> ProxyObjects {
    render(
        &gateway(&[80]),
        &settings_of(kube),
        &xds(),
        &cert("1"),
        "ca",
    )
    .expect("render")
}

fn pod_of(o: &ProxyObjects) -> k8s_openapi::api::core::v1::PodSpec {
    o.deployment
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("pod spec")
}

/// Each setting, as JSON of the rendered object, next to what it must render.
#[test]
fn pod_template_settings_reach_the_pods() {
    let selector = serde_json::json!({"matchLabels": names::selector("http")});
    type Case<'a> = (
        &'a str,
        &'a str,
        fn(&ProxyObjects) -> serde_json::Value,
        serde_json::Value,
    );
    let cases: [Case; 6] = [
        (
            "affinity",
            "{podTemplate: {affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname}}]}}}}",
            |o| serde_json::to_value(pod_of(o).affinity).expect("json"),
            serde_json::json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}),
        ),
        (
            "a topology spread constraint without selector counts the proxy pods",
            "{podTemplate: {topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]}}",
            |o| serde_json::to_value(pod_of(o).topology_spread_constraints).expect("json"),
            serde_json::json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}]),
        ),
        (
            "a topology spread constraint's own selector is kept",
            "{podTemplate: {topologySpreadConstraints: [{maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: x}}}]}}",
            |o| serde_json::to_value(pod_of(o).topology_spread_constraints).expect("json"),
            serde_json::json!([{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "x"}}}]),
        ),
        (
            "priorityClassName",
            "{podTemplate: {priorityClassName: system-cluster-critical}}",
            |o| serde_json::to_value(pod_of(o).priority_class_name).expect("json"),
            serde_json::json!("system-cluster-critical"),
        ),
        (
            "a pod securityContext replaces the defaults it names and keeps the others",
            "{podTemplate: {securityContext: {runAsUser: 1000650000, fsGroup: 1000650000}}}",
            |o| {
                let sc = pod_of(o).security_context.expect("security context");
                serde_json::json!([
                    sc.run_as_user,
                    sc.fs_group,
                    sc.run_as_group,
                    sc.run_as_non_root,
                    sc.sysctls.map(|s| s[0].name.clone())
                ])
            },
            serde_json::json!([
                1000650000,
                1000650000,
                101,
                true,
                "net.ipv4.ip_unprivileged_port_start"
            ]),
        ),
        (
            "envoyContainer resources",
            "{envoyContainer: {resources: {requests: {cpu: 250m, memory: 128Mi}, limits: {memory: 512Mi}}}}",
            |o| serde_json::to_value(&pod_of(o).containers[0].resources).expect("json"),
            serde_json::json!({"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}),
        ),
    ];
    for (what, kube, get, want) in cases {
        assert_eq!(get(&render_with(kube)), want, "{what}");
    }
    let plain = pod_of(&render_default(&gateway(&[80])));
    assert_eq!(
        (
            plain.affinity,
            plain.topology_spread_constraints,
            plain.priority_class_name
        ),
        (None, None, None),
        "nothing without parameters"
    );
}

/// A GatewayParameters and what its PodDisruptionBudget and HorizontalPodAutoscaler must be
/// (None: not rendered), and the Deployment's replicas.
#[test]
fn disruption_budget_and_autoscaler_follow_the_parameters() {
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
        Option<i32>,
    );
    let selector = serde_json::json!({"matchLabels": names::selector("http")});
    let target = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "gatehouse-http"});
    let cases: [Case; 6] = [
        ("none", "{deployment: {replicas: 2}}", None, None, Some(2)),
        (
            "minAvailable",
            "{deployment: {replicas: 3}, podDisruptionBudget: {spec: {minAvailable: 2}}}",
            Some(serde_json::json!({"minAvailable": 2, "selector": selector})),
            None,
            Some(3),
        ),
        (
            "maxUnavailable as a percentage, with its eviction policy",
            "{podDisruptionBudget: {spec: {maxUnavailable: 25%, unhealthyPodEvictionPolicy: AlwaysAllow}}}",
            Some(
                serde_json::json!({"maxUnavailable": "25%", "unhealthyPodEvictionPolicy": "AlwaysAllow", "selector": selector}),
            ),
            None,
            Some(1),
        ),
        (
            "an empty budget keeps one pod",
            "{podDisruptionBudget: {}}",
            Some(serde_json::json!({"minAvailable": 1, "selector": selector})),
            None,
            Some(1),
        ),
        (
            "an autoscaler takes the replicas",
            "{deployment: {replicas: 3}, horizontalPodAutoscaler: {spec: {minReplicas: 2, maxReplicas: 5}}}",
            None,
            Some(serde_json::json!({"minReplicas": 2, "maxReplicas": 5, "scaleTargetRef": target})),
            None,
        ),
        (
            "metrics and behavior as written",
            "{horizontalPodAutoscaler: {spec: {maxReplicas: 4, metrics: [{type: Resource, resource: {name: memory, target: {type: Utilization, averageUtilization: 70}}}], behavior: {scaleDown: {stabilizationWindowSeconds: 600}}}}}",
            None,
            Some(serde_json::json!({
                "maxReplicas": 4,
                "scaleTargetRef": target,
                "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
            })),
            None,
        ),
    ];
    for (what, kube, pdb, hpa, replicas) in cases {
        let o = render_with(kube);
        let spec = |v: Option<serde_json::Value>| v.map(|v| v["spec"].clone());
        assert_eq!(
            spec(
                o.pod_disruption_budget
                    .as_ref()
                    .map(|p| serde_json::to_value(p).expect("json"))
            ),
            pdb,
            "{what}: PodDisruptionBudget"
        );
        assert_eq!(
            spec(
                o.horizontal_pod_autoscaler
                    .as_ref()
                    .map(|h| serde_json::to_value(h).expect("json"))
            ),
            hpa,
            "{what}: HorizontalPodAutoscaler"
        );
        assert_eq!(
            o.deployment.spec.as_ref().and_then(|s| s.replicas),
            replicas,
            "{what}: Deployment replicas"
        );
        for meta in [
            o.pod_disruption_budget.as_ref().map(|p| &p.metadata),
            o.horizontal_pod_autoscaler.as_ref().map(|h| &h.metadata),
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(meta.name.as_deref(), Some("gatehouse-http"), "{what}");
            let stored = ObjectMeta {
                uid: Some("object-uid".into()),
                ..meta.clone()
            };
            assert_eq!(
                crate::provision::ownership(Some(&stored), "uid-1"),
                crate::provision::Ownership::Owned {
                    uid: "object-uid".into()
                },
                "{what}: owned by the Gateway and labelled as Gatehouse's"
            );
        }
    }
}

#[test]
fn overlay_metadata_reaches_the_budget_and_the_autoscaler() {
    let o = render_with(
        "{podDisruptionBudget: {metadata: {labels: {tier: edge}, annotations: {note: pdb}}}, horizontalPodAutoscaler: {metadata: {annotations: {note: hpa}}, spec: {maxReplicas: 2}}}",
    );
    let pdb = o.pod_disruption_budget.expect("pdb").metadata;
    assert_eq!(pdb.labels.as_ref().expect("labels")["tier"], "edge");
    assert_eq!(
        pdb.labels.as_ref().expect("labels")[names::GATEWAY_NAME_LABEL],
        "http"
    );
    assert_eq!(pdb.annotations.expect("annotations")["note"], "pdb");
    let hpa = o.horizontal_pod_autoscaler.expect("hpa").metadata;
    assert_eq!(hpa.annotations.expect("annotations")["note"], "hpa");
}

/// A Gateway's budget or autoscaler replaces its class's whole: merged field by field, the
/// class's minAvailable and the Gateway's maxUnavailable would make a budget the API server
/// refuses.
#[test]
fn a_gateways_budget_and_autoscaler_replace_its_classs() {
    let parse = |kube: &str| -> crate::api::GatewayParametersSpec {
        yaml_serde::from_str(&format!("kube: {kube}")).expect("parse")
    };
    let mut s = ProxySettings::default();
    s.apply(&parse(
        "{podDisruptionBudget: {spec: {minAvailable: 2}}, horizontalPodAutoscaler: {spec: {minReplicas: 3, maxReplicas: 10}}}",
    ));
    s.apply(&parse(
        "{podDisruptionBudget: {spec: {maxUnavailable: 1}}, horizontalPodAutoscaler: {spec: {maxReplicas: 2}}}",
    ));
    let o = render(&gateway(&[80]), &s, &xds(), &cert("1"), "ca").expect("render");
    let pdb = o.pod_disruption_budget.and_then(|p| p.spec).expect("pdb");
    assert_eq!(
        (pdb.min_available, pdb.max_unavailable),
        (None, Some(IntOrString::Int(1)))
    );
    let hpa = o
        .horizontal_pod_autoscaler
        .and_then(|h| h.spec)
        .expect("hpa");
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (None, 2));
}

/// Each value refused, with the reason: by the CRD's rules (the API server's answer) and by
/// the same check on objects read without them, which the Gateway's `Accepted` condition
/// reports.
#[test]
fn invalid_budget_and_autoscaler_values_are_refused_with_a_reason() {
    use kube::CustomResourceExt as _;
    let cases = [
        (
            "{podDisruptionBudget: {spec: {minAvailable: 1, maxUnavailable: 1}}}",
            "set only one of minAvailable and maxUnavailable",
        ),
        (
            "{podDisruptionBudget: {spec: {minAvailable: 101%}}}",
            "minAvailable must be a count of 0 or more or a percentage from 0% to 100%",
        ),
        (
            "{podDisruptionBudget: {spec: {maxUnavailable: -1}}}",
            "maxUnavailable must be a count of 0 or more or a percentage from 0% to 100%",
        ),
        (
            "{podDisruptionBudget: {spec: {maxUnavailable: half}}}",
            "maxUnavailable must be a count of 0 or more or a percentage from 0% to 100%",
        ),
        (
            "{horizontalPodAutoscaler: {spec: {minReplicas: 5, maxReplicas: 3}}}",
            "minReplicas",
        ),
        (
            "{horizontalPodAutoscaler: {spec: {minReplicas: 2}}}",
            "horizontalPodAutoscaler needs spec.maxReplicas",
        ),
        (
            "{horizontalPodAutoscaler: {spec: {maxReplicas: 0}}}",
            "maxReplicas must be 1-1000",
        ),
    ];
    let _ = crate::api::GatewayParameters::crd();
    for (kube, reason) in cases {
        let text = crate::testing::gateway_parameters("infra", "bad", &format!("kube: {kube}"));
        let params: crate::api::GatewayParameters = yaml_serde::from_str(&text).expect("parse");
        let cel = params.validate_cel().expect_err(kube).to_string();
        assert!(cel.contains(reason), "{kube}: CRD rule says {cel}");
        let why = params.spec.invalid().expect(kube);
        assert!(why.contains(reason), "{kube}: check says {why}");

        // Read anyway (no CRD rules): the Gateway is not accepted, and says why.
        let mut store = crate::testing::store(
            &(crate::testing::gateway_class("gatehouse", "gatehouse.dev/gatehouse", "")
                + &crate::testing::gateway(
                    "infra",
                    "gw",
                    "gatehouse",
                    "infrastructure: {parametersRef: {group: gateway.kgateway.dev, kind: GatewayParameters, name: bad}}, listeners: [{name: http, protocol: HTTP, port: 80}]",
                )),
        );
        store.apply(crate::store::Object::GatewayParameters(Box::new(params)));
        let m = crate::model::build(&store, &crate::model::ModelConfig::default());
        let gw = &m.status.gateways[&crate::store::ObjKey::new("infra", "gw")];
        let accepted = crate::model::find(&gw.conditions, "Accepted").expect("Accepted");
        assert_eq!(
            (accepted.status, accepted.reason.as_str()),
            ("False", "InvalidParameters"),
            "{kube}"
        );
        assert!(
            accepted.message.contains("GatewayParameters infra/bad")
                && accepted.message.contains(reason),
            "{kube}: {}",
            accepted.message
        );
    }
    let fine = [
        "{podDisruptionBudget: {spec: {minAvailable: 0%}}}",
        "{podDisruptionBudget: {spec: {maxUnavailable: 100%}}}",
        "{horizontalPodAutoscaler: {spec: {minReplicas: 3, maxReplicas: 3}}}",
    ];
    for kube in fine {
        let text = crate::testing::gateway_parameters("infra", "ok", &format!("kube: {kube}"));
        let params: crate::api::GatewayParameters = yaml_serde::from_str(&text).expect("parse");
        assert!(
            params.validate_cel().is_ok(),
            "{kube}: {:?}",
            params.validate_cel()
        );
        assert_eq!(params.spec.invalid(), None, "{kube}");
    }
}
