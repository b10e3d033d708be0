//! The state view of compacted stations against a real nats-server: the
//! history expires while the latest message of every key stays readable,
//! and a deleted key leaves the view.

mod common;

use std::time::Duration;

use common::*;
use jetstation::{ConsumerOptions, ErrorKind, Message, ProducerOptions, StationConfig};

async fn snapshot_of(client: &jetstation::Client, station: &str) -> Vec<(String, String)> {
    let mut snapshot = client.snapshot(station).await.unwrap();
    let mut out = Vec::new();
    while let Some(entry) = snapshot.next().await {
        let entry = entry.unwrap();
        out.push((
            entry.key,
            String::from_utf8(entry.payload.to_vec()).unwrap(),
        ));
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_history_expires_and_the_latest_value_of_every_key_stays() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let config = StationConfig::default()
        .partitions(2)
        .compaction(true)
        .max_age(Duration::from_secs(2))
        .dedup_window(Duration::from_secs(1));
    client.create_station("people", config).await.unwrap();
    let producer = client
        .producer("people", ProducerOptions::default())
        .await
        .unwrap();
    for version in 1..=3 {
        for k in 0..10 {
            producer
                .send(Message::new(format!("k{k} v{version}")).key(format!("k{k}")))
                .await
                .unwrap();
        }
    }
    let want: Vec<(String, String)> = (0..10)
        .map(|k| (format!("k{k}"), format!("k{k} v3")))
        .collect();
    // The broker fills the view from the partitions (sourcing): soon, not at once.
    wait_until(
        Duration::from_secs(10),
        "every key's latest value in the view",
        || async { snapshot_of(&client, "people").await == want },
    )
    .await;
    let latest = client.latest("people", "k4").await.unwrap().unwrap();
    assert_eq!(latest.payload.as_ref(), b"k4 v3");
    assert_eq!(latest.key, "k4");
    assert_eq!(latest.partition, jetstation::names::partition_of("k4", 2));
    assert!(
        latest.sequence > 0,
        "the sequence in its partition: {latest:?}"
    );
    assert_eq!(client.latest("people", "nobody").await.unwrap(), None);

    // The history expires (max_age 2 s); the state stays.
    wait_until(Duration::from_secs(15), "the history to expire", || async {
        client.station("people").await.unwrap().messages == 0
    })
    .await;
    assert_eq!(snapshot_of(&client, "people").await, want);
    assert_eq!(
        client
            .latest("people", "k9")
            .await
            .unwrap()
            .unwrap()
            .payload
            .as_ref(),
        b"k9 v3"
    );

    // A later value replaces the key's entry; the state never expires.
    producer
        .send(Message::new("k1 v4").key("k1"))
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the new value of k1", || async {
        client
            .latest("people", "k1")
            .await
            .unwrap()
            .is_some_and(|e| e.payload.as_ref() == b"k1 v4")
    })
    .await;
}

#[tokio::test]
async fn a_deleted_key_leaves_the_view_and_consumers_see_the_delete() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let config = StationConfig::default()
        .compaction(true)
        .max_age(Duration::from_secs(3))
        .dedup_window(Duration::from_secs(1));
    client
        .create_station("accounts", config.clone())
        .await
        .unwrap();
    // An update reaches the state view too (created if it were missing).
    client.update_station("accounts", config).await.unwrap();
    let producer = client
        .producer("accounts", ProducerOptions::default())
        .await
        .unwrap();
    producer.send(Message::new("open").key("a")).await.unwrap();
    producer.send(Message::new("open").key("b")).await.unwrap();
    producer.delete("a").await.unwrap();
    wait_until(Duration::from_secs(10), "a to leave the view", || async {
        client.latest("accounts", "a").await.unwrap().is_none()
            && client.latest("accounts", "b").await.unwrap().is_some()
    })
    .await;
    assert_eq!(
        snapshot_of(&client, "accounts").await,
        vec![("b".to_string(), "open".to_string())]
    );

    // Consumers of the history receive the tombstone, in the key's order.
    let consumer = client
        .consumer(
            "accounts",
            "audit",
            ConsumerOptions::default().concurrency(1),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = consumer.next().await.unwrap().unwrap();
        seen.push((d.key.clone().unwrap(), d.is_delete()));
        d.ack().unwrap();
    }
    consumer.close().await.unwrap();
    assert_eq!(
        seen,
        vec![
            ("a".to_string(), false),
            ("b".to_string(), false),
            ("a".to_string(), true)
        ]
    );

    // The tombstone expires with the history (its time to live is max_age):
    // the view then holds b alone.
    wait_until(
        Duration::from_secs(15),
        "the tombstone to expire",
        || async { client.station("accounts").await.unwrap().messages == 0 },
    )
    .await;
    assert_eq!(
        snapshot_of(&client, "accounts").await,
        vec![("b".to_string(), "open".to_string())]
    );
}

#[tokio::test]
async fn a_station_without_compaction_has_no_state_view() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("plain", StationConfig::default())
        .await
        .unwrap();
    let err = client.latest("plain", "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = client.snapshot("plain").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let producer = client
        .producer("plain", ProducerOptions::default())
        .await
        .unwrap();
    let err = producer.delete("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = client.latest("missing", "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn a_tombstone_lives_for_the_grace_period_while_the_history_stays() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let config = StationConfig::default()
        .compaction(true)
        .max_age(Duration::from_secs(3600))
        .delete_grace(Duration::from_secs(2))
        .dedup_window(Duration::from_secs(1));
    client
        .create_station("contracts", config.clone())
        .await
        .unwrap();
    let read = client.station("contracts").await.unwrap();
    assert_eq!(read.config.delete_grace, Some(Duration::from_secs(2)));
    let producer = client
        .producer("contracts", ProducerOptions::default())
        .await
        .unwrap();
    producer
        .send(Message::new("signed").key("c1"))
        .await
        .unwrap();
    producer
        .send(Message::new("signed").key("c2"))
        .await
        .unwrap();
    producer.delete("c1").await.unwrap();
    // The tombstone is in the history, then gone after 2 s; the history
    // (max_age one hour) keeps the rest.
    assert_eq!(client.station("contracts").await.unwrap().messages, 3);
    wait_until(
        Duration::from_secs(15),
        "the tombstone to expire",
        || async { client.station("contracts").await.unwrap().messages == 2 },
    )
    .await;
    assert_eq!(client.latest("contracts", "c1").await.unwrap(), None);
    assert!(client.latest("contracts", "c2").await.unwrap().is_some());

    // A grace period needs a state view, and lasts whole seconds.
    for (bad, what) in [
        (
            StationConfig::default().delete_grace(Duration::from_secs(5)),
            "without compaction",
        ),
        (
            StationConfig::default()
                .compaction(true)
                .delete_grace(Duration::from_millis(300)),
            "under a second",
        ),
    ] {
        let err = client.create_station("bad-grace", bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
    }
}
