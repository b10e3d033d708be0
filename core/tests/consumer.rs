//! Consumer groups against a real nats-server.

mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::*;
use jetstation::{
    Client, ConsumerOptions, ErrorKind, Message, ProducerOptions, Settlement, StartPosition,
    StationConfig,
};

async fn produce(client: &Client, station: &str, messages: Vec<(String, String)>) {
    let producer = client
        .producer(station, ProducerOptions::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for (key, payload) in messages {
        handles.push(
            producer
                .enqueue(Message::new(payload).key(key))
                .await
                .unwrap(),
        );
    }
    for h in handles {
        h.await.unwrap();
    }
}

fn keyed(keys: usize, per_key: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..per_key {
        for k in 0..keys {
            out.push((format!("k{k}"), format!("k{k}:{i}")));
        }
    }
    out
}

fn index(payload: &[u8]) -> (String, usize) {
    let s = std::str::from_utf8(payload).unwrap();
    let (k, i) = s.rsplit_once(':').unwrap();
    (k.to_string(), i.parse().unwrap())
}

fn fast() -> ConsumerOptions {
    ConsumerOptions::default()
        .ack_wait(Duration::from_secs(2))
        .handover_timeout(Duration::from_secs(2))
        .redelivery_delay(Duration::from_millis(100), Duration::from_secs(2))
}

#[tokio::test]
async fn iterator_style_receives_in_order_and_acks() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("s", StationConfig::default())
        .await
        .unwrap();
    produce(&client, "s", keyed(1, 20)).await;
    let consumer = client
        .consumer("s", "g", fast().concurrency(1))
        .await
        .unwrap();
    for i in 0..20 {
        let d = consumer.next().await.unwrap().unwrap();
        assert_eq!(index(&d.payload), ("k0".into(), i));
        assert_eq!(d.key.as_deref(), Some("k0"));
        assert_eq!(d.deliveries, 1);
        assert!(d.msg_id.is_some());
        d.ack().unwrap();
    }
    consumer.close().await.unwrap();
    assert!(
        consumer.next().await.is_none(),
        "a closed consumer ends its iteration"
    );
    // Everything was committed: a new member of the group gets nothing.
    let again = client.consumer("s", "g", fast()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(800), again.next()).await;
    assert!(got.is_err(), "nothing left after a full commit");
    again.close().await.unwrap();
}

/// The headers a member sees are the message's own (its id, key and the
/// application's), whichever way the producer's pipeline stored it: the
/// transport headers of fast and atomic batches, which the server keeps with
/// the message, are not shown.
#[tokio::test]
async fn a_delivery_shows_the_same_headers_whichever_batch_stored_it() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("h", StationConfig::default())
        .await
        .unwrap();
    // Two producers on one partition: each finds the other's messages where
    // its fast batch expected its own, and sends atomic batches for a while.
    let mut tasks = Vec::new();
    for name in ["a", "b"] {
        let producer = client
            .producer("h", ProducerOptions::default())
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in 0..2_000 {
                let m = Message::new(format!("{name}:{i}"))
                    .key(format!("{name}{}", i % 10))
                    .header("h", "v");
                handles.push(producer.enqueue(m).await.unwrap());
            }
            for h in handles {
                h.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = read_stream(&server.url(), &partition_stream("h", 0)).await;
    assert_eq!(stored.len(), 4_000);
    // A 2.12 server takes atomic batches only.
    let fast_expected = takes_fast_batches(&client.server_version());
    assert!(
        stored.iter().any(|m| m.batch.is_some())
            && stored.iter().any(|m| m.expected_last.is_some()) == fast_expected,
        "both batch kinds stored messages (atomic: {}, fast: {})",
        stored.iter().filter(|m| m.batch.is_some()).count(),
        stored.iter().filter(|m| m.expected_last.is_some()).count()
    );
    let consumer = client.consumer("h", "g", fast()).await.unwrap();
    for _ in 0..4_000 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery within 10 s")
            .unwrap()
            .unwrap();
        let names: Vec<&str> = d.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Jst-Key", "Nats-Msg-Id", "h"], "{:?}", d.headers);
        d.ack().unwrap();
    }
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn a_delivery_settles_once_by_itself_or_by_id_and_a_release_costs_no_delivery() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("s", StationConfig::default().max_deliveries(1))
        .await
        .unwrap();
    produce(&client, "s", keyed(1, 3)).await;
    let consumer = client
        .consumer("s", "g", fast().concurrency(1))
        .await
        .unwrap();

    // Released three times: handed out again first, never counted as a
    // delivery (max_deliveries 1 would dead-letter a nacked one at once).
    for _ in 0..3 {
        let d = consumer.next().await.unwrap().unwrap();
        assert_eq!(index(&d.payload), ("k0".into(), 0));
        assert_eq!(d.deliveries, 1, "a release is not a delivery");
        d.release().unwrap();
    }
    let d = consumer.next().await.unwrap().unwrap();
    assert_eq!(index(&d.payload), ("k0".into(), 0));
    d.ack().unwrap();
    let again = d.ack().unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidArgument, "{again}");
    assert!(d.nack(None).is_err() && d.release().is_err() && d.term("x").is_err());

    // Settled by id alone: the delivery itself can be dropped.
    let (id, message) = consumer.next().await.unwrap().unwrap().detach();
    assert_eq!(index(&message.payload), ("k0".into(), 1));
    consumer.settle(id, Settlement::Ack).unwrap();
    let twice = consumer.settle(id, Settlement::Ack).unwrap_err();
    assert_eq!(twice.kind(), ErrorKind::InvalidArgument, "{twice}");
    let unknown = consumer.settle(9_999, Settlement::Release).unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::InvalidArgument, "{unknown}");

    let d = consumer.next().await.unwrap().unwrap();
    assert_eq!(index(&d.payload), ("k0".into(), 2));
    d.ack().unwrap();
    consumer.close().await.unwrap();
    assert!(
        client.dead_letters("s").await.unwrap().is_empty(),
        "releases dead-lettered nothing"
    );
}

