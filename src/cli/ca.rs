//! `gatehouse ca rotate STEP`: one step of rotating the xDS CA without dropping a proxy
//! (`begin`, `promote`, `finish`; docs/operations.md says when to take the next).

use gatehouse::provision::ca_secret::{self, Step};

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
        #[arg(short, long, env = "GATEHOUSE_NAMESPACE", default_value = "gatehouse-system")]
        namespace: String,
        /// Name of the CA Secret (the controller's --ca-secret).
        #[arg(long, env = "GATEHOUSE_CA_SECRET", default_value = "gatehouse-xds-ca")]
        ca_secret: String,
        #[command(flatten)]
        kube: KubeArgs,
    },
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        CaCommand::Rotate {
            step,
            namespace,
            ca_secret,
            kube,
        } => {
            let client = kube.client().await?;
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
