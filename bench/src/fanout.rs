//! N delta ADS clients on one Gateway: memory per idle stream, and how long one change takes
//! to reach all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use gatehouse::store::ObjKey;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// Connected clients; `updated` counts those that saw a listener named `watch_for`.
pub struct Clients {
    pub connected: Arc<AtomicUsize>,
    pub updated: Arc<AtomicUsize>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub async fn connect(
    xds_port: u16,
    gateway: &ObjKey,
    n: usize,
    watch_for: String,
) -> anyhow::Result<Clients> {
    let connected = Arc::new(AtomicUsize::new(0));
    let updated = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // A few HTTP/2 connections, many streams each, as a fleet behind a few hosts would not
    // be; it is the per-stream cost that is measured.
    let channels = n.div_ceil(50);
    for c in 0..channels {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{xds_port}"))?
            .connect()
            .await
            .context("connect to xDS")?;
        for _ in 0..50.min(n - c * 50) {
            let mut client = AggregatedDiscoveryServiceClient::new(channel.clone());
            let node = gatehouse::bootstrap::node(gateway);
            let (connected, updated, watch_for) =
                (connected.clone(), updated.clone(), watch_for.clone());
            tasks.push(tokio::spawn(async move {
                let (tx, rx) = mpsc::channel(4);
                let _ = tx
                    .send(DeltaDiscoveryRequest {
                        node: Some(node),
                        type_url: LISTENER.into(),
                        ..Default::default()
                    })
                    .await;
                let Ok(resp) = client
                    .delta_aggregated_resources(ReceiverStream::new(rx))
                    .await
                else {
                    return;
                };
                let mut stream = resp.into_inner();
                let mut first = true;
                let mut seen = false;
                while let Ok(Some(msg)) = stream.message().await {
                    if first {
                        connected.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    }
                    if !seen && msg.resources.iter().any(|r| r.name == watch_for) {
                        seen = true;
                        updated.fetch_add(1, Ordering::Relaxed);
                    }
                    let ack = DeltaDiscoveryRequest {
                        type_url: msg.type_url.clone(),
                        response_nonce: msg.nonce.clone(),
                        ..Default::default()
                    };
                    if tx.send(ack).await.is_err() {
                        return;
                    }
                }
            }));
        }
    }
    Ok(Clients {
        connected,
        updated,
        _tasks: tasks,
    })
}

/// Waits until `counter` reaches `n`; how long it took.
pub async fn until(counter: &AtomicUsize, n: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) < n {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Some(start.elapsed())
}