#[tokio::test]
async fn handler_style_keeps_per_key_order_with_concurrency() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("s", StationConfig::default().partitions(3))
        .await
        .unwrap();
    let (keys, per_key) = (100, 50);
    produce(&client, "s", keyed(keys, per_key)).await;
    let consumer = client
        .consumer("s", "g", fast().concurrency(16))
        .await
        .unwrap();
    let seen: Arc<Mutex<HashMap<String, Vec<usize>>>> = Default::default();
    let active: Arc<Mutex<HashSet<String>>> = Default::default();
    let max_parallel = Arc::new(Mutex::new((0usize, 0usize)));
    let worker = {
        let (seen, active, max_parallel) = (seen.clone(), active.clone(), max_parallel.clone());
        let consumer = consumer.clone();
        tokio::spawn(async move {
            consumer
                .consume(move |m| {
                    let (seen, active, max_parallel) =
                        (seen.clone(), active.clone(), max_parallel.clone());
                    async move {
                        let (key, i) = index(&m.payload);
                        assert!(
                            active.lock().unwrap().insert(key.clone()),
                            "key {key} ran twice at once"
                        );
                        {
                            let mut mp = max_parallel.lock().unwrap();
                            mp.0 += 1;
                            mp.1 = mp.1.max(mp.0);
                        }
                        let pause = rand_ms(2);
                        // Simulated work of random length: the load under test, not a wait.
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        seen.lock().unwrap().entry(key.clone()).or_default().push(i);
                        max_parallel.lock().unwrap().0 -= 1;
                        active.lock().unwrap().remove(&key);
                        Ok::<(), String>(())
                    }
                })
                .await
        })
    };
    wait_until(Duration::from_secs(60), "all messages processed", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().values().map(Vec::len).sum::<usize>() >= keys * per_key }
    })
    .await;
    consumer.close().await.unwrap();
    worker.await.unwrap().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), keys);
    for (key, order) in seen.iter() {
        assert_eq!(order, &(0..per_key).collect::<Vec<_>>(), "key {key}");
    }
    let parallel = max_parallel.lock().unwrap().1;
    assert!(parallel > 1 && parallel <= 16, "parallelism {parallel}");
}

fn rand_ms(max: u64) -> u64 {
    (Instant::now().elapsed().subsec_nanos() as u64 ^ std::process::id() as u64) % (max + 1)
}

