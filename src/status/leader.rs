//! Lease-based leader election (`coordination.k8s.io/v1`). Only the leader writes status;
//! every replica serves xDS from its own watches.
//!
//! Hand-written (under two hundred lines), kept over kube-lease-manager 0.12 because that crate
//! judges expiry by comparing the Lease's `renewTime` with the local wall clock (its `grace`
//! is the skew it tolerates); the protocol here is client-go's: the holder renews, a follower
//! takes over only when the Lease record has not changed for `leaseDurationSeconds` of its
//! *own monotonic clock* since it saw it change — so no replica's wall clock, however skewed,
//! decides who leads ([`Observed`], tested under skew below) — and every write carries the
//! read `resourceVersion`, so two replicas cannot both win.

use std::time::{Duration, Instant};

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
    observed: std::sync::Mutex<Option<Observed>>,
}

/// The Lease record as this replica last saw it change, and when, by its monotonic clock.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    /// Holder, renewTime and transitions as written (compared, never interpreted as time).
    record: (String, String, i32),
    at: Instant,
}

impl Observed {
    /// Records what the Lease says now; true when the holder's lease has run out: the record
    /// has not changed for `duration` of local time since this replica first saw it as it is.
    fn expired(
        slot: &mut Option<Observed>,
        spec: &LeaseSpec,
        duration: Duration,
        now: Instant,
    ) -> bool {
        let record = (
            spec.holder_identity.clone().unwrap_or_default(),
            spec.renew_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            spec.lease_transitions.unwrap_or(0),
        );
        if record.0.is_empty() {
            return true;
        }
        match slot {
            Some(seen) if seen.record == record => {
                now.saturating_duration_since(seen.at) >= duration
            }
            _ => {
                *slot = Some(Observed { record, at: now });
                false
            }
        }
    }
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaderConfig) -> Self {
        let (leading, _) = watch::channel(false);
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leading,
            observed: std::sync::Mutex::new(None),
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
            // A round that hangs (the API server unreachable) must not keep this replica
            // leading past the Lease: each round is bounded well under the lease duration,
            // and any round that does not renew steps down.
            let round = tokio::time::timeout(self.round_timeout(), self.try_acquire_or_renew());
            let leads = match round.await {
                Ok(Ok(leads)) => leads,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %self.config.name, "leader election round failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(lease = %self.config.name, "leader election round timed out");
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

    /// Longest one campaign round may take: a third of the lease, so that renew interval
    /// plus a hung round stays under it and a follower never takes over from a replica that
    /// still believes it leads.
    fn round_timeout(&self) -> Duration {
        self.config.lease_duration / 3
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
        let limit = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(duration)).unwrap_or(15),
        );
        let expired = match self.observed.lock() {
            Ok(mut seen) => Observed::expired(&mut seen, spec, limit, Instant::now()),
            Err(_) => false,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(1),
            ..Default::default()
        }
    }

    /// Whatever the wall clocks say — the holder's hours ahead or behind the follower's —
    /// the follower takes over exactly when the record stopped changing for the lease
    /// duration of its own clock, never while the holder renews.
    #[test]
    fn expiry_ignores_clock_skew() {
        let d = Duration::from_secs(15);
        let start = Instant::now();
        let wall = Timestamp::now();
        for skew_hours in [-48i64, -1, 0, 1, 48] {
            let holder_wall = |secs: i64| {
                wall.checked_add(k8s_openapi::jiff::SignedDuration::from_hours(skew_hours))
                    .and_then(|t| t.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs)))
                    .expect("in range")
            };
            let mut seen = None;
            // The holder renews every 2 s for a minute: never expired.
            for i in 0..30u64 {
                let now = start + Duration::from_secs(2 * i);
                let s = spec("a", holder_wall(2 * i as i64));
                assert!(
                    !Observed::expired(&mut seen, &s, d, now),
                    "skew {skew_hours}h, renewal {i}"
                );
            }
            // It stops renewing: the same record for 15 s of local time, then expired.
            let last = spec("a", holder_wall(60));
            let stopped = start + Duration::from_secs(60);
            assert!(!Observed::expired(&mut seen, &last, d, stopped));
            assert!(!Observed::expired(
                &mut seen,
                &last,
                d,
                stopped + Duration::from_secs(14)
            ));
            assert!(
                Observed::expired(&mut seen, &last, d, stopped + d),
                "skew {skew_hours}h"
            );
        }
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let mut seen = None;
        let free = LeaseSpec::default();
        assert!(Observed::expired(
            &mut seen,
            &free,
            Duration::from_secs(15),
            Instant::now()
        ));
    }
}
