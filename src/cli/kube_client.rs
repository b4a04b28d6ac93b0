//! `--kubeconfig` and `--context`, shared by the commands that talk to Kubernetes.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Which cluster to talk to. Without flags: `$KUBECONFIG`, then `~/.kube/config`, then the
/// in-cluster service account, as kubectl does.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, env = "GATEHOUSE_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, env = "GATEHOUSE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
}

impl KubeArgs {
    /// A client for the chosen cluster. Fails at once on an unreadable kubeconfig or an
    /// unknown context, before anything waits on the API server.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let file = path.display().to_string();
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| explain(e, &file))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| explain(e, &file))?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| explain(e, "$KUBECONFIG or ~/.kube/config"))?,
            (None, None) => kube::Config::infer()
                .await
                .context("no Kubernetes configuration (kubeconfig or in-cluster)")?,
        };
        kube::Client::try_from(config).context("building the Kubernetes client")
    }
}

/// kube's error about kubeconfig `file`, said once: its messages repeat their source (a read
/// error prints the io error twice under anyhow's `{:#}`) and name a missing context vaguely.
fn explain(e: KubeconfigError, file: &str) -> anyhow::Error {
    match e {
        KubeconfigError::ReadConfig(io, _) => anyhow!("reading kubeconfig {file}: {io}"),
        KubeconfigError::LoadContext(context) => {
            anyhow!("context {context:?} is not in kubeconfig {file}")
        }
        other => anyhow!("kubeconfig {file}: {other}"),
    }
}
