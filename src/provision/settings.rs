//! The effective proxy settings of one Gateway: controller defaults, then the class's
//! GatewayParameters, then the Gateway's, field by field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};

use crate::api::{GatewayParametersSpec, KubernetesProxyConfig};

/// What the provisioned objects are made of.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySettings {
    pub image: String,
    pub pull_policy: Option<String>,
    pub replicas: i32,
    pub resources: Option<ResourceRequirements>,
    pub log_level: String,
    pub service_type: String,
    pub service_labels: BTreeMap<String, String>,
    pub service_annotations: BTreeMap<String, String>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub service_account_labels: BTreeMap<String, String>,
    pub service_account_annotations: BTreeMap<String, String>,
}

/// Envoy image used when no GatewayParameters names one: the version the tests run.
pub const DEFAULT_ENVOY_IMAGE: &str = "docker.io/envoyproxy/envoy:v1.40.0";

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            image: DEFAULT_ENVOY_IMAGE.into(),
            pull_policy: None,
            replicas: 1,
            resources: None,
            log_level: "info".into(),
            service_type: "LoadBalancer".into(),
            service_labels: BTreeMap::new(),
            service_annotations: BTreeMap::new(),
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            image_pull_secrets: Vec::new(),
            service_account_labels: BTreeMap::new(),
            service_account_annotations: BTreeMap::new(),
        }
    }
}

fn extend(into: &mut BTreeMap<String, String>, from: &Option<BTreeMap<String, String>>) {
    if let Some(from) = from {
        into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

impl ProxySettings {
    /// Applies one GatewayParameters on top: set fields win, maps merge key by key.
    pub fn apply(&mut self, params: &GatewayParametersSpec) {
        let Some(kube) = &params.kube else { return };
        let KubernetesProxyConfig {
            deployment,
            envoy_container,
            pod_template,
            service,
            service_account,
        } = kube;
        if let Some(replicas) = deployment.as_ref().and_then(|d| d.replicas) {
            self.replicas = replicas;
        }
        if let Some(c) = envoy_container {
            if let Some(image) = &c.image {
                self.image = image_ref(&self.image, image);
                if image.pull_policy.is_some() {
                    self.pull_policy.clone_from(&image.pull_policy);
                }
            }
            if c.resources.is_some() {
                self.resources.clone_from(&c.resources);
            }
            if let Some(level) = c.bootstrap.as_ref().and_then(|b| b.log_level.clone()) {
                self.log_level = level;
            }
        }
        if let Some(p) = pod_template {
            extend(&mut self.pod_labels, &p.extra_labels);
            extend(&mut self.pod_annotations, &p.extra_annotations);
            extend(&mut self.node_selector, &p.node_selector);
            if let Some(t) = &p.tolerations {
                self.tolerations.clone_from(t);
            }
            if let Some(s) = &p.image_pull_secrets {
                self.image_pull_secrets.clone_from(s);
            }
        }
        if let Some(s) = service {
            if let Some(t) = &s.type_ {
                self.service_type.clone_from(t);
            }
            extend(&mut self.service_labels, &s.extra_labels);
            extend(&mut self.service_annotations, &s.extra_annotations);
        }
        if let Some(sa) = service_account {
            extend(&mut self.service_account_labels, &sa.extra_labels);
            extend(&mut self.service_account_annotations, &sa.extra_annotations);
        }
    }
}

/// Splits `registry/repository:tag@digest` well enough to replace any part of it.
fn split_image(image: &str) -> (Option<&str>, &str, Option<&str>) {
    let (rest, _digest) = image.split_once('@').unwrap_or((image, ""));
    let (registry, rest) = match rest.split_once('/') {
        Some((first, tail))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), tail)
        }
        _ => (None, rest),
    };
    match rest.rsplit_once(':') {
        Some((repo, tag)) => (registry, repo, Some(tag)),
        None => (registry, rest, None),
    }
}

fn image_ref(current: &str, image: &crate::api::Image) -> String {
    let (registry, repository, tag) = split_image(current);
    let registry = image.registry.as_deref().or(registry);
    let repository = image.repository.as_deref().unwrap_or(repository);
    let mut out = match registry {
        Some(r) => format!("{r}/{repository}"),
        None => repository.to_string(),
    };
    if let Some(digest) = &image.digest {
        out.push('@');
        out.push_str(digest);
    } else if let Some(tag) = image.tag.as_deref().or(tag) {
        out.push(':');
        out.push_str(tag);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EnvoyContainer, Image, ProxyDeployment, ProxyService};

    fn params(f: impl FnOnce(&mut KubernetesProxyConfig)) -> GatewayParametersSpec {
        let mut kube = KubernetesProxyConfig::default();
        f(&mut kube);
        GatewayParametersSpec {
            kube: Some(kube),
            ..Default::default()
        }
    }

    #[test]
    fn gateway_parameters_override_class_parameters_field_by_field() {
        let class = params(|k| {
            k.deployment = Some(ProxyDeployment { replicas: Some(3) });
            k.service = Some(ProxyService {
                type_: Some("NodePort".into()),
                extra_labels: Some(BTreeMap::from([("team".into(), "a".into())])),
                ..Default::default()
            });
        });
        let gateway = params(|k| {
            k.service = Some(ProxyService {
                type_: Some("ClusterIP".into()),
                extra_labels: Some(BTreeMap::from([("tier".into(), "edge".into())])),
                ..Default::default()
            });
        });
        let mut s = ProxySettings::default();
        s.apply(&class);
        s.apply(&gateway);
        assert_eq!(s.replicas, 3, "kept from the class");
        assert_eq!(s.service_type, "ClusterIP", "the Gateway wins");
        assert_eq!(s.service_labels.len(), 2, "maps merge");
        assert_eq!(s.image, DEFAULT_ENVOY_IMAGE);
    }

    #[test]
    fn image_parts_replace_parts() {
        let cases = [
            (
                "docker.io/envoyproxy/envoy:v1.40.0",
                Image {
                    tag: Some("v1.41.0".into()),
                    ..Default::default()
                },
                "docker.io/envoyproxy/envoy:v1.41.0",
            ),
            (
                "docker.io/envoyproxy/envoy:v1.40.0",
                Image {
                    registry: Some("mirror.local:5000".into()),
                    ..Default::default()
                },
                "mirror.local:5000/envoyproxy/envoy:v1.40.0",
            ),
            (
                "envoyproxy/envoy:v1",
                Image {
                    repository: Some("me/envoy".into()),
                    ..Default::default()
                },
                "me/envoy:v1",
            ),
            (
                "envoyproxy/envoy:v1",
                Image {
                    digest: Some("sha256:abc".into()),
                    ..Default::default()
                },
                "envoyproxy/envoy@sha256:abc",
            ),
        ];
        for (current, image, want) in cases {
            let mut s = ProxySettings {
                image: current.into(),
                ..Default::default()
            };
            s.apply(&params(|k| {
                k.envoy_container = Some(EnvoyContainer {
                    image: Some(image.clone()),
                    ..Default::default()
                });
            }));
            assert_eq!(s.image, want, "{current} + {image:?}");
        }
    }
}
