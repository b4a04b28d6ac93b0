//! Whether this controller replica leads: a Lease elector, or always with election off.

use std::time::Duration;

use anyhow::Context;
use gatehouse::status::{LeaderConfig, LeaderElector};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::shutdown::Shutdown;

/// This replica's default identity in the Lease and in the Events it publishes.
pub(super) fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()))
        .unwrap_or_else(|_| "gatehouse".into());
    format!("{host}-{}", std::process::id())
}

/// The Lease to elect a leader through.
pub(super) struct Election {
    pub namespace: String,
    pub name: String,
    /// This replica's identity in the Lease (default: $POD_NAME or hostname, plus the pid).
    pub identity: Option<String>,
}

/// Whether this replica leads, and the owner of that answer: the controller holds it until
/// every task reading `leading` has ended.
pub(super) struct Leadership {
    pub(super) leading: watch::Receiver<bool>,
    owner: LeadershipOwner,
}

enum LeadershipOwner {
    /// The Lease elector's task, which publishes whether this replica holds the Lease until
    /// shutdown.
    Elected(JoinHandle<()>),
    /// Election is off: this replica always leads. The sender is never used, only kept: the
    /// provisioning and status loops take a closed channel as their end, so it must live as
    /// long as they do.
    Always(watch::Sender<bool>),
}

impl Leadership {
    /// Leadership through `election`; without one this replica always leads.
    pub(super) fn start(
        client: &kube::Client,
        election: Option<Election>,
        shutdown: &Shutdown,
    ) -> Self {
        let Some(election) = election else {
            let (always, leading) = watch::channel(true);
            return Leadership {
                leading,
                owner: LeadershipOwner::Always(always),
            };
        };
        let config = LeaderConfig {
            namespace: election.namespace,
            name: election.name,
            identity: election.identity.unwrap_or_else(identity),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        };
        tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "leader election on");
        let elector = LeaderElector::new(client.clone(), config);
        let leading = elector.subscribe();
        let task = tokio::spawn(elector.run(shutdown.wait()));
        Leadership {
            leading,
            owner: LeadershipOwner::Elected(task),
        }
    }

    /// Waits for the elector to stop, or lets go of the "always leading" sender; call once
    /// the tasks reading `leading` are done.
    pub(super) async fn finish(self) -> anyhow::Result<()> {
        match self.owner {
            LeadershipOwner::Elected(task) => task.await.context("leader election task"),
            LeadershipOwner::Always(always) => {
                drop(always);
                Ok(())
            }
        }
    }
}
