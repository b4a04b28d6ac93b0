//! The effective proxy settings of one Gateway: controller defaults, then the class's
//! GatewayParameters, then the Gateway's, field by field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};

use crate::api::{
    GatewayParametersSpec, HorizontalPodAutoscalerOverlay, KubernetesProxyConfig,
    PodDisruptionBudgetOverlay,
};

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
    pub affinity: Option<Affinity>,
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub priority_class_name: Option<String>,
    /// Fields that replace Gatehouse's pod security defaults.
    pub pod_security_context: Option<PodSecurityContext>,
    pub pod_disruption_budget: Option<PodDisruptionBudgetOverlay>,
    /// With one, the Deployment's replicas are the autoscaler's, not `replicas`.
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscalerOverlay>,
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
            affinity: None,
            topology_spread_constraints: Vec::new(),
            priority_class_name: None,
            pod_security_context: None,
            pod_disruption_budget: None,
            horizontal_pod_autoscaler: None,
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
            pod_disruption_budget,
            horizontal_pod_autoscaler,
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
            if p.affinity.is_some() {
                self.affinity.clone_from(&p.affinity);
            }
            if let Some(t) = &p.topology_spread_constraints {
                self.topology_spread_constraints.clone_from(t);
            }
            if p.priority_class_name.is_some() {
                self.priority_class_name.clone_from(&p.priority_class_name);
            }
            if let Some(sc) = &p.security_context {
                let base = self.pod_security_context.take().unwrap_or_default();
                self.pod_security_context = Some(overlay_pod_security(base, sc));
            }
        }
        // Whole objects: a Gateway's minAvailable must not meet its class's maxUnavailable,
        // nor its maxReplicas the class's larger minReplicas.
        if pod_disruption_budget.is_some() {
            self.pod_disruption_budget.clone_from(pod_disruption_budget);
        }
        if horizontal_pod_autoscaler.is_some() {
            self.horizontal_pod_autoscaler
                .clone_from(horizontal_pod_autoscaler);
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

/// `base` with every field `over` sets replaced by it. Exhaustive, so a field added to the
/// type is a compile error here rather than silently dropped.
pub(super) fn overlay_pod_security(
    base: PodSecurityContext,
    over: &PodSecurityContext,
) -> PodSecurityContext {
    let PodSecurityContext {
        app_armor_profile,
        fs_group,
        fs_group_change_policy,
        run_as_group,
        run_as_non_root,
        run_as_user,
        se_linux_change_policy,
        se_linux_options,
        seccomp_profile,
        supplemental_groups,
        supplemental_groups_policy,
        sysctls,
        windows_options,
    } = over.clone();
    PodSecurityContext {
        app_armor_profile: app_armor_profile.or(base.app_armor_profile),
        fs_group: fs_group.or(base.fs_group),
        fs_group_change_policy: fs_group_change_policy.or(base.fs_group_change_policy),
        run_as_group: run_as_group.or(base.run_as_group),
        run_as_non_root: run_as_non_root.or(base.run_as_non_root),
        run_as_user: run_as_user.or(base.run_as_user),
        se_linux_change_policy: se_linux_change_policy.or(base.se_linux_change_policy),
        se_linux_options: se_linux_options.or(base.se_linux_options),
        seccomp_profile: seccomp_profile.or(base.seccomp_profile),
        supplemental_groups: supplemental_groups.or(base.supplemental_groups),
        supplemental_groups_policy: supplemental_groups_policy.or(base.supplemental_groups_policy),
        sysctls: sysctls.or(base.sysctls),
        windows_options: windows_options.or(base.windows_options),
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
