//! The real tonic server on 127.0.0.1:0, driven by the generated client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::util::pack_any;
use futures::StreamExt;
use gatehouse_xds::type_url::{CLUSTER, ENDPOINT};
use gatehouse_xds::{AdsServer, Peer, Snapshot, SnapshotCache, XdsStats, serve_with_listener};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const WAIT: Duration = Duration::from_secs(10);
const GROUP: &str = "ns/gw";

struct Harness {
    addr: SocketAddr,
    cache: SnapshotCache,
    stats: Arc<XdsStats>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), gatehouse_xds::XdsError>>,
}

async fn start() -> Harness {
    let cache = SnapshotCache::new();
    let stats = Arc::new(XdsStats::default());
    // Proxies name their group in `node.cluster`; an empty one is refused.
    let grouper = Arc::new(|node: &Node, _: &Peer| {
        (!node.cluster.is_empty())
            .then(|| node.cluster.clone())
            .ok_or_else(|| "no cluster".to_string())
    });
    let server = AdsServer::new(cache.clone(), grouper, stats.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_listener(listener, server, None, async {
        let _ = stopped.await;
    }));
    Harness {
        addr,
        cache,
        stats,
        stop,
        server,
    }
}

async fn client(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn node(group: &str) -> Node {
    Node {
        id: "envoy-test".into(),
        cluster: group.into(),
        ..Default::default()
    }
}

fn eds_cluster(name: &str, connect_timeout_tag: &str) -> Cluster {
    Cluster {
        name: name.into(),
        alt_stat_name: connect_timeout_tag.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig::default()),
        ..Default::default()
    }
}

