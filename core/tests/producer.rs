//! Producer behaviour against a real nats-server.

mod common;

use std::{collections::HashSet, time::Duration};

use common::*;
use jetstation::{
    BOOKKEEPING_BYTES, ErrorKind, Message, ProducerOptions, StationConfig, Storage, TryEnqueued,
    WhenFull,
};

/// Enqueues `per_key` rounds over `keys` keys ("emp-<k>"), pausing between
/// rounds, then awaits every send: each must succeed. Returns how many did.
async fn send_keyed(
    producer: jetstation::Producer,
    keys: usize,
    per_key: usize,
    pause: Duration,
) -> usize {
    let mut handles = Vec::new();
    for i in 0..per_key {
        enqueue_round(&producer, keys, i, &mut handles).await;
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            // Spread the sends over time, so failures land in the middle of them.
            tokio::time::sleep(pause).await;
        }
    }
    let mut ok = 0;
    for h in handles {
        h.await
            .expect("every send resolves, and succeeds once the broker is back");
        ok += 1;
    }
    ok
}

/// Enqueues round `i` over `keys` keys ("emp-<k>"), one message per key.
async fn enqueue_round(
    producer: &jetstation::Producer,
    keys: usize,
    i: usize,
    handles: &mut Vec<jetstation::SendHandle>,
) {
    for k in 0..keys {
        let key = format!("emp-{k}");
        let message = Message::new(payload(&key, i)).key(key);
        handles.push(producer.enqueue(message).await.unwrap());
    }
}

/// Every one of `keys` keys of `station` holds rounds `0..per_key`, each
/// once and in order (read back independently of the producer).
async fn assert_keys_in_order(
    url: &str,
    station: &str,
    partitions: u32,
    keys: usize,
    per_key: usize,
) {
    let stored = check_station(url, station, partitions).await;
    assert_eq!(stored.len(), keys);
    for (key, seen) in stored {
        assert_eq!(
            seen,
            (0..per_key).collect::<Vec<_>>(),
            "key {key}: a gap, a loss or a copy"
        );
    }
}

