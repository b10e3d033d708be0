//! Exactly-once processing against a real nats-server: a message handled
//! by a member that then crashed, before its commit, is not handled again
//! by the member that takes over.

mod common;

use std::time::Duration;

use common::*;
use jetstation::{ConsumerOptions, Message, ProducerOptions, StationConfig};

fn options(exactly_once: bool) -> ConsumerOptions {
    ConsumerOptions::default()
        .concurrency(4)
        .ack_wait(Duration::from_secs(1))
        .handover_timeout(Duration::from_secs(1))
        .exactly_once(exactly_once)
}

/// Member A holds message 0 (so nothing after it can be committed), handles
/// messages 1 to 10, then crashes. Returns the payloads member B handles.
async fn crash_after_handling(exactly_once: bool, group: &str) -> Vec<(String, u64)> {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("ledger", StationConfig::default())
        .await
        .unwrap();
    let producer = client
        .producer("ledger", ProducerOptions::default())
        .await
        .unwrap();
    for i in 0..20 {
        producer
            .send(Message::new(format!("m{i}")).key(format!("k{i}")))
            .await
            .unwrap();
    }
    let crashed = connect(&server).await;
    let a = crashed
        .consumer("ledger", group, options(exactly_once))
        .await
        .unwrap();
    let held = a.next().await.unwrap().unwrap();
    assert_eq!(held.payload.as_ref(), b"m0");
    for i in 1..=10 {
        ack_next(&a, i).await;
    }
    // The acknowledgements are recorded (not committed: m0 is unfinished).
    tokio::time::sleep(Duration::from_millis(500)).await; // the records' writes land; no API shows a record
    crashed.close().await.unwrap();
    drop(held);

    let b = client
        .consumer("ledger", group, options(exactly_once))
        .await
        .unwrap();
    let mut handled = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(4), b.next()).await {
        let d = d.unwrap();
        handled.push((String::from_utf8(d.payload.to_vec()).unwrap(), d.deliveries));
        d.ack().unwrap();
    }
    b.close().await.unwrap();
    handled.sort_by_key(|(p, _)| p[1..].parse::<u32>().unwrap());
    handled
}

#[tokio::test]
async fn a_handled_message_is_not_handled_again_after_a_crash() {
    let handled = crash_after_handling(true, "payments").await;
    let payloads: Vec<&str> = handled.iter().map(|(p, _)| p.as_str()).collect();
    let mut want = vec!["m0".to_string()];
    want.extend((11..20).map(|i| format!("m{i}")));
    assert_eq!(payloads, want, "m1..m10 were handled before the crash");
    assert!(handled[0].1 > 1, "m0 comes again as a redelivery");
}

#[tokio::test]
async fn without_the_option_the_same_crash_handles_them_again() {
    // The control: at-least-once redelivers what was handled, uncommitted.
    let handled = crash_after_handling(false, "payments").await;
    assert_eq!(handled.len(), 20, "{handled:?}");
}

/// The latest value of partition 0's record, once it says every message up
/// to `floor` is finished (the record's layout is internal to the core; this
/// test reads it to see what a member wrote).
async fn record_reaching(kv: &async_nats::jetstream::kv::Store, floor: u64) -> String {
    use futures::StreamExt;
    let floor_of = |text: &str| text.split_whitespace().next()?.parse::<u64>().ok();
    // Every write of the value, from the latest one on, until one reaches `floor`.
    let mut writes = kv.watch_with_history("p.0").await.unwrap();
    let mut last = String::new();
    let reached = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(entry) = writes.next().await {
            last = String::from_utf8(entry.unwrap().value.to_vec()).unwrap();
            if floor_of(&last).is_some_and(|f| f >= floor) {
                return;
            }
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the record reaches {floor} within 15 s: {last:?}"
    );
    last
}

/// The member's next message within 10 s: it must be `m<i>`; acknowledged.
async fn ack_next(member: &jetstation::Consumer, i: u32) {
    let d = tokio::time::timeout(Duration::from_secs(10), member.next())
        .await
        .expect("the member receives")
        .unwrap()
        .unwrap();
    assert_eq!(d.payload.as_ref(), format!("m{i}").as_bytes());
    d.ack().unwrap();
}

#[tokio::test]
async fn a_record_written_by_another_member_in_between_is_merged_not_overwritten() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("ledger", StationConfig::default().partitions(1))
        .await
        .unwrap();
    let producer = client
        .producer("ledger", ProducerOptions::default())
        .await
        .unwrap();
    let member = client
        .consumer("ledger", "payments", options(true))
        .await
        .unwrap();
    let handle = async |from: u32, to: u32| {
        for i in from..to {
            producer
                .send(Message::new(format!("m{i}")).key("k"))
                .await
                .unwrap();
        }
        for i in from..to {
            ack_next(&member, i).await;
        }
    };
    handle(0, 5).await;
    let nats = async_nats::connect(server.url()).await.unwrap();
    let kv = async_nats::jetstream::new(nats)
        .get_key_value("jst_done_ledger_payments")
        .await
        .unwrap();
    assert_eq!(record_reaching(&kv, 5).await, "5");

    // A member that lost the partition but still writes: it records a
    // message the current member does not know about.
    kv.put("p.0", "0 1000".into()).await.unwrap();
    handle(5, 10).await;

    let text = record_reaching(&kv, 10).await;
    assert_eq!(text, "10 1000", "both members' messages are in the record");
    member.close().await.unwrap();
}
