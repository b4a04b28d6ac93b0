//! The objects provisioned for one Gateway, as data: pure, so the table tests can pin them
//! and the applier only sends what changed.

use std::collections::BTreeMap;

use gateway_api::apis::standard::gateways::Gateway;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Secret, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names;
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
/// Seconds a drained filter chain keeps its connections (Envoy Gateway uses the same 60 s).
pub const DRAIN_TIME_S: u32 = 60;

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
    /// Present only when the parameters ask for one; otherwise any earlier one is deleted.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
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

/// The objects of `gateway` with `settings`, certificate `cert` signed by `ca_pem`.
pub fn render(
    gateway: &Gateway,
    settings: &ProxySettings,
    xds: &XdsEndpoint,
    cert: &Issued,
    ca_pem: &str,
) -> Result<ProxyObjects, RenderError> {
    let proxy = Proxy::new(gateway, settings)?;
    let bootstrap = bootstrap_json(&proxy.key, xds)?;
    // Rolls the proxies when their bootstrap or certificate changes.
    let config_hash = crate::provisioned::names::digest(&[&bootstrap, &cert.cert_pem, ca_pem]);
    Ok(ProxyObjects {
        service_account: proxy.service_account(),
        tls_secret: proxy.tls_secret(cert, ca_pem),
        config_map: proxy.config_map(bootstrap),
        service: proxy.service(),
        deployment: proxy.deployment(
            config_hash,
            crate::provisioned::names::credentials_hash(&cert.cert_pem, ca_pem),
        ),
        pod_disruption_budget: proxy.pod_disruption_budget(),
        horizontal_pod_autoscaler: proxy.horizontal_pod_autoscaler(),
    })
}

/// One Gateway's proxies: what each of their objects is named, labelled and configured from.
struct Proxy<'a> {
    key: ObjKey,
    meta: Meta<'a>,
    settings: &'a ProxySettings,
    gateway_name: &'a str,
    /// Name of the ServiceAccount, ConfigMap, Service and Deployment.
    name: String,
    secret_name: String,
    ports: Vec<u16>,
}

impl<'a> Proxy<'a> {
    fn new(gateway: &'a Gateway, settings: &'a ProxySettings) -> Result<Self, RenderError> {
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
        Ok(Proxy {
            key,
            meta,
            settings,
            gateway_name,
            name: names::proxy_name(gateway_name),
            secret_name: names::tls_secret_name(gateway_name),
            ports: ports(gateway),
        })
    }

    /// Metadata of an object named `name` with no labels or annotations of its own.
    fn plain_meta(&self, name: &str) -> ObjectMeta {
        let none = BTreeMap::new();
        self.meta.object(name.to_string(), &none, &none)
    }

    fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.meta.object(
                self.name.clone(),
                &self.settings.service_account_labels,
                &self.settings.service_account_annotations,
            ),
            // Envoy never calls the API server.
            automount_service_account_token: Some(false),
            ..Default::default()
        }
    }

    fn tls_secret(&self, cert: &Issued, ca_pem: &str) -> Secret {
        Secret {
            metadata: self.plain_meta(&self.secret_name),
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
        }
    }

    fn config_map(&self, bootstrap: String) -> ConfigMap {
        ConfigMap {
            metadata: self.plain_meta(&self.name),
            data: Some(BTreeMap::from([(BOOTSTRAP_FILE.into(), bootstrap)])),
            ..Default::default()
        }
    }

    fn service(&self) -> Service {
        Service {
            metadata: self.meta.object(
                self.name.clone(),
                &self.settings.service_labels,
                &self.settings.service_annotations,
            ),
            spec: Some(ServiceSpec {
                type_: Some(self.settings.service_type.clone()),
                selector: Some(names::selector(self.gateway_name)),
                ports: Some(
                    self.ports
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
        }
    }
}

mod deployment;
mod scaling;

#[cfg(test)]
mod tests;
