//! The objects provisioned for one Gateway, as data: pure, so the table tests can pin them
//! and the applier only sends what changed.

use std::collections::BTreeMap;

use gateway_api::apis::standard::gateways::Gateway;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret,
    SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Sysctl,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{self, CONFIG_HASH_ANNOTATION};
use super::settings::ProxySettings;
use crate::bootstrap::{BootstrapOptions, XdsTls, bootstrap};
use crate::pki::Issued;
use crate::store::ObjKey;

/// Where proxies mount their bootstrap and certificate.
pub const BOOTSTRAP_DIR: &str = "/etc/envoy";
pub const BOOTSTRAP_FILE: &str = "bootstrap.json";
pub const TLS_DIR: &str = "/etc/gatehouse/xds-tls";
/// Envoy admin (127.0.0.1 only; reach it with `kubectl port-forward`).
pub const ENVOY_ADMIN_PORT: u16 = 19000;
/// The readiness listener the kubelet probes.
pub const READINESS_PORT: u16 = 19003;
/// uid/gid of the `envoy` user in the official image.
/// Seconds a drained filter chain keeps its connections (Envoy Gateway uses the same 60 s).
pub const DRAIN_TIME_S: u32 = 60;
const ENVOY_UID: i64 = 101;

/// How provisioned proxies reach the xDS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsEndpoint {
    pub host: String,
    pub port: u16,
    /// DNS name in the server certificate.
    pub server_name: String,
}

/// Everything provisioned for one Gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyObjects {
    pub service_account: ServiceAccount,
    pub tls_secret: Secret,
    pub config_map: ConfigMap,
    pub service: Service,
    pub deployment: Deployment,
}

/// Why a Gateway's objects cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("Gateway has no uid (not read from an API server); cannot own objects")]
    NoUid,
    #[error("cannot encode the bootstrap: {0}")]
    Bootstrap(String),
}