fn snapshot(clusters: &[(&str, &str)], endpoints: &[(&str, u32)]) -> Snapshot {
    let mut s = Snapshot::new();
    for (name, tag) in clusters {
        s.insert(CLUSTER, *name, pack_any(eds_cluster(name, tag)));
    }
    for (name, weight) in endpoints {
        let cla = ClusterLoadAssignment {
            cluster_name: name.to_string(),
            endpoints: vec![
                envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints {
                    load_balancing_weight: Some(envoy_types::pb::google::protobuf::UInt32Value {
                        value: *weight,
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        s.insert(ENDPOINT, *name, pack_any(cla));
    }
    s
}

fn cluster_names(resp: &DiscoveryResponse) -> Vec<(String, String)> {
    resp.resources
        .iter()
        .map(|any| {
            let c = Cluster::decode(any.value.as_slice()).unwrap();
            (c.name, c.alt_stat_name)
        })
        .collect()
}

async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("timed out waiting for a response")
        .expect("stream ended")
        .expect("stream failed")
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sotw(
    addr: SocketAddr,
    first: DiscoveryRequest,
) -> (mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>) {
    let (tx, rx) = mpsc::channel(8);
    // Queued before the call: tonic's client waits for response headers.
    tx.send(first).await.unwrap();
    let stream = client(addr)
        .await
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}

async fn delta(
    addr: SocketAddr,
    first: DeltaDiscoveryRequest,
) -> (
    mpsc::Sender<DeltaDiscoveryRequest>,
    Streaming<DeltaDiscoveryResponse>,
) {
    let (tx, rx) = mpsc::channel(8);
    tx.send(first).await.unwrap();
    let stream = client(addr)
        .await
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}

fn sotw_req(t: &str, names: &[&str], resp: Option<&DiscoveryResponse>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: t.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: resp.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: resp.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sotw_subscribe_ack_and_update() {
    let h = start().await;
    let (tx, mut rx) = sotw(
        h.addr,
        DiscoveryRequest {
            node: Some(node(GROUP)),
            ..sotw_req(CLUSTER, &[], None)
        },
    )
    .await;

    // The group has no snapshot yet: silence, then the first snapshot is pushed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.stats.pushes(), 0);
    assert_eq!(h.stats.connected(), 1);
    h.cache.set(GROUP, snapshot(&[("c1", "a")], &[("c1", 1)]));
    let cds = next(&mut rx).await;
    assert_eq!(cds.type_url, CLUSTER);
    assert_eq!(cluster_names(&cds), [("c1".to_string(), "a".to_string())]);
    assert_eq!(
        cds.version_info,
        h.cache.get(GROUP).unwrap().version(CLUSTER)
    );

    // ACK, then ask for the cluster's endpoints.
    tx.send(sotw_req(CLUSTER, &[], Some(&cds))).await.unwrap();
    tx.send(sotw_req(ENDPOINT, &["c1"], None)).await.unwrap();
    let eds = next(&mut rx).await;
    assert_eq!(eds.type_url, ENDPOINT);
    assert_eq!(eds.resources.len(), 1);
    tx.send(sotw_req(ENDPOINT, &["c1"], Some(&eds)))
        .await
        .unwrap();
    eventually("two acks", || h.stats.acks() == 2).await;

    // An endpoint change reaches the proxy; an identical rebuild does not.
    h.cache.set(GROUP, snapshot(&[("c1", "a")], &[("c1", 1)]));
    h.cache.set(GROUP, snapshot(&[("c1", "a")], &[("c1", 2)]));
    let eds2 = next(&mut rx).await;
    assert_eq!(eds2.type_url, ENDPOINT);
    assert_ne!(eds2.version_info, eds.version_info);
    assert_ne!(eds2.nonce, eds.nonce);
    let cla = ClusterLoadAssignment::decode(eds2.resources[0].value.as_slice()).unwrap();
    assert_eq!(cla.endpoints[0].load_balancing_weight.unwrap().value, 2);

    // A NACK echoing an old nonce is stale and ignored; one echoing the latest is counted.
    let nack = |resp: &DiscoveryResponse| DiscoveryRequest {
        error_detail: Some(envoy_types::pb::google::rpc::Status {
            code: 3,
            message: "bad endpoints".into(),
            details: vec![],
        }),
        ..sotw_req(ENDPOINT, &["c1"], Some(resp))
    };
    tx.send(nack(&eds)).await.unwrap();
    tx.send(nack(&eds2)).await.unwrap();
    eventually("one nack", || h.stats.nacks() == 1).await;
    assert_eq!(h.stats.nacks_for(ENDPOINT), 1);

    // The rejected version is not pushed again: the next push is the newer snapshot.
    h.cache.set(GROUP, snapshot(&[("c1", "a")], &[("c1", 3)]));
    let eds3 = next(&mut rx).await;
    let cla = ClusterLoadAssignment::decode(eds3.resources[0].value.as_slice()).unwrap();
    assert_eq!(cla.endpoints[0].load_balancing_weight.unwrap().value, 3);
    assert_eq!(h.stats.pushes(), 4);

    // Shutdown ends the stream and the server returns.
    h.stop.send(()).unwrap();
    let end = tokio::time::timeout(WAIT, rx.next())
        .await
        .expect("stream not ended");
    assert!(matches!(end, None | Some(Ok(_))), "{end:?}");
    tokio::time::timeout(WAIT, h.server)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    assert_eq!(h.stats.connected(), 0);
    drop(tx);
}

#[tokio::test]
async fn delta_subscribe_ack_and_update() {
    let h = start().await;
    h.cache.set(GROUP, snapshot(&[("c1", "a")], &[]));
    let (tx, mut rx) = delta(
        h.addr,
        DeltaDiscoveryRequest {
            node: Some(node(GROUP)),
            type_url: CLUSTER.into(),
            resource_names_subscribe: vec!["*".into()],
            ..Default::default()
        },
    )
    .await;
    let first = next(&mut rx).await;
    assert_eq!(first.type_url, CLUSTER);
    let names: Vec<_> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["c1"]);
    let c1_version = first.resources[0].version.clone();
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    eventually("ack", || h.stats.acks() == 1).await;

    // Adding c2 sends c2 alone; c1 is unchanged.
    h.cache
        .set(GROUP, snapshot(&[("c1", "a"), ("c2", "a")], &[]));
    let second = next(&mut rx).await;
    let names: Vec<_> = second.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["c2"]);
    assert!(second.removed_resources.is_empty());
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: second.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    eventually("second ack", || h.stats.acks() == 2).await;

    // Removing c1 (nothing routes to it) sends the removal.
    h.cache.set(GROUP, snapshot(&[("c2", "a")], &[]));
    let third = next(&mut rx).await;
    assert!(third.resources.is_empty());
    assert_eq!(third.removed_resources, ["c1"]);

    // A reconnecting proxy that reports what it holds gets nothing it already has.
    drop(tx);
    let c2_version = second.resources[0].version.clone();
    assert_ne!(c1_version, "");
    let (_tx2, mut rx2) = delta(
        h.addr,
        DeltaDiscoveryRequest {
            node: Some(node(GROUP)),
            type_url: CLUSTER.into(),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: [("c2".to_string(), c2_version)].into(),
            ..Default::default()
        },
    )
    .await;
    h.cache
        .set(GROUP, snapshot(&[("c2", "a"), ("c3", "a")], &[]));
    let resp = next(&mut rx2).await;
    let names: Vec<_> = resp.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["c3"], "c2 was current and must not be resent");

    h.stop.send(()).unwrap();
    tokio::time::timeout(WAIT, h.server)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn node_without_group_is_refused() {
    let h = start().await;
    let (_tx, mut rx) = sotw(
        h.addr,
        DiscoveryRequest {
            node: Some(node("")),
            ..sotw_req(CLUSTER, &[], None)
        },
    )
    .await;
    let err = tokio::time::timeout(WAIT, rx.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(h.stats.connected(), 0);
}

/// A proxy that NACKs keeps its own stream waiting for a newer snapshot; another group's
/// proxy is pushed every change regardless.
#[tokio::test]
async fn a_nack_in_one_group_does_not_hold_back_another() {
    let h = start().await;
    h.cache.set("ns/a", snapshot(&[("c1", "a1")], &[]));
    h.cache.set("ns/b", snapshot(&[("c1", "b1")], &[]));
    let (tx_a, mut rx_a) = sotw(
        h.addr,
        DiscoveryRequest {
            node: Some(node("ns/a")),
            ..sotw_req(CLUSTER, &[], None)
        },
    )
    .await;
    let (tx_b, mut rx_b) = sotw(
        h.addr,
        DiscoveryRequest {
            node: Some(node("ns/b")),
            ..sotw_req(CLUSTER, &[], None)
        },
    )
    .await;
    let first_a = next(&mut rx_a).await;
    let first_b = next(&mut rx_b).await;
    // A rejects its config.
    let mut nack = sotw_req(CLUSTER, &[], Some(&first_a));
    nack.version_info = String::new();
    nack.error_detail = Some(envoy_types::pb::google::rpc::Status {
        code: 3,
        message: "rejected".into(),
        ..Default::default()
    });
    tx_a.send(nack).await.unwrap();
    tx_b.send(sotw_req(CLUSTER, &[], Some(&first_b)))
        .await
        .unwrap();
    eventually("the NACK is counted", || h.stats.nacks() == 1).await;

    // B keeps getting updates.
    for v in ["b2", "b3"] {
        h.cache.set("ns/b", snapshot(&[("c1", v)], &[]));
        let update = next(&mut rx_b).await;
        assert_eq!(cluster_names(&update), [("c1".to_string(), v.to_string())]);
        tx_b.send(sotw_req(CLUSTER, &[], Some(&update)))
            .await
            .unwrap();
    }
    // A gets the next change to its own group.
    h.cache.set("ns/a", snapshot(&[("c1", "a2")], &[]));
    let update = next(&mut rx_a).await;
    assert_eq!(
        cluster_names(&update),
        [("c1".to_string(), "a2".to_string())]
    );
    drop((tx_a, tx_b));
    let _ = h.stop.send(());
}
