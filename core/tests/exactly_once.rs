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
        let d = tokio::time::timeout(Duration::from_secs(10), a.next())
            .await
            .expect("member A receives")
            .unwrap()
            .unwrap();
        assert_eq!(d.payload.as_ref(), format!("m{i}").as_bytes());
        d.ack().unwrap();
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

/// A record written one key per message (as before records were written
/// many per write) still keeps its message from running again.
#[tokio::test]
async fn a_record_kept_one_key_per_message_is_still_honoured() {
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
    for i in 0..6 {
        producer
            .send(Message::new(format!("m{i}")).key(format!("k{i}")))
            .await
            .unwrap();
    }
    let stored = read_stream(&server.url(), &partition_stream("ledger", 0)).await;
    assert_eq!(stored.len(), 6);

    // Member A takes every message and crashes without settling any.
    let crashed = connect(&server).await;
    let a = crashed
        .consumer("ledger", "payments", options(true).concurrency(8))
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..6 {
        let d = tokio::time::timeout(Duration::from_secs(10), a.next())
            .await
            .expect("member A receives")
            .unwrap()
            .unwrap();
        held.push(d);
    }
    // m1 and m3 are in the group's record, one key each.
    let nats = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let record = js.get_key_value("jst_done_ledger_payments").await.unwrap();
    for i in [1, 3] {
        record
            .put(format!("id.{}", stored[i].msg_id), Default::default())
            .await
            .unwrap();
    }
    crashed.close().await.unwrap();
    drop(held);

    let b = client
        .consumer("ledger", "payments", options(true))
        .await
        .unwrap();
    let mut handled = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(4), b.next()).await {
        let d = d.unwrap();
        handled.push(String::from_utf8(d.payload.to_vec()).unwrap());
        d.ack().unwrap();
    }
    b.close().await.unwrap();
    handled.sort();
    assert_eq!(handled, ["m0", "m2", "m4", "m5"]);
}
