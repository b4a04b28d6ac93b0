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
