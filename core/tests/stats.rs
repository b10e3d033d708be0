//! Stats against real nats-servers: a station's partitions and placement,
//! and a group's members, owners and lag.

mod common;

use std::time::Duration;

use common::*;
use jetstation::{ConsumerOptions, Message, ProducerOptions, StationConfig};

#[tokio::test]
async fn a_groups_lag_falls_as_its_member_commits() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("hires", StationConfig::default().partitions(2))
        .await
        .unwrap();
    let producer = client
        .producer("hires", ProducerOptions::default())
        .await
        .unwrap();
    for i in 0..10 {
        producer
            .send(Message::new(format!("h{i}")).key(format!("k{i}")))
            .await
            .unwrap();
    }
    let stats = client.station_stats("hires").await.unwrap();
    assert_eq!(stats.partitions.len(), 2);
    let stored: u64 = stats.partitions.iter().map(|p| p.messages).sum();
    assert_eq!(stored, 10);
    for p in &stats.partitions {
        assert_eq!(p.last_sequence, p.messages, "{p:?}");
        assert!(p.bytes > 0 && p.last_time.is_some(), "{p:?}");
        assert_eq!(p.placement, None, "a single server has no placement");
    }
    assert_eq!((stats.dead_letters, stats.state_keys), (0, None));
    assert!(client.groups("hires").await.unwrap().is_empty());

    let consumer = client
        .consumer("hires", "onboarding", ConsumerOptions::default())
        .await
        .unwrap();
    for _ in 0..4 {
        consumer.next().await.unwrap().unwrap().ack().unwrap();
    }
    wait_until(Duration::from_secs(10), "a lag of 6", || async {
        let groups = client.groups("hires").await.unwrap();
        groups.len() == 1 && groups[0].partitions.iter().map(|p| p.lag).sum::<u64>() == 6
    })
    .await;
    let group = &client.groups("hires").await.unwrap()[0];
    assert_eq!(group.group, "onboarding");
    assert_eq!(group.members.len(), 1, "{group:?}");
    assert_eq!(group.members[0].partitions, vec![0, 1]);
    for p in &group.partitions {
        assert_eq!(p.reading, "history");
        assert_eq!(p.owner.as_deref(), Some(group.members[0].member.as_str()));
    }
    // What is not committed is either waiting here or not delivered yet.
    let open: u64 = group
        .partitions
        .iter()
        .map(|p| p.pending + p.unacknowledged)
        .sum();
    assert_eq!(open, 6, "{group:?}");
    consumer.close().await.unwrap();
    wait_until(Duration::from_secs(10), "no live member", || async {
        client.groups("hires").await.unwrap()[0].members.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_replicated_partition_shows_its_leader_and_current_replicas() {
    let cluster = Cluster::start(3);
    let client = connect_cluster(&cluster).await;
    client
        .create_station(
            "ledger",
            StationConfig::default().replicas(3).compaction(true),
        )
        .await
        .unwrap();
    let producer = client
        .producer("ledger", ProducerOptions::default())
        .await
        .unwrap();
    producer.send(Message::new("open").key("a")).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "a leader and two current replicas",
        || async {
            let stats = client.station_stats("ledger").await.unwrap();
            let placement = stats.partitions[0].placement.clone().unwrap();
            placement.leader.is_some()
                && placement.replicas.len() == 2
                && placement.replicas.iter().all(|r| r.current && !r.offline)
                && stats.state_keys == Some(1)
        },
    )
    .await;
}
