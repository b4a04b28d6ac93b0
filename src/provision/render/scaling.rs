//! The proxies' PodDisruptionBudget and HorizontalPodAutoscaler, rendered only when the
//! GatewayParameters ask for them.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Proxy;
use crate::api::OverlayMetadata;
use crate::provisioned::names;

impl Proxy<'_> {
    fn overlay_meta(&self, metadata: Option<&OverlayMetadata>) -> ObjectMeta {
        let field = |f: fn(&OverlayMetadata) -> &Option<BTreeMap<String, String>>| {
            metadata.and_then(|m| f(m).clone()).unwrap_or_default()
        };
        self.meta.object(
            self.name.clone(),
            &field(|m| &m.labels),
            &field(|m| &m.annotations),
        )
    }

    /// Selects the proxy pods; `minAvailable: 1` when the parameters name no budget.
    pub(super) fn pod_disruption_budget(&self) -> Option<PodDisruptionBudget> {
        let pdb = self.settings.pod_disruption_budget.as_ref()?;
        let spec = pdb.spec.clone().unwrap_or_default();
        let min_available = match (&spec.min_available, &spec.max_unavailable) {
            (None, None) => Some(IntOrString::Int(1)),
            (min, _) => min.clone(),
        };
        Some(PodDisruptionBudget {
            metadata: self.overlay_meta(pdb.metadata.as_ref()),
            spec: Some(PodDisruptionBudgetSpec {
                min_available,
                max_unavailable: spec.max_unavailable,
                selector: Some(LabelSelector {
                    match_labels: Some(names::selector(self.gateway_name)),
                    ..Default::default()
                }),
                unhealthy_pod_eviction_policy: spec.unhealthy_pod_eviction_policy,
            }),
            ..Default::default()
        })
    }

    /// Scales the proxy Deployment. `maxReplicas` is required by the schema and checked with
    /// the parameters ([`crate::api::GatewayParametersSpec::invalid`]); 1 stands in if an
    /// unchecked object lacks it.
    pub(super) fn horizontal_pod_autoscaler(&self) -> Option<HorizontalPodAutoscaler> {
        let hpa = self.settings.horizontal_pod_autoscaler.as_ref()?;
        let spec = hpa.spec.clone().unwrap_or_default();
        Some(HorizontalPodAutoscaler {
            metadata: self.overlay_meta(hpa.metadata.as_ref()),
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: self.name.clone(),
                },
                min_replicas: spec.min_replicas,
                max_replicas: spec.max_replicas.unwrap_or(1),
                metrics: spec.metrics,
                behavior: spec.behavior,
            }),
            ..Default::default()
        })
    }
}