#[tokio::test]
async fn poison_message_is_dead_lettered_and_replayed() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("hr", StationConfig::default().max_deliveries(3))
        .await
        .unwrap();
    // emp-1: a poison change between two good ones; emp-2: good changes.
    let messages = vec![
        ("emp-1".to_string(), "emp-1:0".to_string()),
        ("emp-1".to_string(), "emp-1:poison".to_string()),
        ("emp-2".to_string(), "emp-2:0".to_string()),
        ("emp-1".to_string(), "emp-1:2".to_string()),
        ("emp-2".to_string(), "emp-2:1".to_string()),
        ("emp-2".to_string(), "emp-2:2".to_string()),
    ];
    produce(&client, "hr", messages).await;
    let consumer = client
        .consumer("hr", "payroll", fast().concurrency(4))
        .await
        .unwrap();
    let log: Arc<Mutex<Vec<(String, Instant)>>> = Default::default();
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (log, fixed, consumer) = (log.clone(), fixed.clone(), consumer.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |m| {
                    let (log, fixed) = (log.clone(), fixed.clone());
                    async move {
                        let text = String::from_utf8(m.payload.to_vec()).unwrap();
                        log.lock().unwrap().push((text.clone(), Instant::now()));
                        if text.ends_with("poison")
                            && !fixed.load(std::sync::atomic::Ordering::SeqCst)
                        {
                            return Err(format!("cannot parse {text}"));
                        }
                        Ok(())
                    }
                })
                .await
        })
    };
    wait_until(
        Duration::from_secs(20),
        "the poison message to be dead-lettered",
        || {
            let client = client.clone();
            async move { client.station("hr").await.unwrap().dead_letters == 1 }
        },
    )
    .await;
    wait_until(Duration::from_secs(10), "emp-1:2 processed", || {
        let log = log.clone();
        async move { log.lock().unwrap().iter().any(|(t, _)| t == "emp-1:2") }
    })
    .await;
    {
        let log = log.lock().unwrap();
        let order: Vec<&str> = log.iter().map(|(t, _)| t.as_str()).collect();
        let pos = |t: &str| order.iter().position(|x| *x == t).unwrap();
        let poison: Vec<Instant> = log
            .iter()
            .filter(|(t, _)| t.ends_with("poison"))
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(poison.len(), 3, "{order:?}");
        // Growing delay between redeliveries (100 ms, then 200 ms).
        let (d1, d2) = (poison[1] - poison[0], poison[2] - poison[1]);
        assert!(d1 >= Duration::from_millis(90), "{d1:?}");
        assert!(d2 > d1, "{d1:?} then {d2:?}");
        // The key's next message waits for the poison one; other keys do not.
        assert!(pos("emp-1:2") > order.iter().rposition(|x| x.ends_with("poison")).unwrap());
        assert!(
            pos("emp-2:2") < order.iter().rposition(|x| x.ends_with("poison")).unwrap(),
            "{order:?}"
        );
    }
    let letters = client.dead_letters("hr").await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.payload.as_ref(), b"emp-1:poison");
    assert_eq!(letter.origin_station, "hr");
    assert_eq!(letter.origin_partition, 0);
    assert_eq!(letter.origin_sequence, 2);
    assert_eq!(letter.group, "payroll");
    assert_eq!(letter.deliveries, 3);
    assert_eq!(letter.last_error, "cannot parse emp-1:poison");
    assert_eq!(letter.key.as_deref(), Some("emp-1"));
    assert!(
        letter.dead_lettered_at.starts_with("20"),
        "{}",
        letter.dead_lettered_at
    );

    // After a fix, the replay reaches the group again.
    fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    let receipt = client
        .replay_dead_letter("hr", letter.sequence)
        .await
        .unwrap();
    assert_eq!(receipt.sequence, 7);
    wait_until(
        Duration::from_secs(10),
        "the replayed message processed",
        || {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap()
                    .iter()
                    .filter(|(t, _)| t.ends_with("poison"))
                    .count()
                    == 4
            }
        },
    )
    .await;
    assert!(client.dead_letters("hr").await.unwrap().is_empty());
    let err = client
        .replay_dead_letter("hr", letter.sequence)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    consumer.close().await.unwrap();
    worker.await.unwrap().unwrap();

    // Everything was committed, including emp-1:2, fetched before the poison
    // message's redeliveries: a new member gets nothing, not even after
    // ack_wait (2 s here).
    let again = client.consumer("hr", "payroll", fast()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(3), again.next()).await;
    assert!(next.is_err(), "redelivered after its commit: {next:?}");
    again.close().await.unwrap();
}

