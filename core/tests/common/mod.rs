//! Shared helpers of the integration tests: a real nats-server per test and
//! a connected client.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Once,
    time::{Duration, Instant},
};

use jetstation::{Client, ConnectOptions};
pub use jetstation_harness::{Cluster, NatsServer};

pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("JETSTATION_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

pub fn options(server: &NatsServer) -> ConnectOptions {
    ConnectOptions::new(server.url())
        .request_timeout(Duration::from_secs(2))
        .max_reconnect_delay(Duration::from_millis(250))
}

pub async fn connect(server: &NatsServer) -> Client {
    init_tracing();
    Client::connect(options(server)).await.expect("connect")
}

/// Whether a server of `version` takes fast-ingest batches (2.14+); an
/// older one gets atomic batches instead.
pub fn takes_fast_batches(version: &str) -> bool {
    !(version.starts_with("2.12.") || version.starts_with("2.13."))
}

/// Waits for `cond` to hold, polling, up to `limit`; panics with `what`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // Poll interval of wait_until; bounded by its deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects to a fresh cluster once its JetStream meta leader is elected
/// (connect succeeds only when the JetStream API answers).
pub async fn connect_cluster(cluster: &Cluster) -> Client {
    init_tracing();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let options = ConnectOptions::with_urls(cluster.urls())
            .request_timeout(Duration::from_secs(5))
            .max_reconnect_delay(Duration::from_millis(250));
        match Client::connect(options).await {
            Ok(c) => {
                wait_for_placement(cluster, deadline).await;
                return c;
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("cluster not ready: {e}");
                // Retry interval until the meta leader is elected; bounded by the deadline.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cluster never became ready: {e}"),
        }
    }
}

/// Waits until the cluster places a stream on all its nodes: a meta leader
/// answers before every peer has joined it, and a station replicated on
/// every node is refused until then ("no suitable peers for placement").
async fn wait_for_placement(cluster: &Cluster, deadline: Instant) {
    let addresses: Vec<async_nats::ServerAddr> =
        cluster.urls().iter().map(|u| u.parse().unwrap()).collect();
    let js = async_nats::jetstream::new(async_nats::connect(addresses).await.unwrap());
    let probe = async_nats::jetstream::stream::Config {
        name: "CLUSTER_READY_PROBE".into(),
        subjects: vec!["cluster-ready-probe".into()],
        num_replicas: cluster.nodes.len(),
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    };
    loop {
        match js.create_stream(probe.clone()).await {
            Ok(_) => {
                js.delete_stream("CLUSTER_READY_PROBE").await.unwrap();
                return;
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("cluster cannot place a stream on every node yet: {e}");
                // Retry interval while peers join; bounded by the deadline.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the cluster never placed a stream on every node: {e}"),
        }
    }
}

/// One stored message, read back with plain async-nats (independently of
/// jetstation's consumer).
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub key: Option<String>,
    pub msg_id: String,
    pub payload: Vec<u8>,
    /// `Nats-Expected-Last-Sequence`, which the producer's fast batches
    /// put on each message.
    pub expected_last: Option<u64>,
    /// The atomic batch it was stored in (`Nats-Batch-Id`).
    pub batch: Option<String>,
}

/// Every message of a JetStream stream, in stream order.
pub async fn read_stream(url: &str, stream: &str) -> Vec<Stored> {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    use futures::StreamExt;
    let nats = async_nats::connect(url).await.expect("raw connect");
    let js = async_nats::jetstream::new(nats);
    // Right after a node of a cluster came back, the meta leader may still
    // be settling and a request can time out: try again for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(e) => retry_before(deadline, format!("info on {stream}: {e}")).await,
        }
    };
    let state = s.cached_info().state.clone();
    let (last, total) = (state.last_sequence, state.messages);
    let mut out = Vec::new();
    if total == 0 {
        return out;
    }
    // Read from the first sequence not read yet; a read cut short (no
    // responders or a timeout while the consumer's node is still settling
    // after a restart) starts again after the last message read.
    let mut next = 1;
    'reading: while next <= last {
        let consumer = match s
            .create_consumer(pull::Config {
                ack_policy: AckPolicy::None,
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..Default::default()
            })
            .await
        {
            Ok(consumer) => consumer,
            Err(e) => {
                retry_before(deadline, format!("a consumer on {stream}: {e}")).await;
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                retry_before(deadline, format!("messages from {stream}: {e}")).await;
                continue;
            }
        };
        while let Some(m) = messages.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    retry_before(deadline, format!("reading {stream} at {next}: {e}")).await;
                    continue 'reading;
                }
            };
            let info = m.info().unwrap();
            let sequence = info.stream_sequence;
            let headers = m.headers.clone().unwrap_or_default();
            out.push(Stored {
                sequence,
                key: headers.get("Jst-Key").map(|v| v.to_string()),
                // A fast-batch message with a generated id carries it as
                // `Jst-Id` (no deduplication record on the broker).
                msg_id: headers
                    .get("Nats-Msg-Id")
                    .or_else(|| headers.get("Jst-Id"))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                payload: m.payload.to_vec(),
                expected_last: headers
                    .get("Nats-Expected-Last-Sequence")
                    .and_then(|v| v.as_str().parse().ok()),
                batch: headers.get("Nats-Batch-Id").map(|v| v.to_string()),
            });
            next = sequence + 1;
            if sequence >= last {
                break 'reading;
            }
        }
    }
    out
}

/// After a failed attempt (`failure` says what failed): panics once
/// `deadline` has passed, else logs it and pauses before the next attempt.
async fn retry_before(deadline: Instant, failure: String) {
    assert!(
        Instant::now() < deadline,
        "{failure} (no success within 30 s)"
    );
    eprintln!("{failure}; trying again");
    // Pause between two attempts; the caller's deadline bounds them.
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// Partition stream name of a station without namespace.
pub fn partition_stream(station: &str, partition: u32) -> String {
    format!("JST__{station}__P{partition}")
}

/// Payload "<key>:<index>" lets the checks recover the send order per key.
pub fn payload(key: &str, i: usize) -> String {
    format!("{key}:{i}")
}

pub fn parse(p: &[u8]) -> (String, usize) {
    let s = std::str::from_utf8(p).unwrap();
    let (k, i) = s.rsplit_once(':').unwrap();
    (k.to_string(), i.parse().unwrap())
}

/// Checks the whole station: each key in order, no duplicate, returns the
/// stored count per key.
pub async fn check_station(
    url: &str,
    station: &str,
    partitions: u32,
) -> HashMap<String, Vec<usize>> {
    let mut per_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut ids = HashSet::new();
    for p in 0..partitions {
        for m in read_stream(url, &partition_stream(station, p)).await {
            assert!(
                ids.insert(m.msg_id.clone()),
                "duplicate stored: {}",
                m.msg_id
            );
            let (key, i) = parse(&m.payload);
            assert_eq!(m.key.as_deref(), Some(key.as_str()));
            per_key.entry(key).or_default().push(i);
        }
    }
    for (key, seen) in &per_key {
        if let Some(at) = seen.windows(2).position(|w| w[0] >= w[1]) {
            let around = &seen[at.saturating_sub(3)..(at + 5).min(seen.len())];
            panic!("key {key} out of order at position {at}: ... {around:?} ...");
        }
    }
    per_key
}
