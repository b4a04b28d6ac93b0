//! Lease-based leader election (`coordination.k8s.io/v1`). Only the leader writes status;
//! every replica serves xDS from its own watches.
//!
//! Hand-written (about a hundred lines) because the published kube-rs lease crates lag behind
//! kube 4; the protocol is the one client-go uses: the holder renews `renewTime`, others take
//! over when it is older than `leaseDurationSeconds`, and every write carries the read
//! `resourceVersion`, so two replicas cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// Where the lease lives and how it is timed.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

/// Runs the election and publishes whether this replica leads.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaderConfig) -> Self {
        let (leading, _) = watch::channel(false);
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leading,
        }
    }

    /// Follows leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Campaigns and renews until `shutdown`; then releases the lease if held, so another
    /// replica takes over without waiting for it to expire.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let leads = match self.try_acquire_or_renew().await {
                Ok(leads) => leads,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.config.name, "leader election round failed");
                    false
                }
            };
            if *self.leading.borrow() != leads {
                tracing::info!(identity = %self.config.identity, leads, "leadership changed");
                self.leading.send_replace(leads);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.renew_every) => {}
            }
        }
        if *self.leading.borrow() {
            self.leading.send_replace(false);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
            }
        }
    }

    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let me = &self.config.identity;
        let duration = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(Self::now()),
                    renew_time: Some(Self::now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let age = Timestamp::now().duration_since(t.0);
            let limit = i64::from(spec.lease_duration_seconds.unwrap_or(duration));
            age.as_secs() >= limit
        });
        if holder != *me && !holder.is_empty() && !expired {
            return Ok(false);
        }
        if holder != *me {
            spec.acquire_time = Some(Self::now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(me.clone());
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(Self::now());
        // `replace` carries the resourceVersion we read: a concurrent writer makes it fail.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}