#[tokio::test]
async fn start_positions_and_replay_by_a_new_group() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("s", StationConfig::default())
        .await
        .unwrap();
    produce(&client, "s", keyed(1, 5)).await;
    let between = time::OffsetDateTime::now_utc();
    // A clock tick between the two batches, so start_time separates them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    produce(&client, "s", vec![("k0".into(), "k0:5".into())]).await;

    async fn first(client: &Client, group: &str, start: StartPosition) -> Option<usize> {
        let c = client
            .consumer("s", group, fast().start(start))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_millis(1500), c.next())
            .await
            .ok()
            .flatten();
        let out = got.map(|d| {
            let d = d.unwrap();
            let i = index(&d.payload).1;
            d.ack().unwrap();
            i
        });
        c.close().await.unwrap();
        out
    }
    assert_eq!(
        first(&client, "from-start", StartPosition::Earliest).await,
        Some(0)
    );
    assert_eq!(
        first(&client, "from-seq", StartPosition::Sequence(3)).await,
        Some(2)
    );
    assert_eq!(
        first(&client, "from-time", StartPosition::Time(between)).await,
        Some(5)
    );
    assert_eq!(
        first(&client, "from-now", StartPosition::Latest).await,
        None
    );
    // An existing group continues where it stopped, whatever start says.
    assert_eq!(
        first(&client, "from-start", StartPosition::Earliest).await,
        Some(1)
    );
}

#[tokio::test]
async fn unknown_station_and_bad_group_are_typed_errors() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let err = client
        .consumer("nope", "g", ConsumerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    client
        .create_station("s", StationConfig::default())
        .await
        .unwrap();
    let err = client
        .consumer("s", "bad group", ConsumerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("group"), "{err}");
}

/// A member that starts while a partition receives a steady flow must not
/// wait for the flow to stop (or for `max_ack_pending` to fill) before it
/// runs anything: its in-sync check has to hold while messages keep coming.
#[tokio::test]
async fn a_member_joining_a_busy_partition_starts_while_the_flow_goes_on() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("busy", StationConfig::default())
        .await
        .unwrap();
    let consumer = client
        .consumer("busy", "g", fast().max_ack_pending(1_000_000))
        .await
        .unwrap();
    let first = Arc::new(tokio::sync::Notify::new());
    let worker = {
        let (consumer, first) = (consumer.clone(), first.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |_m| {
                    first.notify_one();
                    async { Ok::<(), String>(()) }
                })
                .await
        })
    };
    let producer = client
        .producer("busy", ProducerOptions::default())
        .await
        .unwrap();
    // Sends without pause until the member handled a message, at most CAP.
    const CAP: usize = 300_000;
    let mut sent = 0;
    let handled_first = first.notified();
    tokio::pin!(handled_first);
    while sent < CAP {
        tokio::select! {
            biased;
            _ = &mut handled_first => break,
            handle = producer.enqueue(Message::new("x").key(format!("k{}", sent % 50))) => {
                drop(handle.unwrap());
                sent += 1;
            }
        }
    }
    producer.flush().await.unwrap();
    assert!(
        sent < CAP,
        "the member ran nothing while {CAP} messages flowed in (it waited for the flow to stop)"
    );
    consumer.close().await.unwrap();
    worker.await.unwrap().unwrap();
}

/// `health()` reports each partition: a lone member owns them all, is in
/// sync once it has what the broker counts as pending, holds what it has not
/// settled, and a deleted durable is recreated by the member itself (its
/// pull fails, which shows as the last error, then it pulls again).
#[tokio::test]
async fn health_shows_partitions_and_a_deleted_durable_is_recreated() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("h", StationConfig::default().partitions(2))
        .await
        .unwrap();
    produce(&client, "h", keyed(4, 5)).await;
    let consumer = client.consumer("h", "g", fast()).await.unwrap();
    let held = consumer.next().await.unwrap().unwrap();
    let health = consumer.health().await.unwrap();
    assert_eq!(health.len(), 2);
    assert!(health.iter().all(|p| p.owned));
    assert!(health.iter().map(|p| p.held).sum::<usize>() >= 1);
    assert!(health.iter().any(|p| p.last_delivery.is_some()));
    // The last delivery's time is a wall-clock time of this test's run.
    let now = std::time::SystemTime::now();
    assert!(health.iter().filter_map(|p| p.last_delivery).all(|t| {
        t <= now && now.duration_since(t).unwrap() < std::time::Duration::from_secs(60)
    }));
    held.ack().unwrap();
    let mut seen = 1;
    while seen < 20 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("every message arrives")
            .unwrap()
            .unwrap();
        d.ack().unwrap();
        seen += 1;
    }
    wait_until(
        Duration::from_secs(10),
        "both partitions in sync, nothing held",
        || async {
            let h = consumer.health().await.unwrap();
            h.iter().all(|p| p.in_sync && p.held == 0)
        },
    )
    .await;
    // Someone deletes the group's consumers: the member recreates them and
    // receives what is sent afterwards.
    client.delete_group("h", "g").await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the pull failure shows",
        || async {
            let h = consumer.health().await.unwrap();
            h.iter().all(|p| p.last_error.is_some())
        },
    )
    .await;
    produce(&client, "h", vec![("k0".into(), "after".into())]).await;
    let d = tokio::time::timeout(Duration::from_secs(15), consumer.next())
        .await
        .expect("a message sent after the durable was deleted arrives")
        .unwrap()
        .unwrap();
    // Recreated from where this member had committed: nothing replayed.
    assert_eq!(&d.payload[..], b"after");
    d.ack().unwrap();
    consumer.close().await.unwrap();
}

