//! Snapshot, then follow, against a real nats-server: a new group receives
//! the latest message of every key, then every later message once, in
//! order, with no gap, while producers keep writing during the bootstrap.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::*;
use jetstation::{
    Client, ConsumerOptions, ErrorKind, Message, ProducerOptions, StartPosition, StationConfig,
};

const KEYS: usize = 200;
const BEFORE: usize = 5;

/// Writes `BEFORE` versions of every key, then waits until the view holds
/// the last of them.
async fn prefill(client: &Client, station: &str) -> jetstation::Producer {
    let producer = client
        .producer(station, ProducerOptions::default())
        .await
        .unwrap();
    for i in 0..BEFORE {
        for k in 0..KEYS {
            let key = format!("k{k}");
            producer
                .enqueue(Message::new(payload(&key, i)).key(key))
                .await
                .unwrap();
        }
    }
    producer.flush().await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "every key's last version in the view",
        || async {
            let mut snapshot = client.snapshot(station).await.unwrap();
            let mut n = 0;
            while let Some(entry) = snapshot.next().await {
                let (_, i) = parse(&entry.unwrap().payload);
                n += usize::from(i == BEFORE - 1);
            }
            n == KEYS
        },
    )
    .await;
    producer
}

/// Keeps writing the next versions of every key until `stop`; returns how
/// many versions each key has in the end.
fn keep_writing(
    producer: jetstation::Producer,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut i = BEFORE;
        while !stop.load(Ordering::SeqCst) {
            for k in 0..KEYS {
                let key = format!("k{k}");
                producer
                    .enqueue(Message::new(payload(&key, i)).key(key))
                    .await
                    .unwrap();
            }
            i += 1;
            // Paces the writer: a new version of every key every 20 ms.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        producer.flush().await.unwrap();
        i
    })
}

/// Per key: the versions received, in the order they were handed out, and
/// whether each was a redelivery.
type Seen = HashMap<String, Vec<(usize, u64)>>;

fn check(seen: &Seen, versions: usize) {
    assert_eq!(seen.len(), KEYS, "every key is received");
    for (key, got) in seen {
        let (first, _) = got[0];
        assert!(
            first >= BEFORE - 1,
            "key {key} starts from its latest value at the snapshot, not the history: {first}"
        );
        // After the snapshot's value, every later version once, in order;
        // a repeat only as a redelivery.
        let mut expected = first;
        for &(i, deliveries) in &got[1..] {
            if i == expected && deliveries > 1 {
                continue;
            }
            assert_eq!(i, expected + 1, "key {key}: {got:?}");
            expected = i;
        }
        assert_eq!(expected, versions - 1, "key {key} reaches its last version");
    }
}

#[tokio::test]
async fn a_new_group_reads_the_snapshot_then_follows_with_no_gap_and_no_duplicate() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station(
            "employees",
            StationConfig::default().partitions(3).compaction(true),
        )
        .await
        .unwrap();
    let producer = prefill(&client, "employees").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(producer, stop.clone());
    // The writer runs a little before the group is created, and on during its bootstrap.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let consumer = client
        .consumer(
            "employees",
            "new-service",
            ConsumerOptions::default()
                .start(StartPosition::Snapshot)
                .concurrency(4),
        )
        .await
        .unwrap();
    let mut seen: Seen = HashMap::new();
    let mut received = 0usize;
    let started = std::time::Instant::now();
    loop {
        // Slow handling keeps the bootstrap running while writes go on.
        let next = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await;
        let Ok(Some(delivery)) = next else {
            break; // quiet for 5 s after the writers stopped
        };
        let delivery = delivery.unwrap();
        let (key, i) = parse(&delivery.payload);
        assert_eq!(delivery.key.as_deref(), Some(key.as_str()));
        seen.entry(key).or_default().push((i, delivery.deliveries));
        delivery.ack().unwrap();
        received += 1;
        if received.is_multiple_of(50) {
            // Slow handling keeps the bootstrap running while writes go on.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if started.elapsed() > Duration::from_secs(3) {
            stop.store(true, Ordering::SeqCst);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let versions = writer.await.unwrap();
    consumer.close().await.unwrap();
    check(&seen, versions);
    let written = KEYS * versions;
    let from_snapshot: usize = seen.values().map(|got| got[0].0).sum();
    eprintln!(
        "{received} received of {written} written; the snapshot stood for {from_snapshot} \
         earlier versions"
    );
    assert!(
        received < written,
        "the snapshot replaces the history before it: {received} received of {written} written"
    );
}

#[tokio::test]
async fn a_member_taking_over_mid_snapshot_loses_nothing() {
    taking_over_mid_snapshot(false, StartPosition::Snapshot).await;
}

/// The start position only places a new group: a member joining with the
/// default one while the group is still in its snapshot continues that
/// snapshot, instead of starting a second group reading the whole history.
#[tokio::test]
async fn a_member_joining_without_a_start_mid_snapshot_continues_the_snapshot() {
    taking_over_mid_snapshot(false, StartPosition::Earliest).await;
}

/// The same with exactly-once processing: the record of the snapshot lane
/// (state view sequences) and of the history (partition sequences) are kept
/// apart, so nothing of the history is taken for handled.
#[tokio::test]
async fn exactly_once_across_a_takeover_mid_snapshot_loses_nothing() {
    taking_over_mid_snapshot(true, StartPosition::Snapshot).await;
}

/// A first member reads part of the snapshot and dies; a second one, joining
/// with `second_start`, takes over while producers keep writing.
async fn taking_over_mid_snapshot(exactly_once: bool, second_start: StartPosition) {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station(
            "payroll",
            StationConfig::default().partitions(2).compaction(true),
        )
        .await
        .unwrap();
    let producer = prefill(&client, "payroll").await;
    let options = ConsumerOptions::default()
        .start(StartPosition::Snapshot)
        .concurrency(2)
        .ack_wait(Duration::from_secs(2))
        .handover_timeout(Duration::from_secs(1))
        .exactly_once(exactly_once);
    let mut seen: Seen = HashMap::new();
    {
        // The first member reads part of the snapshot, then dies without
        // closing (what it held comes back after ack_wait).
        let first = connect(&server).await;
        let member = first
            .consumer("payroll", "billing", options.clone())
            .await
            .unwrap();
        for _ in 0..60 {
            let d = member.next().await.unwrap().unwrap();
            let (key, i) = parse(&d.payload);
            seen.entry(key).or_default().push((i, d.deliveries));
            d.ack().unwrap();
        }
        let _held = member.next().await.unwrap().unwrap();
        first.close().await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(producer, stop.clone());
    let member = client
        .consumer("payroll", "billing", options.start(second_start))
        .await
        .unwrap();
    // Writes go on while the second member works through the rest of the snapshot.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let versions = writer.await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(6), member.next()).await;
        let Ok(Some(d)) = next else { break };
        let d = d.unwrap();
        let (key, i) = parse(&d.payload);
        seen.entry(key).or_default().push((i, d.deliveries));
        d.ack().unwrap();
    }
    member.close().await.unwrap();
    check(&seen, versions);
}

#[tokio::test]
async fn snapshot_start_needs_a_compacted_station() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("plain", StationConfig::default())
        .await
        .unwrap();
    let err = client
        .consumer(
            "plain",
            "g",
            ConsumerOptions::default().start(StartPosition::Snapshot),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(
        "snapshot".parse::<StartPosition>().unwrap(),
        StartPosition::Snapshot
    );
}
