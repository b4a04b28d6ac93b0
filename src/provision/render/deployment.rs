//! The proxies' Deployment: its pod template, the Envoy container, their security contexts
//! and volumes.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, Sysctl, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BOOTSTRAP_DIR, BOOTSTRAP_FILE, DRAIN_TIME_S, Proxy, READINESS_PORT, TLS_DIR};
use crate::provision::settings::{ProxySettings, overlay_pod_security};
use crate::provisioned::names::{self, CONFIG_HASH_ANNOTATION, CREDENTIALS_HASH_ANNOTATION};

/// uid/gid of the `envoy` user in the official image.
const ENVOY_UID: i64 = 101;

impl Proxy<'_> {
    /// The Deployment; `config_hash` (of the bootstrap and certificate) and
    /// `credentials_hash` (certificate and CA bundle) are pod annotations.
    pub(super) fn deployment(&self, config_hash: String, credentials_hash: String) -> Deployment {
        Deployment {
            metadata: self.plain_meta(&self.name),
            spec: Some(DeploymentSpec {
                // Left out with an autoscaler: server-side apply would set it back on every
                // sync, fighting the HPA's scale writes.
                replicas: self
                    .settings
                    .horizontal_pod_autoscaler
                    .is_none()
                    .then_some(self.settings.replicas),
                selector: LabelSelector {
                    match_labels: Some(names::selector(self.gateway_name)),
                    ..Default::default()
                },
                template: self.pod_template(config_hash, credentials_hash),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_template(&self, config_hash: String, credentials_hash: String) -> PodTemplateSpec {
        let settings = self.settings;
        let mut labels = settings.pod_labels.clone();
        labels.extend(names::selector(self.gateway_name));
        let mut annotations = settings.pod_annotations.clone();
        annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash);
        annotations.insert(CREDENTIALS_HASH_ANNOTATION.into(), credentials_hash);
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(self.name.clone()),
                automount_service_account_token: Some(false),
                containers: vec![self.container()],
                node_selector: (!settings.node_selector.is_empty())
                    .then(|| settings.node_selector.clone()),
                tolerations: (!settings.tolerations.is_empty())
                    .then(|| settings.tolerations.clone()),
                image_pull_secrets: (!settings.image_pull_secrets.is_empty())
                    .then(|| settings.image_pull_secrets.clone()),
                security_context: Some(match &settings.pod_security_context {
                    Some(over) => overlay_pod_security(pod_security_context(), over),
                    None => pod_security_context(),
                }),
                affinity: settings.affinity.clone(),
                topology_spread_constraints: (!settings.topology_spread_constraints.is_empty())
                    .then(|| self.topology_spread_constraints()),
                priority_class_name: settings.priority_class_name.clone(),
                volumes: Some(volumes(&self.name, &self.secret_name)),
                ..Default::default()
            }),
        }
    }

    /// The configured constraints; one without `labelSelector` counts this Gateway's proxy
    /// pods (without a selector it would count none, and spread nothing).
    fn topology_spread_constraints(&self) -> Vec<TopologySpreadConstraint> {
        let mut constraints = self.settings.topology_spread_constraints.clone();
        for c in &mut constraints {
            if c.label_selector.is_none() {
                c.label_selector = Some(LabelSelector {
                    match_labels: Some(names::selector(self.gateway_name)),
                    ..Default::default()
                });
            }
        }
        constraints
    }

    fn container(&self) -> Container {
        let settings = self.settings;
        Container {
            name: "envoy".into(),
            image: Some(settings.image.clone()),
            image_pull_policy: settings.pull_policy.clone(),
            command: Some(vec!["envoy".into()]),
            args: Some(envoy_args(settings)),
            ports: Some(container_ports(&self.ports)),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(crate::bootstrap::READINESS_PATH.into()),
                    port: IntOrString::Int(i32::from(READINESS_PORT)),
                    ..Default::default()
                }),
                period_seconds: Some(5),
                ..Default::default()
            }),
            resources: settings.resources.clone(),
            security_context: Some(container_security_context()),
            volume_mounts: Some(vec![
                mount("bootstrap", BOOTSTRAP_DIR),
                mount("xds-tls", TLS_DIR),
                mount("tmp", "/tmp"),
            ]),
            ..Default::default()
        }
    }
}

fn envoy_args(settings: &ProxySettings) -> Vec<String> {
    vec![
        "-c".into(),
        format!("{BOOTSTRAP_DIR}/{BOOTSTRAP_FILE}"),
        "--log-level".into(),
        settings.log_level.clone(),
        "--disable-hot-restart".into(),
        // A listener update drains the old filter chain: every connection on it is told to
        // close at once (HTTP/1.1 `connection: close`, HTTP/2 GOAWAY) and is cut after
        // DRAIN_TIME_S, so old provider settings do not linger for Envoy's default 600 s.
        // The chain guard keeps draining chains fail closed either way
        // (docs/security-model.md).
        "--drain-strategy".into(),
        "immediate".into(),
        "--drain-time-s".into(),
        DRAIN_TIME_S.to_string(),
    ]
}

/// A port per listener port, and the readiness port the kubelet probes.
fn container_ports(ports: &[u16]) -> Vec<ContainerPort> {
    let mut container_ports: Vec<ContainerPort> = ports
        .iter()
        .map(|p| ContainerPort {
            name: Some(format!("http-{p}")),
            container_port: i32::from(*p),
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect();
    container_ports.push(ContainerPort {
        name: Some("readiness".into()),
        container_port: i32::from(READINESS_PORT),
        protocol: Some("TCP".into()),
        ..Default::default()
    });
    container_ports
}

fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(ENVOY_UID),
        run_as_group: Some(ENVOY_UID),
        // Group-owns the mounted certificate so mode 0440 lets Envoy read it.
        fs_group: Some(ENVOY_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        // Lets the non-root Envoy bind listener ports below 1024 (a "safe"
        // sysctl: allowed without extra kubelet flags).
        sysctls: Some(vec![Sysctl {
            name: "net.ipv4.ip_unprivileged_port_start".into(),
            value: "0".into(),
        }]),
        ..Default::default()
    }
}

/// The bootstrap ConfigMap, the certificate Secret and a writable /tmp.
fn volumes(config_map: &str, secret: &str) -> Vec<Volume> {
    vec![
        Volume {
            name: "bootstrap".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "xds-tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ]
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}