/// A handler that panics, before its first await or after one, counts as a
/// failure: the message comes again, and `consume` goes on with the rest.
#[tokio::test]
async fn a_panicking_handler_is_a_failure_and_consume_goes_on() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("s", StationConfig::default().partitions(1))
        .await
        .unwrap();
    let payloads = ["panics-at-once", "panics-after-await", "plain"];
    produce(
        &client,
        "s",
        payloads
            .iter()
            .map(|p| (p.to_string(), p.to_string()))
            .collect(),
    )
    .await;
    let consumer = client
        .consumer("s", "g", fast().concurrency(4))
        .await
        .unwrap();
    let handled: Arc<Mutex<Vec<(String, u64)>>> = Default::default();
    let worker = {
        let (handled, consumer) = (handled.clone(), consumer.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |m| {
                    let handled = handled.clone();
                    async move {
                        let text = String::from_utf8(m.payload.to_vec()).unwrap();
                        if m.deliveries == 1 && text == "panics-at-once" {
                            panic!("first delivery of {text}");
                        }
                        if m.deliveries == 1 && text == "panics-after-await" {
                            tokio::task::yield_now().await;
                            panic!("first delivery of {text}");
                        }
                        handled.lock().unwrap().push((text, m.deliveries));
                        Ok::<(), String>(())
                    }
                })
                .await
        })
    };
    wait_until(Duration::from_secs(30), "all three handled", || {
        let handled = handled.clone();
        async move { handled.lock().unwrap().len() >= 3 }
    })
    .await;
    consumer.close().await.unwrap();
    worker.await.unwrap().unwrap();
    let mut handled = handled.lock().unwrap().clone();
    handled.sort();
    assert_eq!(
        handled,
        vec![
            ("panics-after-await".to_string(), 2),
            ("panics-at-once".to_string(), 2),
            ("plain".to_string(), 1),
        ]
    );
}

/// Messages that wait in a member's own queue for longer than `ack_wait`
/// (one key, a handler slower than the queue is long) are kept with the
/// broker: it does not deliver them again, so each runs once, as a first
/// delivery, and the member stays in sync and commits as it goes.
#[tokio::test]
async fn messages_queued_longer_than_ack_wait_are_not_delivered_again() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("queued", StationConfig::default())
        .await
        .unwrap();
    let count = 12;
    produce(
        &client,
        "queued",
        (0..count)
            .map(|i| ("k".to_string(), format!("m{i}")))
            .collect(),
    )
    .await;
    // One key: its messages run one after the other, 300 ms each, so the
    // last waits about 3.3 s in the queue, more than three ack_waits.
    let options = ConsumerOptions::default()
        .ack_wait(Duration::from_secs(1))
        .concurrency(4);
    let consumer = client.consumer("queued", "g", options).await.unwrap();
    let runs: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let task = {
        let (consumer, runs) = (consumer.clone(), runs.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |m| {
                    let runs = runs.clone();
                    async move {
                        // The handler's work: its length is what makes the
                        // queue outlast ack_wait, the case under test.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let payload = String::from_utf8_lossy(&m.payload).into_owned();
                        runs.lock().unwrap().push((payload, m.deliveries));
                        Ok::<(), String>(())
                    }
                })
                .await
        })
    };
    wait_until(Duration::from_secs(20), "every message run", || {
        let runs = runs.clone();
        async move { runs.lock().unwrap().len() >= count }
    })
    .await;
    consumer.close().await.unwrap();
    task.await.unwrap().unwrap();
    let runs = runs.lock().unwrap();
    let expected: Vec<(String, u64)> = (0..count).map(|i| (format!("m{i}"), 1)).collect();
    assert_eq!(
        *runs, expected,
        "each message once, in order, as a first delivery"
    );
}
