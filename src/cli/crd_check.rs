//! At start and now and then: are the installed CRDs of Gatehouse's group the ones Gatehouse
//! reads? kgateway installs CRDs of the same names; where theirs lack a field of ours, the API
//! server drops that field from every object before Gatehouse sees it. Said in the log (error)
//! and in `gatehouse_crd_missing_fields`, never silently.

use std::sync::Arc;
use std::time::Duration;

use gatehouse::metrics::Metrics;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

const EVERY: Duration = Duration::from_secs(300);

fn set(metrics: &Metrics, crd: &str, missing: i64) {
    metrics
        .crd_missing_fields
        .get_or_create(&[("crd", crd.to_string())])
        .set(missing);
}

pub(super) async fn check_crds(client: kube::Client, metrics: Arc<Metrics>) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let mut last: Vec<(String, Vec<String>)> = Vec::new();
    loop {
        let mut found = Vec::new();
        for ours in gatehouse::crds::definitions() {
            let name = ours.metadata.name.clone().unwrap_or_default();
            match api.get_opt(&name).await {
                Ok(Some(installed)) => {
                    let lacks = gatehouse::crds::compare(&ours, &installed);
                    let total = gatehouse::crds::missing_total(&ours, &installed);
                    set(&metrics, &name, total as i64);
                    found.push((name, lacks));
                }
                // Missing CRDs already keep the controller unready (the watch names them).
                Ok(None) => set(&metrics, &name, 0),
                Err(e) => {
                    tracing::warn!(crd = %name, error = %e, "cannot read the CRD to compare it with Gatehouse's (RBAC: get customresourcedefinitions)");
                }
            }
        }
        if found != last {
            for (name, lacks) in &found {
                for line in lacks {
                    tracing::error!(crd = %name, problem = %line, "the installed CRD is not Gatehouse's: objects lose these fields before Gatehouse reads them; install Gatehouse's CRDs (`gatehouse crds | kubectl apply --server-side -f -`) or remove the other controller's");
                }
            }
            last = found;
        }
        tokio::time::sleep(EVERY).await;
    }
}