/// The listener ports of `gateway`, sorted and unique.
pub fn ports(gateway: &Gateway) -> Vec<u16> {
    let mut ports: Vec<u16> = gateway
        .spec
        .listeners
        .iter()
        .filter_map(|l| u16::try_from(l.port).ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn owner(gateway: &Gateway) -> Result<OwnerReference, RenderError> {
    Ok(OwnerReference {
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "Gateway".into(),
        name: gateway.metadata.name.clone().unwrap_or_default(),
        uid: gateway.metadata.uid.clone().ok_or(RenderError::NoUid)?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

struct Meta<'a> {
    namespace: String,
    owner: OwnerReference,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    gateway_name: &'a str,
}

impl Meta<'_> {
    fn object(
        &self,
        name: String,
        extra_labels: &BTreeMap<String, String>,
        extra_annotations: &BTreeMap<String, String>,
    ) -> ObjectMeta {
        let mut labels = extra_labels.clone();
        labels.extend(self.labels.clone());
        labels.extend(names::labels(self.gateway_name));
        let mut annotations = extra_annotations.clone();
        annotations.extend(self.annotations.clone());
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}

/// The Envoy bootstrap of `gateway`'s proxies, as JSON.
pub fn bootstrap_json(gateway: &ObjKey, xds: &XdsEndpoint) -> Result<String, RenderError> {
    let options = BootstrapOptions {
        gateway: gateway.clone(),
        xds_host: xds.host.clone(),
        xds_port: xds.port,
        admin_port: Some(ENVOY_ADMIN_PORT),
        sotw: false,
        tls: Some(XdsTls {
            cert_path: format!("{TLS_DIR}/tls.crt"),
            key_path: format!("{TLS_DIR}/tls.key"),
            ca_path: format!("{TLS_DIR}/ca.crt"),
            server_name: xds.server_name.clone(),
        }),
        readiness_port: Some(READINESS_PORT),
    };
    let doc = crate::protojson::message_to_json(&bootstrap(&options))
        .map_err(|e| RenderError::Bootstrap(e.to_string()))?;
    serde_json::to_string_pretty(&doc).map_err(|e| RenderError::Bootstrap(e.to_string()))
}

fn hash(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The objects of `gateway` with `settings`, certificate `cert` signed by `ca_pem`.
pub fn render(
    gateway: &Gateway,
    settings: &ProxySettings,
    xds: &XdsEndpoint,
    cert: &Issued,
    ca_pem: &str,
) -> Result<ProxyObjects, RenderError> {
    let gateway_name = gateway.metadata.name.as_deref().unwrap_or_default();
    let namespace = gateway.metadata.namespace.clone().unwrap_or_default();
    let key = ObjKey::new(namespace.clone(), gateway_name);
    let infra = gateway.spec.infrastructure.as_ref();
    let meta = Meta {
        namespace,
        owner: owner(gateway)?,
        labels: infra.and_then(|i| i.labels.clone()).unwrap_or_default(),
        annotations: infra
            .and_then(|i| i.annotations.clone())
            .unwrap_or_default(),
        gateway_name,
    };
    let name = names::proxy_name(gateway_name);
    let secret_name = names::tls_secret_name(gateway_name);
    let none = BTreeMap::new();
    let bootstrap = bootstrap_json(&key, xds)?;
    let ports = ports(gateway);

    let service_account = ServiceAccount {
        metadata: meta.object(
            name.clone(),
            &settings.service_account_labels,
            &settings.service_account_annotations,
        ),
        // Envoy never calls the API server.
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let tls_secret = Secret {
        metadata: meta.object(secret_name.clone(), &none, &none),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".into(),
                ByteString(cert.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".into(),
                ByteString(cert.key_pem.clone().into_bytes()),
            ),
            ("ca.crt".into(), ByteString(ca_pem.as_bytes().to_vec())),
        ])),
        ..Default::default()
    };
    let config_map = ConfigMap {
        metadata: meta.object(name.clone(), &none, &none),
        data: Some(BTreeMap::from([(BOOTSTRAP_FILE.into(), bootstrap.clone())])),
        ..Default::default()
    };
    let service = Service {
        metadata: meta.object(
            name.clone(),
            &settings.service_labels,
            &settings.service_annotations,
        ),
        spec: Some(ServiceSpec {
            type_: Some(settings.service_type.clone()),
            selector: Some(names::selector(gateway_name)),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(format!("http-{p}")),
                        port: i32::from(*p),
                        target_port: Some(IntOrString::Int(i32::from(*p))),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut pod_labels = settings.pod_labels.clone();
    pod_labels.extend(names::selector(gateway_name));
    let mut pod_annotations = settings.pod_annotations.clone();
    pod_annotations.insert(
        CONFIG_HASH_ANNOTATION.into(),
        hash(&[&bootstrap, &cert.cert_pem, ca_pem]),
    );
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
    let container = Container {
        name: "envoy".into(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.pull_policy.clone(),
        command: Some(vec!["envoy".into()]),
        args: Some(vec![
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
        ]),
        ports: Some(container_ports),
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
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("bootstrap", BOOTSTRAP_DIR),
            mount("xds-tls", TLS_DIR),
            mount("tmp", "/tmp"),
        ]),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta.object(name.clone(), &none, &none),
        spec: Some(DeploymentSpec {
            replicas: Some(settings.replicas),
            selector: LabelSelector {
                match_labels: Some(names::selector(gateway_name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.clone()),
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    node_selector: (!settings.node_selector.is_empty())
                        .then(|| settings.node_selector.clone()),
                    tolerations: (!settings.tolerations.is_empty())
                        .then(|| settings.tolerations.clone()),
                    image_pull_secrets: (!settings.image_pull_secrets.is_empty())
                        .then(|| settings.image_pull_secrets.clone()),
                    security_context: Some(PodSecurityContext {
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
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "bootstrap".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: name.clone(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "xds-tls".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(secret_name),
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
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(ProxyObjects {
        service_account,
        tls_secret,
        config_map,
        service,
        deployment,
    })
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