/// A new station of `partitions` and a producer that waits out a broker
/// that is down for a while (a delivery timeout of 60 s).
async fn patient_producer(
    client: &jetstation::Client,
    station: &str,
    partitions: u32,
) -> jetstation::Producer {
    client
        .create_station(station, StationConfig::default().partitions(partitions))
        .await
        .unwrap();
    client
        .producer(
            station,
            ProducerOptions::default().delivery_timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn send_returns_a_receipt_and_duplicates_are_recognised() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("hr", StationConfig::default().partitions(2))
        .await
        .unwrap();
    let producer = client
        .producer("hr", ProducerOptions::default())
        .await
        .unwrap();
    let r1 = producer
        .send(
            Message::new("hello")
                .key("emp-1")
                .header("source", "hr")
                .msg_id("change-1"),
        )
        .await
        .unwrap();
    assert_eq!(r1.station, "hr");
    assert_eq!(r1.sequence, 1);
    assert!(!r1.duplicate);
    assert_eq!(r1.msg_id, "change-1");
    let again = producer
        .send(Message::new("hello").key("emp-1").msg_id("change-1"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.sequence, r1.sequence);
    assert_eq!(again.partition, r1.partition);
    assert_eq!(client.station("hr").await.unwrap().messages, 1);
    // Without a key, an explicit id still lands where its retry will: dedup
    // is per partition.
    let first = producer
        .send(Message::new("no key").msg_id("keyless-1"))
        .await
        .unwrap();
    for _ in 0..4 {
        let retry = producer
            .send(Message::new("no key").msg_id("keyless-1"))
            .await
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(
            (retry.partition, retry.sequence),
            (first.partition, first.sequence)
        );
    }
    producer.close().await.unwrap();
    let err = producer.send(Message::new("late")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

/// The guard the producer relies on: a message carrying
/// `Nats-Expected-Last-Sequence` is stored only when the stream ends at that
/// sequence, and is refused with a "wrong last sequence" error otherwise.
/// A known id is still answered as a duplicate (resends of stored messages
/// are sent without the guard, see the producer module).
#[tokio::test]
async fn server_refuses_a_message_whose_expected_last_sequence_is_stale() {
    use async_nats::{HeaderMap, jetstream::message::PublishMessage};
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("guard", StationConfig::default())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let subject = "jst._.guard.0.m";
    let publish = |id: &str, expected: Option<u64>| {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", id);
        if let Some(e) = expected {
            h.insert("Nats-Expected-Last-Sequence", e.to_string().as_str());
        }
        PublishMessage::build()
            .payload(id.to_string().into())
            .headers(h)
    };
    let a = js
        .send_publish(subject, publish("a", None))
        .await
        .unwrap()
        .await
        .unwrap();
    let b = js
        .send_publish(subject, publish("b", Some(a.sequence)))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(b.sequence, a.sequence + 1);
    // A known id without the guard: a duplicate with its first sequence.
    let dup = js
        .send_publish(subject, publish("a", None))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.sequence, a.sequence);
    // A stale guard with a new id: refused, nothing stored.
    let err = js
        .send_publish(subject, publish("c", Some(a.sequence)))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::jetstream::context::PublishErrorKind::WrongLastSequence
    );
    assert_eq!(client.station("guard").await.unwrap().messages, 2);
}

#[tokio::test]
async fn hundred_thousand_messages_over_a_thousand_keys_keep_order() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let partitions = 4;
    client
        .create_station("bulk", StationConfig::default().partitions(partitions))
        .await
        .unwrap();
    let producer = client
        .producer("bulk", ProducerOptions::default())
        .await
        .unwrap();
    let keys = 1000;
    let per_key = 100;
    let mut handles = Vec::with_capacity(keys * per_key);
    for i in 0..per_key {
        for k in 0..keys {
            let key = format!("emp-{k}");
            let h = producer
                .enqueue(Message::new(payload(&key, i)).key(key))
                .await
                .unwrap();
            handles.push(h);
        }
    }
    producer.flush().await.unwrap();
    let mut sequences = HashSet::new();
    for h in handles {
        let r = h.await.unwrap();
        assert!(!r.duplicate);
        assert!(sequences.insert((r.partition, r.sequence)));
    }
    assert_keys_in_order(&server.url(), "bulk", partitions, keys, per_key).await;
}

/// Kills the server (a crash: every connection drops, unconfirmed publishes
/// are lost) and restarts it on the same store, twice, while 30,000 keyed
/// messages are being sent.
#[tokio::test]
async fn order_and_no_duplicates_across_server_crashes_and_restarts() {
    init_tracing();
    let mut server = NatsServer::start();
    let client = connect(&server).await;
    let partitions = 3;
    let producer = patient_producer(&client, "crashy", partitions).await;
    let keys = 300;
    let per_key = 100;
    let sender = tokio::spawn(send_keyed(producer.clone(), keys, per_key, Duration::ZERO));
    // Crash while sending, once hard (SIGKILL) and once gracefully.
    wait_until(Duration::from_secs(30), "first messages stored", || {
        let client = client.clone();
        async move {
            client
                .station("crashy")
                .await
                .map(|s| s.messages > 3000)
                .unwrap_or(false)
        }
    })
    .await;
    server.kill();
    // Keep the server down for a moment: in-flight publishes are lost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.start_again();
    wait_until(Duration::from_secs(30), "more messages stored", || {
        let client = client.clone();
        async move {
            client
                .station("crashy")
                .await
                .map(|s| s.messages > 15000)
                .unwrap_or(false)
        }
    })
    .await;
    server.restart();
    let ok = tokio::time::timeout(Duration::from_secs(120), sender)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok, keys * per_key);
    assert_keys_in_order(&server.url(), "crashy", partitions, keys, per_key).await;
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let server = NatsServer::builder().config("max_payload: 65536").start();
    let client = connect(&server).await;
    let err = client
        .producer("nowhere", ProducerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("create_station"), "{err}");

    client
        .create_station("strict", StationConfig::default())
        .await
        .unwrap();
    let producer = client
        .producer("strict", ProducerOptions::default())
        .await
        .unwrap();
    let err = producer
        .send(Message::new(vec![0u8; 70_000]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    assert!(err.message().contains("65536"), "{err}");
    let err = producer
        .send(Message::new("x").header("Nats-Msg-Id", "sneaky"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("reserved"), "{err}");
    // Header names are visible ASCII on the wire: anything else is refused
    // with a typed error, never a panic inside the client.
    for name in ["Gehalt-\u{fc}", "tab\tname", ""] {
        let err = producer
            .send(Message::new("x").header(name, "v"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name:?}");
        assert!(err.message().contains("malformed"), "{err}");
    }
    let err = producer
        .send(Message::new("x").key("k".repeat(300)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // Ids travel as header values: a line break would end the header and
    // start another.
    let err = producer
        .send(Message::new("x").msg_id("a\r\nNats-Expected-Stream: other"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("line break"), "{err}");
    // So does a key (its header is `Jst-Key`): an employee name used as a
    // key must not be able to add a deduplication id of its own.
    for key in [
        "Ada\r\nNats-Msg-Id: payslip-1",
        "two\nlines",
        "carriage\rreturn",
    ] {
        let err = producer.send(Message::new("x").key(key)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{key:?}");
        assert!(err.message().contains("line break"), "{err}");
    }
    for id in ["", "two\nlines"] {
        let options = ProducerOptions {
            producer_id: Some(id.into()),
            ..ProducerOptions::default()
        };
        let err = client.producer("strict", options).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{id:?}");
    }
    producer.send(Message::new("fine")).await.unwrap();
    assert_eq!(client.station("strict").await.unwrap().messages, 1);

    // A batch is checked whole before any of it is queued: one refused
    // message (in the middle, so messages before and after it are fine)
    // sends nothing, and every result names it with its own kind.
    let refusals = [
        (
            Message::new("x").key("Ada\r\nNats-Msg-Id: payslip-1"),
            ErrorKind::InvalidArgument,
        ),
        (Message::new(vec![0u8; 70_000]), ErrorKind::PayloadTooLarge),
        (
            Message::new("x").header("Nats-Msg-Id", "sneaky"),
            ErrorKind::InvalidArgument,
        ),
    ];
    for (bad, kind) in refusals {
        let batch = vec![
            Message::new("first").key("k"),
            bad,
            Message::new("last").key("k"),
        ];
        let results = producer.send_batch(batch).await;
        assert_eq!(results.len(), 3);
        for result in results {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
            assert!(err.message().contains("message 1 of the batch"), "{err}");
            assert!(err.message().contains("nothing of it was queued"), "{err}");
        }
    }
    producer.flush().await.unwrap();
    assert_eq!(client.station("strict").await.unwrap().messages, 1);
    let receipts = producer
        .send_batch(vec![Message::new("a").key("k"), Message::new("b").key("k")])
        .await;
    let sequences: Vec<u64> = receipts.into_iter().map(|r| r.unwrap().sequence).collect();
    assert!(sequences[0] < sequences[1], "{sequences:?}");
    assert_eq!(client.station("strict").await.unwrap().messages, 3);
}

/// Server stopped, 1 MiB buffer: sends wait (or fail fast), memory stays
/// bounded by the buffer, and everything is stored once the server is back.
#[tokio::test]
async fn backpressure_bounds_the_buffer_while_the_server_is_down() {
    let mut server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("bp", StationConfig::default().storage(Storage::File))
        .await
        .unwrap();
    let buffer = 1 << 20;
    let waiting = client
        .producer(
            "bp",
            ProducerOptions::default()
                .buffer_bytes(buffer)
                .delivery_timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let failing = client
        .producer(
            "bp",
            ProducerOptions::default()
                .buffer_bytes(buffer)
                .when_full(WhenFull::FailFast),
        )
        .await
        .unwrap();
    server.stop();

    // Fail-fast: about 1 MiB is accepted, then BufferFull.
    let chunk = vec![7u8; 10_000];
    let mut accepted = Vec::new();
    let err = loop {
        match failing.enqueue(Message::new(chunk.clone()).key("ff")).await {
            Ok(h) => accepted.push(h),
            Err(e) => break e,
        }
        assert!(accepted.len() < 200, "the buffer never filled");
    };
    assert_eq!(err.kind(), ErrorKind::BufferFull);
    assert!(
        accepted.len() >= 90 && accepted.len() <= 105,
        "{}",
        accepted.len()
    );

    // Wait mode: a sender blocks once the buffer is full.
    let sender = {
        let waiting = waiting.clone();
        let chunk = chunk.clone();
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in 0..300 {
                let m = Message::new(chunk.clone()).key(format!("k{}", i % 7));
                handles.push(waiting.enqueue(m).await.unwrap());
            }
            handles
        })
    };
    // The sender must still be blocked after a while: absence cannot be awaited.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sender.is_finished(), "a full buffer must make send wait");
    assert!(
        waiting.outstanding() <= buffer / chunk.len() + 1,
        "{}",
        waiting.outstanding()
    );

    server.start_again();
    let handles = tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap()
        .unwrap();
    for h in handles {
        h.await.unwrap();
    }
    for h in accepted {
        h.await.unwrap();
    }
    waiting.flush().await.unwrap();
    let stored = client.station("bp").await.unwrap().messages;
    assert!(stored >= 300 + 90, "{stored}");
}

/// Cuts every client connection (through a relay) several times while
/// 30,000 keyed messages are sent: every send resolves, nothing is stored
/// twice, no key is out of order, no gap.
#[tokio::test]
async fn order_and_no_duplicates_while_connections_are_cut() {
    let server = NatsServer::start();
    let relay = jetstation_harness::Relay::start(server.port());
    init_tracing();
    let client = jetstation::Client::connect(
        jetstation::ConnectOptions::new(relay.url())
            .request_timeout(Duration::from_secs(2))
            .max_reconnect_delay(Duration::from_millis(250)),
    )
    .await
    .unwrap();
    let partitions = 3;
    client
        .create_station("cut", StationConfig::default().partitions(partitions))
        .await
        .unwrap();
    let producer = client
        .producer("cut", ProducerOptions::default())
        .await
        .unwrap();
    let (keys, per_key) = (300, 100);
    let sender = tokio::spawn(send_keyed(
        producer.clone(),
        keys,
        per_key,
        Duration::from_millis(15),
    ));
    for _ in 0..4 {
        // Cut cadence: four cuts spread over the sending.
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay.cut();
    }
    let ok = tokio::time::timeout(Duration::from_secs(120), sender)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok, keys * per_key);
    assert_keys_in_order(&server.url(), "cut", partitions, keys, per_key).await;
}

/// The broker stops (SIGSTOP) for longer than a fast batch waits for its
/// answer, three times, while 30,000 keyed messages are being sent: the
/// batches on their way are neither answered nor lost, and reach the broker
/// when it resumes, after the producer gave up waiting for them. Their
/// messages carry no deduplication id, so the producer reads what they
/// stored before sending anything again: nothing is stored twice, lost or
/// reordered, and every receipt names where its message is.
#[tokio::test]
async fn fast_batches_the_broker_answers_too_late_are_not_sent_twice() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server).await;
    let partitions = 3;
    let producer = patient_producer(&client, "frozen", partitions).await;
    let (keys, per_key) = (300, 100);
    let mut handles = Vec::new();
    for i in 0..per_key {
        enqueue_round(&producer, keys, i, &mut handles).await;
        if i % 25 == 12 {
            server.freeze();
            // The fault's length, not a wait for something: the broker must
            // stay stopped longer than a fast batch waits for its answer
            // (2 s), so the batches on their way go unanswered.
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            server.thaw();
        }
    }
    let mut receipts = Vec::new();
    for h in handles {
        let r = tokio::time::timeout(Duration::from_secs(90), h)
            .await
            .expect("resolved within 90 s")
            .expect("stored once the broker resumed");
        receipts.push(r);
    }
    assert_keys_in_order(&server.url(), "frozen", partitions, keys, per_key).await;
    let mut by_place = std::collections::HashMap::new();
    for p in 0..partitions {
        for m in read_stream(&server.url(), &partition_stream("frozen", p)).await {
            by_place.insert((p, m.sequence), m.msg_id);
        }
    }
    for r in &receipts {
        assert_eq!(
            by_place.get(&(r.partition, r.sequence)),
            Some(&r.msg_id),
            "receipt of {} names partition {} sequence {}",
            r.msg_id,
            r.partition,
            r.sequence
        );
    }
}

/// Two producers (two connections) write the same keys' partition at the
/// same time: the last-message guard refuses one of them whenever the other
/// lands in between, and each is resent at once; every key of each producer
/// stays in order, nothing is lost or stored twice.
#[tokio::test]
async fn concurrent_producers_on_one_partition_keep_their_order() {
    let server = NatsServer::start();
    let a = connect(&server).await;
    let b = connect(&server).await;
    a.create_station("busy", StationConfig::default())
        .await
        .unwrap();
    let run = |client: jetstation::Client, prefix: &'static str| async move {
        let producer = client
            .producer("busy", ProducerOptions::default())
            .await
            .unwrap();
        let mut handles = Vec::new();
        for i in 0..50 {
            for k in 0..100 {
                let key = format!("{prefix}{k}");
                handles.push(
                    producer
                        .enqueue(Message::new(payload(&key, i)).key(key))
                        .await
                        .unwrap(),
                );
            }
        }
        for h in handles {
            h.await.unwrap();
        }
    };
    tokio::join!(run(a, "a"), run(b, "b"));
    assert_keys_in_order(&server.url(), "busy", 1, 200, 50).await;
}

/// Where the server has fast-ingest batches, a unit leaves as one, each
/// message expecting the partition to end right before it; a receipt names
/// exactly where its message is stored, also while another client writes
/// the same partition in between (its messages make fast batches stop, and
/// the atomic path takes over for a while).
#[tokio::test]
async fn fast_batches_store_each_message_where_its_receipt_says() {
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
    let stream = partition_stream("ledger", 0);
    let raw = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(raw);
    let mut receipts = Vec::new();
    for phase in ["alone", "shared"] {
        let mut handles = Vec::new();
        for i in 0..3_000 {
            let key = format!("emp-{}", i % 10);
            let message = Message::new(payload(&key, i)).key(key);
            handles.push(producer.enqueue(message).await.unwrap());
            if phase == "shared" && i % 50 == 0 {
                // Another writer's message lands between the producer's.
                js.publish("jst._.ledger.0.m", "x".into()).await.unwrap();
            }
        }
        for h in handles {
            receipts.push(h.await.unwrap());
        }
    }
    let stored = read_stream(&server.url(), &stream).await;
    let by_sequence: std::collections::HashMap<u64, &Stored> =
        stored.iter().map(|m| (m.sequence, m)).collect();
    for r in &receipts {
        assert!(!r.duplicate);
        let m = by_sequence
            .get(&r.sequence)
            .unwrap_or_else(|| panic!("nothing stored at {}", r.sequence));
        assert_eq!(m.msg_id, r.msg_id, "receipt sequence {}", r.sequence);
    }
    let fast = stored.iter().filter(|m| m.expected_last.is_some()).count();
    assert!(
        stored
            .iter()
            .filter_map(|m| m.expected_last.map(|e| (e, m.sequence)))
            .all(|(e, s)| e + 1 == s),
        "a fast-batch message stored anywhere but right after what it expected"
    );
    // Alone, every unit after the first goes as a fast batch (a 2.12
    // server takes none: atomic batches instead).
    assert!(
        if takes_fast_batches(&client.server_version()) {
            fast > 2_000
        } else {
            fast == 0
        },
        "only {fast} of 6,000 messages went in fast batches"
    );
    let keyed: Vec<_> = stored.iter().filter(|m| m.key.is_some()).collect();
    assert_eq!(keyed.len(), 6_000);
    if fast == 0 {
        // A 2.12 server (checked above): the rest is about the fast
        // batches' guard.
        return;
    }
    // The guard is the producer's: a consumer does not see it.
    let guarded = stored
        .iter()
        .find(|m| m.expected_last.is_some())
        .unwrap()
        .sequence;
    let consumer = client
        .consumer(
            "ledger",
            "readers",
            jetstation::ConsumerOptions::default()
                .start(jetstation::StartPosition::Sequence(guarded)),
        )
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(d.sequence, guarded);
    assert!(d.header("Jst-Key").is_some());
    // Its generated id went as `Jst-Id` (no deduplication record); the
    // delivery shows it as every other message's id.
    let id = stored
        .iter()
        .find(|m| m.sequence == guarded)
        .unwrap()
        .msg_id
        .clone();
    assert_eq!(d.msg_id.as_deref(), Some(id.as_str()));
    assert_eq!(d.header("Nats-Msg-Id"), Some(id.as_str()));
    assert_eq!(d.header("Jst-Id"), None, "{:?}", d.headers);
    assert_eq!(
        d.header("Nats-Expected-Last-Sequence"),
        None,
        "{:?}",
        d.headers
    );
    d.ack().unwrap();
    // Not closed: close waits for the deliveries queued for the application
    // (which this test does not take) up to ack_wait.
    drop(consumer);
}

/// The buffer counts what a queued message holds beyond its payload: its
/// headers, subject and the producer's bookkeeping of it, so `buffer_bytes`
/// bounds memory even for tiny messages.
#[tokio::test]
async fn the_buffer_counts_each_messages_bookkeeping() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("accounts", StationConfig::default())
        .await
        .unwrap();
    let producer = client
        .producer("accounts", ProducerOptions::default())
        .await
        .unwrap();
    assert_eq!(producer.buffered_bytes(), 0);
    // Frozen, the broker confirms nothing: every message stays counted.
    server.freeze();
    let mut handles = Vec::new();
    let grew = |handles: &mut Vec<_>, message: Message| {
        let before = producer.buffered_bytes();
        let TryEnqueued::Queued(handle) = producer.try_enqueue(message).unwrap() else {
            panic!("no room in the buffer");
        };
        handles.push(handle);
        producer.buffered_bytes() - before
    };
    let mut empty = Vec::new();
    let mut kilobyte = Vec::new();
    for i in 0..50 {
        empty.push(grew(&mut handles, Message::new(Vec::new()).key("k")));
        kilobyte.push(grew(
            &mut handles,
            Message::new(vec![b'x'; 1000]).key(format!("k{}", i % 2)),
        ));
    }
    for (e, k) in empty.iter().zip(&kilobyte) {
        // An empty message still costs its bookkeeping, headers and subject.
        assert!(
            *e >= BOOKKEEPING_BYTES + 12 && *e <= BOOKKEEPING_BYTES + 400,
            "an empty message counted {e} bytes"
        );
        // The payload counts byte for byte (the ids and keys differ by a few).
        assert!(
            k.abs_diff(e + 1000) <= 8,
            "a 1000-byte message counted {k}, an empty one {e}"
        );
    }
    let total: usize = empty.iter().chain(&kilobyte).sum();
    assert_eq!(producer.buffered_bytes(), total);
    assert_eq!(producer.outstanding(), 100);

    server.thaw();
    for h in handles {
        tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .expect("confirmed after the broker resumed")
            .unwrap();
    }
    producer.flush().await.unwrap();
    assert_eq!(
        producer.buffered_bytes(),
        0,
        "confirmed messages free their bytes"
    );
}

/// `try_enqueue` never waits: with the buffer full it queues nothing and
/// hands the message back unchanged, and `enqueue` then sends that message
/// once room frees up, in the key's order.
#[tokio::test]
async fn try_enqueue_hands_the_message_back_when_it_would_wait() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("payroll", StationConfig::default())
        .await
        .unwrap();
    let options = ProducerOptions {
        buffer_bytes: 4096,
        ..Default::default()
    };
    let producer = client.producer("payroll", options).await.unwrap();
    // Frozen, the broker confirms nothing: the buffer stays full.
    server.freeze();
    let message = |i: usize| {
        Message::new(vec![b'x'; 1000])
            .key("employee-7")
            .header("source", format!("run-{i}"))
            .msg_id(format!("payslip-{i}"))
    };
    let mut handles = Vec::new();
    let mut i = 0;
    let back = loop {
        match producer.try_enqueue(message(i)).unwrap() {
            TryEnqueued::Queued(handle) => handles.push(handle),
            TryEnqueued::WouldWait(m) => break m,
        }
        i += 1;
        assert!(i < 10, "a 4 KiB buffer took {i} messages of 1 KB");
    };
    assert!(!handles.is_empty(), "the empty buffer took nothing");
    let outstanding = producer.outstanding();
    assert_eq!(outstanding, handles.len(), "the refused message was queued");
    let expected = message(i);
    assert_eq!(back.payload, expected.payload);
    assert_eq!(back.key, expected.key);
    assert_eq!(back.headers, expected.headers);
    assert_eq!(back.msg_id, expected.msg_id);

    server.thaw();
    let last = producer.enqueue(back).await.unwrap();
    handles.push(last);
    let mut sequences = Vec::new();
    for h in handles {
        let receipt = tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .expect("confirmed after the broker resumed")
            .unwrap();
        sequences.push((receipt.sequence, receipt.msg_id));
    }
    let expected: Vec<_> = (0..=i)
        .map(|n| (n as u64 + 1, format!("payslip-{n}")))
        .collect();
    assert_eq!(sequences, expected, "stored once each, in the order sent");
}

/// A unit longer than the server's largest atomic batch (1,000 messages)
/// goes as several atomic batches, none refused for its size: on a stream
/// that takes no fast batches, every message of a 3,000-message unit but
/// the first (sent alone) is stored from an atomic batch of at most 1,000,
/// in order, where its receipt says.
#[tokio::test]
async fn a_unit_longer_than_an_atomic_batch_goes_as_several() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("payroll", StationConfig::default())
        .await
        .unwrap();
    let stream = partition_stream("payroll", 0);
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut config = js
        .get_stream(&stream)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    config.allow_batch_publish = false;
    js.update_stream(config).await.unwrap();
    let producer = client
        .producer(
            "payroll",
            ProducerOptions::default()
                .max_batch_messages(3_000)
                .max_in_flight(3_000)
                // Long enough for the whole round to queue into one unit.
                .linger(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..100 {
        enqueue_round(&producer, 30, i, &mut handles).await;
    }
    let mut receipts = Vec::new();
    for h in handles {
        receipts.push(
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("confirmed within 30 s")
                .unwrap(),
        );
    }
    assert_keys_in_order(&server.url(), "payroll", 1, 30, 100).await;
    let stored = read_stream(&server.url(), &stream).await;
    for (r, m) in receipts.iter().zip(&stored) {
        assert_eq!((r.sequence, &r.msg_id), (m.sequence, &m.msg_id));
    }
    // The first message goes alone: its acknowledgement tells where the
    // partition ends, for a fast batch, which this stream refuses. A 2.12
    // server takes no fast batches: every unit is an atomic batch.
    let first_alone = takes_fast_batches(&client.server_version());
    if first_alone {
        assert_eq!(stored[0].batch, None);
    }
    let mut sizes = std::collections::BTreeMap::new();
    for m in &stored[usize::from(first_alone)..] {
        let batch = m.batch.clone().unwrap_or_else(|| {
            panic!("message {} was not stored from an atomic batch", m.sequence)
        });
        *sizes.entry(batch).or_insert(0usize) += 1;
    }
    assert!(
        sizes.values().all(|&n| n <= 1_000) && sizes.len() >= 3,
        "atomic batches of {:?} messages",
        sizes.values().collect::<Vec<_>>()
    );
}

/// A producer that does not know where its partition ends yet (its first
/// unit, or after a failure) learns it from the unit's first message, sent
/// alone, and sends the rest as a fast batch; it does not send an atomic
/// batch, which a one-replica file stream stages in a file store of its own
/// (created and removed per batch: milliseconds before the answer).
#[tokio::test]
async fn a_first_unit_goes_as_one_message_then_a_fast_batch() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("onboarding", StationConfig::default())
        .await
        .unwrap();
    // The first unit waits for all 500 messages to queue.
    let producer = client
        .producer(
            "onboarding",
            ProducerOptions::default().linger(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..50 {
        enqueue_round(&producer, 10, i, &mut handles).await;
    }
    let mut receipts = Vec::new();
    for h in handles {
        receipts.push(h.await.unwrap());
    }
    let stored = read_stream(&server.url(), &partition_stream("onboarding", 0)).await;
    assert_eq!(stored.len(), 500);
    for (r, m) in receipts.iter().zip(&stored) {
        assert_eq!((r.sequence, &r.msg_id), (m.sequence, &m.msg_id));
    }
    if !takes_fast_batches(&client.server_version()) {
        // A 2.12 server takes no fast batches: atomic batches instead.
        assert!(
            stored
                .iter()
                .all(|m| m.batch.is_some() && m.expected_last.is_none()),
            "every message of a 2.12 server in an atomic batch"
        );
        return;
    }
    assert!(
        stored.iter().all(|m| m.batch.is_none()),
        "{} messages went in an atomic batch",
        stored.iter().filter(|m| m.batch.is_some()).count()
    );
    assert_eq!(stored[0].expected_last, None, "the first went alone");
    assert!(
        stored[1..]
            .iter()
            .all(|m| m.expected_last == Some(m.sequence - 1)),
        "the rest went as a fast batch"
    );
}
