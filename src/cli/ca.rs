//! `gatehouse ca rotate STEP`: one step of rotating the xDS CA without dropping a proxy
//! (`begin`, `promote`, `finish`; docs/operations.md says when to take the next).

use anyhow::Context;
use gatehouse::provision::ca_secret::{self, CaState, Step};
use gatehouse::provisioned::names::{CREDENTIALS_HASH_ANNOTATION, credentials_hash};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

use super::kube_client::KubeArgs;

/// Arguments of `ca`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Take one step of a CA rotation on the controller's CA Secret.
    Rotate {
        /// `begin` (create the next CA, trusted beside the current one), `promote` (sign with
        /// it; the old one stays trusted), `finish` (stop trusting the old one).
        #[arg(value_enum)]
        step: Step,
        /// Namespace of the CA Secret (the controller's namespace).
        #[arg(
            short,
            long,
            env = "GATEHOUSE_NAMESPACE",
            default_value = "gatehouse-system"
        )]
        namespace: String,
        /// Name of the CA Secret (the controller's --ca-secret).
        #[arg(long, env = "GATEHOUSE_CA_SECRET", default_value = "gatehouse-xds-ca")]
        ca_secret: String,
        /// Take `promote` or `finish` even though provisioned proxies have not rolled onto the
        /// previous step (their next reconnect may then fail).
        #[arg(long, env = "GATEHOUSE_FORCE")]
        force: bool,
        #[command(flatten)]
        kube: KubeArgs,
    },
}

/// Provisioned proxies that do not run the credentials of the CA Secret's current step yet:
/// their Secret lacks the current bundle, their Deployment's pods do not mount it, or the
/// rollout is not complete. Empty when every proxy is on the current step.
async fn proxies_behind(client: &kube::Client, state: &CaState) -> anyhow::Result<Vec<String>> {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let list = deployments
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=gatehouse"))
        .await
        .context("listing the provisioned proxy Deployments")?;
    let mut behind = Vec::new();
    for d in list.items {
        let owned_by_gateway = d
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Gateway");
        let (Some(ns), Some(name)) = (d.metadata.namespace.as_deref(), d.metadata.name.as_deref())
        else {
            continue;
        };
        if !owned_by_gateway {
            continue;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let secret_name = format!("{name}-xds-tls");
        let Some(secret) = secrets.get_opt(&secret_name).await? else {
            behind.push(format!("{ns}/{name}: no Secret {secret_name}"));
            continue;
        };
        let text = |k: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default()
        };
        let (cert, bundle) = (text("tls.crt"), text("ca.crt"));
        if bundle != state.bundle {
            behind.push(format!(
                "{ns}/{name}: its Secret does not hold the current CA bundle yet (the controller updates it within seconds)"
            ));
            continue;
        }
        let mounted = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CREDENTIALS_HASH_ANNOTATION));
        if mounted != Some(&credentials_hash(&cert, &bundle)) {
            behind.push(format!(
                "{ns}/{name}: its pods are not updated to the current credentials yet"
            ));
            continue;
        }
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let observed =
            status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let total = status.replicas.unwrap_or(0);
        if !observed || updated < want || available < want || total > updated {
            behind.push(format!(
                "{ns}/{name}: rolling out ({updated} of {want} replicas updated, {available} available, {total} running)"
            ));
        }
    }
    Ok(behind)
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        CaCommand::Rotate {
            step,
            namespace,
            ca_secret,
            force,
            kube,
        } => {
            let client = kube.client().await?;
            // The step must apply to the Secret as it is before the proxies are looked at.
            let stored: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let secret = stored
                .get(&ca_secret)
                .await
                .with_context(|| format!("reading Secret {namespace}/{ca_secret}"))?;
            let data = secret.data.clone().unwrap_or_default();
            if let Err(e) = ca_secret::rotated(&data, step, time::OffsetDateTime::now_utc()) {
                eprintln!("Secret {namespace}/{ca_secret}: {step:?} refused: {e}");
                return Ok(1);
            }
            if step != Step::Begin && !force {
                let current = ca_secret::from_secret(&secret)
                    .unwrap_or_else(|| {
                        Err(gatehouse::provision::ProvisionError::Parameters(
                            "no CA in the Secret".into(),
                        ))
                    })
                    .with_context(|| format!("Secret {namespace}/{ca_secret}"))?;
                let behind = proxies_behind(&client, &current).await?;
                if !behind.is_empty() {
                    eprintln!(
                        "Secret {namespace}/{ca_secret}: {step:?} refused: these proxies do not run the previous step yet, and would fail to reconnect after it (wait, or --force):"
                    );
                    for line in behind {
                        eprintln!("  {line}");
                    }
                    return Ok(1);
                }
            }
            match ca_secret::rotate(&client, &namespace, &ca_secret, step).await {
                Ok(state) => {
                    println!(
                        "Secret {namespace}/{ca_secret}: {step:?} done ({}). Every controller replica picks it up within {}s; wait for the proxies to roll before the next step.",
                        state.describe(),
                        super::xds_certificate::CA_POLL.as_secs()
                    );
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("Secret {namespace}/{ca_secret}: {step:?} refused: {e}");
                    Ok(1)
                }
            }
        }
    }
}
