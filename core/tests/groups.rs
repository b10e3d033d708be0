//! Ordered acknowledgement, crashes and several members of one group,
//! against a real nats-server.

mod common;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use jetstation::{Client, ConsumerOptions, Message, ProducerOptions, StationConfig};

fn fast() -> ConsumerOptions {
    ConsumerOptions::default()
        .ack_wait(Duration::from_secs(2))
        .handover_timeout(Duration::from_secs(2))
        .redelivery_delay(Duration::from_millis(100), Duration::from_secs(1))
}

async fn produce(client: &Client, station: &str, keys: usize, per_key: usize) {
    let producer = client
        .producer(station, ProducerOptions::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..per_key {
        for k in 0..keys {
            let m = Message::new(format!("k{k}:{i}")).key(format!("k{k}"));
            handles.push(producer.enqueue(m).await.unwrap());
        }
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Ack floor of a group on one partition, read with plain async-nats.
async fn ack_floor(js: &async_nats::jetstream::Context, stream: &str, group: &str) -> u64 {
    let stream = js.get_stream_no_info(stream).await.unwrap();
    stream
        .consumer_info(group)
        .await
        .unwrap()
        .ack_floor
        .stream_sequence
}

/// Stores `count` messages of 16 KiB over 10 keys. Large messages: the
/// broker pushes them into a member's pull far ahead of its handler, so a
/// cut loses some on the way.
async fn store_large(producer: &jetstation::Producer, count: usize) {
    let filler = "x".repeat(16 * 1024);
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let m = Message::new(format!("{i}:{filler}")).key(format!("k{}", i % 10));
        handles.push(producer.enqueue(m).await.unwrap());
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Sends `count` messages over `keys` keys, 20 a second: deliveries that go
/// on after everything stored was delivered.
async fn trickle(producer: jetstation::Producer, count: usize, keys: usize) {
    for i in 0..count {
        let m = Message::new(format!("trickle-{i}")).key(format!("t{}", i % keys));
        producer.enqueue(m).await.unwrap().await.unwrap();
        // A pace, not a wait for a condition: the trickle's point is a
        // slow, steady stream of 20 messages a second.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client whose connections go through `relay` (see
/// [`jetstation_harness::Relay`]).
async fn connect_through(relay: &jetstation_harness::Relay) -> Client {
    Client::connect(
        jetstation::ConnectOptions::new(relay.url())
            .request_timeout(Duration::from_secs(2))
            .max_reconnect_delay(Duration::from_millis(250)),
    )
    .await
    .unwrap()
}

fn pseudo_random(seed: u64) -> u64 {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    x ^= x >> 33;
    x
}

/// Concurrency 16, random handler delays, one message that never finishes:
/// the broker's ack floor never passes an unfinished message, and after a
/// crash (the member dropped without close) another member's redelivery
/// starts exactly at that message and covers the whole tail.
#[tokio::test]
async fn ack_floor_never_passes_unfinished_and_crash_redelivers_the_tail() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("acks", StationConfig::default())
        .await
        .unwrap();
    let (keys, per_key) = (30, 10);
    produce(&client, "acks", keys, per_key).await;
    let total = (keys * per_key) as u64;
    let stuck: u64 = 100;

    let finished: Arc<Mutex<BTreeSet<u64>>> = Default::default();
    let member = client
        .consumer("acks", "g", fast().concurrency(16))
        .await
        .unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let runner = {
        let (member, finished, held) = (member.clone(), finished.clone(), held.clone());
        tokio::spawn(async move {
            while let Some(d) = member.next().await {
                let d = d.unwrap();
                if d.sequence == stuck {
                    held.lock().unwrap().push(d); // never settled
                    continue;
                }
                let finished = finished.clone();
                tokio::spawn(async move {
                    let pause = pseudo_random(d.sequence) % 8;
                    // Simulated work of random length: the load under test, not a wait.
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    finished.lock().unwrap().insert(d.sequence);
                    d.ack().unwrap();
                });
            }
        })
    };

    // Watch the floor while the member works.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let stream = partition_stream("acks", 0);
    // Messages of the stuck message's key behind it wait for it.
    let stuck_key = (stuck - 1) as usize % keys;
    let blocked = (1..=total)
        .filter(|s| *s >= stuck && ((*s - 1) as usize) % keys == stuck_key)
        .count() as u64;
    let expected_done = total - blocked;
    let mut checks = 0;
    loop {
        let floor = ack_floor(&js, &stream, "g").await;
        let done = finished.lock().unwrap().clone();
        for s in 1..=floor {
            assert!(
                done.contains(&s),
                "ack floor {floor} passed unfinished message {s}"
            );
        }
        assert!(floor < stuck, "ack floor {floor} passed the stuck message");
        checks += 1;
        if done.len() as u64 == expected_done && floor == stuck - 1 {
            break;
        }
        assert!(
            checks < 2000,
            "never reached the expected state: {} done, floor {floor}",
            done.len()
        );
        // Poll interval of the ack-floor watcher; bounded by the check count.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Crash: the member and its connection vanish without closing.
    runner.abort();
    let _ = runner.await;
    std::mem::forget(held); // a crashed process settles nothing
    drop(member);
    drop(client);

    let other = connect(&server).await;
    let next = other
        .consumer("acks", "g", fast().concurrency(1))
        .await
        .unwrap();
    let mut got = Vec::new();
    while (got.len() as u64) < total - stuck + 1 {
        let d = tokio::time::timeout(Duration::from_secs(15), next.next())
            .await
            .expect("redelivery after the crash")
            .unwrap()
            .unwrap();
        got.push(d.sequence);
        d.ack().unwrap();
    }
    // The broker redelivers expired messages of different keys in no fixed
    // order; what matters is where the tail starts and that it has no hole.
    assert_eq!(
        got.iter().min(),
        Some(&stuck),
        "redelivery starts at the first unfinished message"
    );
    let set: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(
        set,
        (stuck..=total).collect::<BTreeSet<_>>(),
        "a contiguous tail, no hole"
    );
    next.close().await.unwrap();
    assert_eq!(ack_floor(&js, &stream, "g").await, total);
}

/// Two members (separate connections) split the partitions, never run one
/// key in both at once, and when one is killed the other finishes everything.
#[tokio::test]
async fn two_members_split_partitions_and_fail_over() {
    let server = NatsServer::start();
    let admin = connect(&server).await;
    let partitions = 4;
    admin
        .create_station("shared", StationConfig::default().partitions(partitions))
        .await
        .unwrap();
    let (keys, per_key) = (40, 40);
    // Half the messages exist when the members start (member 1 takes every
    // partition, then hands some over when member 2 joins); the other half
    // is sent after member 1 is killed.

    type Log = Arc<Mutex<Vec<(usize, u32, String, usize)>>>;
    let log: Log = Default::default();
    let active: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    // A killed member's handlers die mid-flight and never clear their keys.
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let start = |id: usize, client: Client| {
        let (log, active, killed) = (log.clone(), active.clone(), killed.clone());
        async move {
            let member = client
                .consumer("shared", "workers", fast().concurrency(4))
                .await
                .unwrap();
            let m2 = member.clone();
            let task = tokio::spawn(async move {
                m2.consume(move |m| {
                    let (log, active, killed) = (log.clone(), active.clone(), killed.clone());
                    async move {
                        let text = String::from_utf8(m.payload.to_vec()).unwrap();
                        let (key, i) = text.rsplit_once(':').unwrap();
                        let other = active.lock().unwrap().insert(key.to_string(), id);
                        let dead = killed.load(std::sync::atomic::Ordering::SeqCst);
                        if let Some(other) = other.filter(|o| !(dead && *o == 1)) {
                            panic!("key {key} processed by members {other} and {id} at once");
                        }
                        // Simulated work, so the run lasts long enough to hand partitions over.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        active.lock().unwrap().remove(key);
                        log.lock().unwrap().push((
                            id,
                            m.partition,
                            key.to_string(),
                            i.parse().unwrap(),
                        ));
                        Ok::<(), String>(())
                    }
                })
                .await
            });
            (member, task, client)
        }
    };
    let producer = admin
        .producer("shared", ProducerOptions::default())
        .await
        .unwrap();
    let send_range = |range: std::ops::Range<usize>| {
        let producer = producer.clone();
        async move {
            let mut handles = Vec::new();
            for i in range {
                for k in 0..keys {
                    let m = Message::new(format!("k{k}:{i}")).key(format!("k{k}"));
                    handles.push(producer.enqueue(m).await.unwrap());
                }
            }
            for h in handles {
                h.await.unwrap();
            }
        }
    };
    send_range(0..per_key / 2).await;
    let (a, a_task, a_client) = start(1, connect(&server).await).await;
    let (b, b_task, b_client) = start(2, connect(&server).await).await;

    // Both members get work, on disjoint partitions.
    wait_until(Duration::from_secs(20), "both members working", || {
        let log = log.clone();
        async move {
            let log = log.lock().unwrap();
            log.iter().any(|e| e.0 == 1) && log.iter().any(|e| e.0 == 2)
        }
    })
    .await;
    // Let both members work a while, so the recent log shows the split.
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let log = log.lock().unwrap();
        let recent: Vec<_> = log.iter().rev().take(100).collect();
        let parts = |id| {
            recent
                .iter()
                .filter(|e| e.0 == id)
                .map(|e| e.1)
                .collect::<HashSet<u32>>()
        };
        let (pa, pb) = (parts(1), parts(2));
        assert!(pa.is_disjoint(&pb), "partitions shared: {pa:?} {pb:?}");
        assert_eq!(pa.len() + pb.len(), partitions as usize, "{pa:?} {pb:?}");
    }

    // Kill member 1 (no close: its process dies).
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    a_task.abort();
    drop(a);
    drop(a_client);
    let _ = a_task.await;
    send_range(per_key / 2..per_key).await;

    wait_until(
        Duration::from_secs(60),
        "member 2 to finish everything",
        || {
            let log = log.clone();
            async move {
                let log = log.lock().unwrap();
                let seen: HashSet<(String, usize)> =
                    log.iter().map(|e| (e.2.clone(), e.3)).collect();
                seen.len() == keys * per_key
            }
        },
    )
    .await;
    b.close().await.unwrap();
    b_task.await.unwrap().unwrap();
    drop(b_client);

    // Per key, what each member processed is in order (redeliveries after
    // the handover may repeat a tail, never go back before it).
    let log = log.lock().unwrap();
    let mut per_key: HashMap<(usize, String), Vec<usize>> = HashMap::new();
    for (id, _, key, i) in log.iter() {
        per_key.entry((*id, key.clone())).or_default().push(*i);
    }
    for ((id, key), seen) in &per_key {
        let other = per_key.get(&(3 - id, key.clone()));
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "member {id} key {key}: {seen:?}; other member: {other:?}"
        );
    }
}

/// Handled payloads, each with the moment it was handled.
type Handled = tokio::sync::mpsc::UnboundedReceiver<(Vec<u8>, std::time::Instant)>;

/// Runs `member`'s handler loop in a task; each handled payload comes out
/// of the channel with the moment it was handled.
fn handled_with_times(
    member: &jetstation::Consumer,
) -> (Handled, tokio::task::JoinHandle<jetstation::Result<()>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = member.clone();
    let task = tokio::spawn(async move {
        reader
            .consume(move |m| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((m.payload.to_vec(), std::time::Instant::now()));
                    Ok::<(), String>(())
                }
            })
            .await
    });
    (rx, task)
}

/// The broker stops (SIGSTOP) for longer than two idle heartbeats of a
/// member's pull, so the pull reports them missed. The broker still holds
/// the member's pin and its waiting pull requests: once it resumes, the
/// member reads on within moments, instead of opening a new pull that the
/// broker holds back until the old pin expires (the handover timeout).
#[tokio::test]
async fn a_broker_pause_does_not_stall_the_member_until_its_pin_expires() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("paused", StationConfig::default().partitions(1))
        .await
        .unwrap();
    let producer = client
        .producer("paused", ProducerOptions::default())
        .await
        .unwrap();
    // The pin of a pull that stopped asking expires after this long.
    let handover = Duration::from_secs(10);
    let member = client
        .consumer(
            "paused",
            "readers",
            ConsumerOptions::default().handover_timeout(handover),
        )
        .await
        .unwrap();
    let (mut rx, task) = handled_with_times(&member);
    producer.send(Message::new("before")).await.unwrap();
    let (first, _) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the first message within 20 s")
        .unwrap();
    assert_eq!(first, b"before");

    // Two pauses: the member's question about the pin that follows the
    // missed heartbeats (answered within 1 s or not) finds the broker still
    // stopped in the first, and running again in the second.
    for (round, pause) in [(1, 3_000), (2, 1_750)] {
        server.freeze();
        // The fault's length, not a wait for something: longer than two idle
        // heartbeats (a twelfth of the handover timeout each).
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.thaw();
        let resumed = std::time::Instant::now();
        let body = format!("after pause {round}");
        producer.send(Message::new(body.clone())).await.unwrap();
        let (got, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the message sent after the pause within 30 s")
            .unwrap();
        assert_eq!(got, body.as_bytes());
        let waited = at - resumed;
        assert!(
            waited < handover / 3,
            "read {waited:?} after pause {round}; the old pin expires {handover:?} after its last pull"
        );
    }
    assert!(rx.try_recv().is_err(), "nothing handled twice");
    member.close().await.unwrap();
    task.await.unwrap().unwrap();
}

/// A pull that counts requests as open which the broker does not hold
/// (async-nats counts a pull request only once its publish returned, so the
/// answers to it that arrive first are not counted, and the pull waits for
/// them forever). Here the broker drops them on purpose: the group's durable
/// takes one waiting request and 200 unacknowledged messages, so each
/// second request of the pull arrives while the first still waits and is
/// dropped without an answer (the pull asks for idle heartbeats). The
/// broker then holds no request, sends no heartbeat, and the pull waits:
/// until its idle heartbeats are missed (two of them, a sixth of the
/// handover timeout) if nothing else notices. The member notices that its
/// pull went quiet while messages wait, asks the broker, and pulls anew at
/// once: no gap between two messages comes near one heartbeat.
#[tokio::test]
async fn a_pull_whose_requests_the_broker_dropped_resumes_at_once() {
    use async_nats::jetstream::consumer::{AckPolicy, PriorityPolicy, pull};
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("dropped", StationConfig::default().partitions(1))
        .await
        .unwrap();
    produce(&client, "dropped", 10, 100).await;
    let handover = Duration::from_secs(30);
    let heartbeat = handover / 12;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    js.get_stream_no_info(partition_stream("dropped", 0))
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("readers".into()),
            ack_policy: AckPolicy::All,
            max_deliver: -1,
            max_ack_pending: 200,
            max_waiting: 1,
            priority_policy: PriorityPolicy::PinnedClient,
            priority_groups: vec!["jst".into()],
            priority_timeout: handover,
            ..Default::default()
        })
        .await
        .unwrap();
    let member = client
        .consumer(
            "dropped",
            "readers",
            ConsumerOptions::default().handover_timeout(handover),
        )
        .await
        .unwrap();
    let (mut rx, task) = handled_with_times(&member);
    let mut per_key: HashMap<String, usize> = HashMap::new();
    let (mut last, mut longest) = (None::<std::time::Instant>, Duration::ZERO);
    for n in 0..1000 {
        let (body, at) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("message {n} of 1000 within 60 s"))
            .unwrap();
        let (key, i) = parse(&body);
        let next = per_key.entry(key.clone()).or_default();
        assert_eq!(i, *next, "key {key} out of order");
        *next += 1;
        if let Some(last) = last {
            longest = longest.max(at - last);
        }
        last = Some(at);
    }
    assert!(
        longest < heartbeat,
        "the longest gap between two messages was {longest:?}; missed heartbeats tell after {:?}",
        heartbeat * 2
    );
    member.close().await.unwrap();
    task.await.unwrap().unwrap();
}

/// Deliveries lost when a member's connection is cut mid-read count as
/// pending at the broker, and the member cannot run anything of the
/// partition without them (a key's later message could overtake them). At a
/// low rate the `max_ack_pending` window never fills, so the broker goes on
/// delivering and would redeliver the lost ones only after `ack_wait`
/// (30 s by default). The member resets the partition's consumer to its
/// commit point after 1 s of that instead (nats-server 2.14+).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_goes_on_soon_after_deliveries_are_lost_in_a_reconnect() {
    let server = NatsServer::start();
    let relay = jetstation_harness::Relay::start(server.port());
    let direct = connect(&server).await;
    direct
        .create_station("lost", StationConfig::default())
        .await
        .unwrap();
    let producer = direct
        .producer("lost", ProducerOptions::default())
        .await
        .unwrap();
    let stored = 2_000;
    store_large(&producer, stored).await;
    let member = connect_through(&relay).await;
    let consumer = member
        .consumer("lost", "payroll", ConsumerOptions::default())
        .await
        .unwrap();
    // A trickle of new messages: the broker never stands still.
    let trickling = tokio::spawn(trickle(producer, 400, 1));
    let mut seen = HashSet::new();
    let mut cut_at = None;
    while seen.len() < stored {
        let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("the group stalled after {} messages", seen.len()))
            .expect("the group ends only when closed")
            .unwrap();
        let text = String::from_utf8_lossy(&delivery.payload).to_string();
        if let Some((i, _)) = text.split_once(':') {
            seen.insert(i.parse::<usize>().unwrap());
        }
        delivery.ack().unwrap();
        // The next delivery is lost on the way, with the connection (a
        // cut loses only what happens to be on the way, maybe nothing).
        if seen.len() == 150 {
            relay.lose_next("$JS.ACK.");
            cut_at = Some(std::time::Instant::now());
        }
    }
    let took = cut_at.unwrap().elapsed();
    eprintln!("every stored message handled {took:?} after the loss was armed");
    trickling.abort();
    assert!(relay.lost(), "no delivery passed the relay to be lost");
    // Before nats-server 2.14 there is no consumer reset: up to ack_wait.
    let version = member.server_version();
    let has_reset = !(version.starts_with("2.12.") || version.starts_with("2.13."));
    let bound = Duration::from_secs(if has_reset { 15 } else { 45 });
    assert!(
        took < bound,
        "the stored messages took {took:?} after the loss (ack_wait is 30 s)"
    );
    consumer.close().await.unwrap();
}

/// A reset (see the test above) sends every uncommitted message again, with
/// the broker's delivery counts back at 1. Here the member that reset the
/// partition vanishes right after its reset request left (its network path
/// goes silent, then its connections break), so the next member receives
/// those messages first: the ones the first member had handed to its
/// application must still read as redelivered (`deliveries > 1`), or an
/// application would take a repeat for a first delivery, and exactly once
/// would not look it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_member_handed_out_before_its_reset_reads_as_redelivered_at_the_next() {
    let server = NatsServer::start();
    let relay = jetstation_harness::Relay::start(server.port());
    relay.silence_after("$JS.API.CONSUMER.RESET.");
    let direct = connect(&server).await;
    let version = direct.server_version();
    if version.starts_with("2.12.") || version.starts_with("2.13.") {
        // n/a: before 2.14 no consumer is reset, so delivery counts never
        // start again (the repeats wait for ack_wait, counted on).
        eprintln!("nats-server {version} has no consumer reset: nothing to check");
        return;
    }
    direct
        .create_station("marks", StationConfig::default().partitions(1))
        .await
        .unwrap();
    let producer = direct
        .producer("marks", ProducerOptions::default())
        .await
        .unwrap();
    let stored = 2_000u64;
    store_large(&producer, stored as usize).await;
    let options = ConsumerOptions::default().handover_timeout(Duration::from_secs(2));
    let first = connect_through(&relay).await;
    let member = first
        .consumer("marks", "payroll", options.clone())
        .await
        .unwrap();
    // A trickle of new messages: deliveries go on after everything stored
    // was delivered, so the loss armed below has a delivery to hit.
    let trickling = tokio::spawn(trickle(producer, 1_200, 1));
    // The first message stays in its handler (unacknowledged), so nothing is
    // committed and the reset sends back everything handed out.
    let mut running = Vec::new();
    let mut handed = HashSet::new();
    let started = std::time::Instant::now();
    while !relay.is_silent() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no reset within 60 s; {} messages handed out, a delivery lost on the way: {}",
            handed.len(),
            relay.lost()
        );
        // Short waits: the loop also watches for the silence.
        let Ok(next) = tokio::time::timeout(Duration::from_millis(200), member.next()).await else {
            continue;
        };
        let delivery = next.expect("the group ends only when closed").unwrap();
        assert!(
            handed.insert(delivery.sequence),
            "message {} handed out twice by one member before its reset",
            delivery.sequence
        );
        if running.is_empty() {
            running.push(delivery);
            continue;
        }
        delivery.ack().unwrap();
        // Once the member reads on its own, the next delivery is lost on
        // the way (a cut may lose nothing when every message already came).
        if handed.len() == 100 {
            relay.lose_next("$JS.ACK.");
        }
    }
    trickling.abort();
    // The member is gone: its connections break and it cannot reconnect.
    relay.cut();
    std::mem::forget(running); // a vanished process settles nothing
    eprintln!("the first member handed out {} messages", handed.len());

    let second = connect(&server).await;
    let next_member = second.consumer("marks", "payroll", options).await.unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let floor = ack_floor(&js, &partition_stream("marks", 0), "payroll").await;
    let mut left: BTreeSet<u64> = (floor + 1..=stored).collect();
    let mut repeats = 0;
    while !left.is_empty() {
        let delivery = tokio::time::timeout(Duration::from_secs(60), next_member.next())
            .await
            .unwrap_or_else(|_| panic!("the group stalled with {} messages left", left.len()))
            .expect("the group ends only when closed")
            .unwrap();
        left.remove(&delivery.sequence);
        if handed.contains(&delivery.sequence) {
            repeats += 1;
            assert!(
                delivery.deliveries > 1,
                "message {} was handed out before the reset, and comes again with deliveries = {}",
                delivery.sequence,
                delivery.deliveries
            );
        }
        delivery.ack().unwrap();
    }
    assert!(
        repeats > 0,
        "the next member received none of the {} messages handed out before the reset",
        handed.len()
    );
    eprintln!("{repeats} repeats, all flagged");
    next_member.close().await.unwrap();
}

/// The most deliveries each handled payload came with.
type Deliveries = Arc<Mutex<HashMap<Vec<u8>, u64>>>;

/// Runs `member`'s handler loop in a task, recording in `handled` the most
/// deliveries each payload came with.
fn recording(
    member: &jetstation::Consumer,
    handled: &Deliveries,
) -> tokio::task::JoinHandle<jetstation::Result<()>> {
    let (member, handled) = (member.clone(), handled.clone());
    tokio::spawn(async move {
        member
            .consume(move |m| {
                let handled = handled.clone();
                async move {
                    let mut handled = handled.lock().unwrap();
                    let deliveries = handled.entry(m.payload.to_vec()).or_default();
                    *deliveries = (*deliveries).max(m.deliveries);
                    Ok::<(), String>(())
                }
            })
            .await
    })
}

/// A member whose handlers never finish: it holds every message it is
/// handed, until `held` is dropped.
async fn holding(
    client: &Client,
    station: &str,
    options: ConsumerOptions,
) -> (
    jetstation::Consumer,
    tokio::task::JoinHandle<()>,
    Arc<Mutex<Vec<jetstation::Delivery>>>,
) {
    let member = client.consumer(station, "g", options).await.unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let runner = {
        let (member, held) = (member.clone(), held.clone());
        tokio::spawn(async move {
            while let Some(d) = member.next().await {
                held.lock().unwrap().push(d.unwrap());
            }
        })
    };
    (member, runner, held)
}

/// Waits until a member made by [`holding`] holds `count` messages.
async fn until_held(held: &Arc<Mutex<Vec<jetstation::Delivery>>>, count: usize) {
    wait_until(
        Duration::from_secs(20),
        &format!("a member holding {count} messages"),
        || {
            let held = held.clone();
            async move { held.lock().unwrap().len() == count }
        },
    )
    .await;
}

/// Waits until `member` owns `count` partitions, and only those.
async fn until_owning(member: &jetstation::Consumer, count: usize) {
    wait_until(
        Duration::from_secs(20),
        &format!("a member owning {count} partitions"),
        || async move {
            let health = member.health().await.unwrap();
            health.iter().filter(|p| p.owned).count() == count
                && health.iter().all(|p| p.owned || p.held == 0)
        },
    )
    .await;
}

/// Kills a member made by [`holding`]: nothing of it is settled or closed,
/// as when its process dies. Returns the payloads it held.
async fn kill(
    member: jetstation::Consumer,
    runner: tokio::task::JoinHandle<()>,
    held: Arc<Mutex<Vec<jetstation::Delivery>>>,
    client: Client,
) -> Vec<Vec<u8>> {
    runner.abort();
    let _ = runner.await;
    let payloads = held
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.payload.to_vec())
        .collect();
    std::mem::forget(held);
    drop(member);
    drop(client);
    payloads
}

/// Waits until every payload of `stored` is in `handled`, and checks that
/// each of `held` came again as a redelivery. Returns the time since `from`.
async fn all_handled(
    handled: &Deliveries,
    stored: &[Vec<u8>],
    held: &[Vec<u8>],
    from: std::time::Instant,
) -> Duration {
    wait_until(
        Duration::from_secs(25),
        "every message stored before the kill handled",
        || {
            let (handled, stored) = (handled.clone(), stored.to_vec());
            async move {
                let handled = handled.lock().unwrap();
                stored.iter().all(|p| handled.contains_key(p))
            }
        },
    )
    .await;
    let took = from.elapsed();
    let handled = handled.lock().unwrap();
    for p in held {
        assert!(
            handled[p] >= 2,
            "{} came again as a first delivery",
            String::from_utf8_lossy(p)
        );
    }
    took
}

/// The payloads [`produce`] stores.
fn produced(keys: usize, per_key: usize) -> Vec<Vec<u8>> {
    (0..per_key)
        .flat_map(|i| (0..keys).map(move |k| format!("k{k}:{i}").into_bytes()))
        .collect()
}

/// A member is killed holding messages in its handlers, while new messages
/// keep coming. The broker would give those messages to the next owner only
/// after `ack_wait` (a minute here), and until then the partition could run
/// nothing in order. Once the killed member has left the group and the
/// broker delivers to the next owner, that owner resets the partition's
/// consumer to its commit point: the partition goes on within seconds, and
/// the killed member's messages come again flagged as redelivered.
#[tokio::test]
async fn a_killed_members_partition_goes_on_long_before_its_ack_wait() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("takeover", StationConfig::default())
        .await
        .unwrap();
    let (keys, per_key) = (5, 10);
    produce(&client, "takeover", keys, per_key).await;
    let options = fast().ack_wait(Duration::from_secs(60)).concurrency(4);

    // Member A takes the partition and holds four messages, one of each of
    // four keys; then it dies.
    let a_client = connect(&server).await;
    let (a, runner, held) = holding(&a_client, "takeover", options.clone()).await;
    until_held(&held, 4).await;
    let held = kill(a, runner, held, a_client).await;
    let killed = std::time::Instant::now();

    // New messages keep coming, and member B is there to take over.
    let producer = client
        .producer("takeover", ProducerOptions::default())
        .await
        .unwrap();
    let trickling = tokio::spawn(trickle(producer, 400, 1));
    let b_client = connect(&server).await;
    let b = b_client.consumer("takeover", "g", options).await.unwrap();
    let handled = Deliveries::default();
    let b_task = recording(&b, &handled);
    let took = all_handled(&handled, &produced(keys, per_key), &held, killed).await;
    trickling.abort();
    b.close().await.unwrap();
    b_task.await.unwrap().unwrap();
    println!("everything stored was handled {took:?} after the kill");
}

/// As above, with nothing new coming: the broker has delivered everything
/// to the killed member, so it serves the new owner nothing and pins no
/// pull of it. Once the killed member's pin has expired, the broker shows
/// no pin at all, which tells the new owner as much as a delivery would.
#[tokio::test]
async fn a_killed_members_last_messages_go_on_long_before_its_ack_wait() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("takeover-idle", StationConfig::default())
        .await
        .unwrap();
    let (keys, per_key) = (5, 10);
    produce(&client, "takeover-idle", keys, per_key).await;
    let options = fast().ack_wait(Duration::from_secs(60)).concurrency(4);
    let a_client = connect(&server).await;
    let (a, runner, held) = holding(&a_client, "takeover-idle", options.clone()).await;
    until_held(&held, 4).await;
    let held = kill(a, runner, held, a_client).await;
    let killed = std::time::Instant::now();

    let b_client = connect(&server).await;
    let b = b_client
        .consumer("takeover-idle", "g", options)
        .await
        .unwrap();
    let handled = Deliveries::default();
    let b_task = recording(&b, &handled);
    let took = all_handled(&handled, &produced(keys, per_key), &held, killed).await;
    b.close().await.unwrap();
    b_task.await.unwrap().unwrap();
    println!("everything stored was handled {took:?} after the kill");
}

/// As above, with a member that lives on beside the one that takes the
/// killed member's partition (a killed member's process restarted at once
/// is such a new member): the new owner learns from that member's
/// membership announcements that it holds nothing of the partition.
#[tokio::test]
async fn a_killed_members_partition_goes_on_beside_a_member_that_lives() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("takeover2", StationConfig::default().partitions(2))
        .await
        .unwrap();
    let options = fast().ack_wait(Duration::from_secs(60)).concurrency(4);

    // Member B handles one partition; member A takes the other one and
    // holds four of its messages; then A dies, and member C starts at once.
    let handled = Deliveries::default();
    let b_client = connect(&server).await;
    let b = b_client
        .consumer("takeover2", "g", options.clone())
        .await
        .unwrap();
    let b_task = recording(&b, &handled);
    let a_client = connect(&server).await;
    let (a, runner, held) = holding(&a_client, "takeover2", options.clone()).await;
    until_owning(&a, 1).await;
    until_owning(&b, 1).await;
    let (keys, per_key) = (20, 5);
    produce(&client, "takeover2", keys, per_key).await;
    until_held(&held, 4).await;
    let held = kill(a, runner, held, a_client).await;
    let killed = std::time::Instant::now();
    let c_client = connect(&server).await;
    let c = c_client.consumer("takeover2", "g", options).await.unwrap();
    let c_task = recording(&c, &handled);

    let producer = client
        .producer("takeover2", ProducerOptions::default())
        .await
        .unwrap();
    // New messages on both partitions: four keys spread over the two.
    let trickling = tokio::spawn(trickle(producer, 400, 4));
    let took = all_handled(&handled, &produced(keys, per_key), &held, killed).await;
    trickling.abort();
    for (member, task) in [(b, b_task), (c, c_task)] {
        member.close().await.unwrap();
        task.await.unwrap().unwrap();
    }
    println!("everything stored was handled {took:?} after the kill");
}

/// Runs `body` with a new member of `station`'s group "g" on a runtime of
/// its own thread: a body that blocks that thread stops the whole member
/// (its scheduler, pulls and announcements), as a stopped process would.
fn member_on_own_thread<T, Fut>(
    url: String,
    station: &'static str,
    options: ConsumerOptions,
    body: impl FnOnce(jetstation::Consumer) -> Fut + Send + 'static,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = Client::connect(jetstation::ConnectOptions::new(url))
                .await
                .unwrap();
            let member = client.consumer(station, "g", options).await.unwrap();
            body(member).await
        })
    })
}

/// Member B of the stall tests, recording what it handles, joins while A
/// stalls. New messages keep coming: the broker then serves B, which shows
/// B that A's pin has expired (see the takeover tests above).
struct Takeover {
    _client: Client,
    member: jetstation::Consumer,
    handled: Deliveries,
    task: tokio::task::JoinHandle<jetstation::Result<()>>,
    trickling: tokio::task::JoinHandle<()>,
}

impl Takeover {
    async fn join(
        server: &NatsServer,
        client: &Client,
        station: &str,
        options: ConsumerOptions,
    ) -> Self {
        let b_client = connect(server).await;
        let member = b_client.consumer(station, "g", options).await.unwrap();
        let handled = Deliveries::default();
        let task = recording(&member, &handled);
        let producer = client
            .producer(station, ProducerOptions::default())
            .await
            .unwrap();
        Self {
            _client: b_client,
            member,
            handled,
            task,
            trickling: tokio::spawn(trickle(producer, 400, 1)),
        }
    }

    /// Stops the new messages and closes B.
    async fn finish(self) {
        self.trickling.abort();
        self.member.close().await.unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// What a member that stalled ran, in order: each payload with the
/// deliveries it came with, and whether it ran after the stall.
type Runs = Arc<Mutex<Vec<(Vec<u8>, u64, bool)>>>;

/// Waits until every message [`produce`] stored ran on B (`handled`) or on
/// the member that stalled (`runs`).
async fn until_all_ran(handled: &Deliveries, runs: &Runs, keys: usize, per_key: usize) {
    wait_until(
        Duration::from_secs(25),
        "every stored message handled",
        || {
            let (handled, runs) = (handled.clone(), runs.clone());
            async move {
                let handled = handled.lock().unwrap();
                let runs = runs.lock().unwrap();
                produced(keys, per_key)
                    .iter()
                    .all(|p| handled.contains_key(p) || runs.iter().any(|(r, _, _)| r == p))
            }
        },
    )
    .await;
}

/// A member whose whole process stops for longer than the handover timeout
/// (a virtual machine paused, a long garbage collection, SIGSTOP) while it
/// holds messages: its first handler blocks the thread of the member's own
/// runtime, so its scheduler, its pulls and its membership announcements
/// stop with it. The group takes the partition meanwhile and runs what the
/// stalled member held. When the member comes back, the messages it had
/// been handed but had not started must not run there as first deliveries:
/// another member ran them already. Only the handler that was running when
/// the process stopped finishes (nothing can stop it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_from_a_stall_runs_nothing_it_held_before() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("stall", StationConfig::default())
        .await
        .unwrap();
    let (keys, per_key) = (5, 10);
    produce(&client, "stall", keys, per_key).await;
    let options = fast().ack_wait(Duration::from_secs(60)).concurrency(4);
    let stall = Duration::from_secs(5);

    // Member A, on a runtime of its own thread.
    let runs: Runs = Arc::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (resumed_tx, resumed) = tokio::sync::oneshot::channel::<std::time::Instant>();
    let stalling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a_thread = {
        let (runs, stalling) = (runs.clone(), stalling.clone());
        member_on_own_thread(
            server.url(),
            "stall",
            options.clone(),
            move |a| async move {
                let resumed_tx = Mutex::new(Some(resumed_tx));
                let consuming = a.consume(move |m| {
                    let runs = runs.clone();
                    let first = runs.lock().unwrap().is_empty();
                    if first {
                        stalling.store(true, std::sync::atomic::Ordering::SeqCst);
                        // The stall itself, not a wait: it stops the
                        // member's whole runtime until it returns.
                        std::thread::sleep(stall);
                    }
                    let after = first || resumed_tx.lock().unwrap().is_none();
                    if let Some(tx) = resumed_tx.lock().unwrap().take().filter(|_| first) {
                        let _ = tx.send(std::time::Instant::now());
                    }
                    runs.lock()
                        .unwrap()
                        .push((m.payload.to_vec(), m.deliveries, after));
                    async { Ok::<(), String>(()) }
                });
                tokio::select! {
                    _ = consuming => {}
                    _ = stopped => {}
                }
                a.close().await.unwrap();
            },
        )
    };

    // Member B joins once A runs, and takes the partition while A stalls.
    wait_until(Duration::from_secs(20), "member A stalling", || {
        let stalling = stalling.clone();
        async move { stalling.load(std::sync::atomic::Ordering::SeqCst) }
    })
    .await;
    let b = Takeover::join(&server, &client, "stall", options).await;
    let handled = b.handled.clone();
    let resumed = tokio::time::timeout(Duration::from_secs(20), resumed)
        .await
        .expect("member A comes back from its stall")
        .unwrap();
    until_all_ran(&handled, &runs, keys, per_key).await;
    // Not a wait for a condition: the test checks that A runs nothing it
    // should not, so A gets a second after B caught up to do so.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    b.finish().await;
    a_thread.join().unwrap();

    let runs = runs.lock().unwrap();
    let handled = handled.lock().unwrap();
    let stalled = &runs[0].0;
    assert!(
        handled.contains_key(stalled),
        "B ran the message A was running when it stalled"
    );
    // Every run but the first, which went on through the stall (above).
    for (payload, deliveries, after) in runs.iter().skip(1) {
        assert!(
            !*after || *deliveries > 1 || !handled.contains_key(payload),
            "{} ran again on the stalled member as a first delivery after B ran it",
            String::from_utf8_lossy(payload)
        );
    }
    println!(
        "A ran {} messages before its stall of {stall:?}, {} after (back {:?} ago); B ran {}",
        runs.iter().filter(|r| !r.2).count(),
        runs.iter().filter(|r| r.2).count() - 1,
        resumed.elapsed(),
        handled.len()
    );
}

/// A member stalls for long enough that the group gives its partitions to
/// the other member, and comes back a moment after, before that member
/// could commit anything of them: the broker still counts what the stalled
/// member held as delivered to it, and an acknowledgement of later messages
/// would acknowledge those too. Taking its partitions back at once made the
/// other member give its finished work back, and the returning member ran
/// it again (flagged). Nothing B ran may run again on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_done_while_a_member_stalled_is_not_done_again_after_its_return() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("back", StationConfig::default().partitions(4))
        .await
        .unwrap();
    // Before nats-server 2.14 there is no consumer reset: what A held comes
    // back to B only after ack_wait, so the wait is short there.
    let version = client.server_version();
    let has_reset = !(version.starts_with("2.12.") || version.starts_with("2.13."));
    let ack_wait = Duration::from_secs(if has_reset { 60 } else { 5 });
    let options = fast().ack_wait(ack_wait).concurrency(4);

    // Member A, on a runtime of its own thread: its first handler blocks
    // that thread until the test lets it go.
    let runs: Runs = Arc::default();
    let (stalling_tx, stalling) = tokio::sync::oneshot::channel::<()>();
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let a_thread = {
        let runs = runs.clone();
        member_on_own_thread(server.url(), "back", options.clone(), move |a| async move {
            let stall = Mutex::new(Some((stalling_tx, resumed)));
            let consuming = a.consume(move |m| {
                let first = stall.lock().unwrap().take();
                let stalled = first.is_some();
                if let Some((stalling_tx, resumed)) = first {
                    let _ = stalling_tx.send(());
                    // The stall itself: it stops the member's whole runtime
                    // until the test lets it go.
                    let _ = resumed.recv_timeout(Duration::from_secs(30));
                }
                let mut runs = runs.lock().unwrap();
                let back = stalled || runs.first().is_some_and(|r| r.2);
                runs.push((m.payload.to_vec(), m.deliveries, back));
                async { Ok::<(), String>(()) }
            });
            tokio::select! {
                _ = consuming => {}
                _ = stopped => {}
            }
            a.close().await.unwrap();
        })
    };

    // Member B, whose handlers take 5 ms each.
    let b_client = connect(&server).await;
    let b = b_client.consumer("back", "g", options).await.unwrap();
    let handled = Deliveries::default();
    let b_task = {
        let (b, handled) = (b.clone(), handled.clone());
        tokio::spawn(async move {
            b.consume(move |m| {
                let handled = handled.clone();
                async move {
                    // The handler's work, as a database write would take:
                    // B runs A's partitions for a while before A is back.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let mut handled = handled.lock().unwrap();
                    let deliveries = handled.entry(m.payload.to_vec()).or_default();
                    *deliveries = (*deliveries).max(m.deliveries);
                    Ok::<(), String>(())
                }
            })
            .await
        })
    };
    until_owning(&b, 2).await;

    let (keys, per_key) = (20, 50);
    produce(&client, "back", keys, per_key).await;
    // Without a reset, B gets none of what A had been handed before
    // ack_wait: new messages on every partition are what the broker serves
    // it once A's pin expired.
    let producer = client
        .producer("back", ProducerOptions::default())
        .await
        .unwrap();
    let trickling = tokio::spawn(trickle(producer, if has_reset { 0 } else { 400 }, 8));
    tokio::time::timeout(Duration::from_secs(20), stalling)
        .await
        .expect("member A runs a message")
        .unwrap();
    until_owning(&b, 4).await;
    let taken = handled.lock().unwrap().len();
    // A comes back as soon as B runs A's partitions, as when a freeze ends
    // soon after the group moved on.
    wait_until(Duration::from_secs(10), "B running A's partitions", || {
        let handled = handled.clone();
        async move { handled.lock().unwrap().len() > taken }
    })
    .await;
    let _ = resume.send(());
    let ran_meanwhile = handled.lock().unwrap().len() - taken;
    // Back, A stands by and owns nothing, as the group's stats say.
    wait_until(Duration::from_secs(10), "A standing by", || {
        let client = client.clone();
        async move {
            let groups = client.groups("back").await.unwrap();
            groups
                .iter()
                .flat_map(|g| &g.members)
                .any(|m| m.standby && m.partitions.is_empty())
        }
    })
    .await;
    until_all_ran(&handled, &runs, keys, per_key).await;
    // A is back in the assignment, and B handed its partitions over.
    until_owning(&b, 2).await;
    trickling.abort();
    let _ = stop.send(());
    b.close().await.unwrap();
    b_task.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || a_thread.join().unwrap())
        .await
        .unwrap();

    let runs = runs.lock().unwrap();
    let handled = handled.lock().unwrap();
    // A's first run went on through the stall: nothing could stop it.
    let again: Vec<String> = runs
        .iter()
        .skip(1)
        .filter(|(payload, _, back)| *back && handled.contains_key(payload))
        .map(|(payload, _, _)| String::from_utf8_lossy(payload).into_owned())
        .collect();
    println!(
        "B ran {ran_meanwhile} messages between taking A's partitions and A's return; \
         A ran {} after it",
        runs.iter().filter(|r| r.2).count() - 1
    );
    assert!(ran_meanwhile > 0, "B ran A's partitions before A came back");
    // Without a consumer reset B gets what A held only after ack_wait, and
    // gives its work back when A's standby ends first; what runs again is
    // flagged, as any redelivery.
    if !has_reset {
        // Skipping A's first run again: it went on through the stall.
        assert!(
            runs.iter()
                .skip(1)
                .all(|(p, d, back)| !*back || *d > 1 || !handled.contains_key(p)),
            "a message B ran ran again on A as a first delivery"
        );
        return;
    }
    assert!(
        again.is_empty(),
        "{} messages B ran ran again on A after its return: {again:?}",
        again.len()
    );
}

/// The hand-over a binding adds: its language takes a delivery on its own
/// event loop, some time after the core handed it out. A member's process
/// that stops in between (here: its runtime's thread blocks for longer
/// than the handover timeout) comes back holding a delivery the group has
/// run elsewhere meanwhile. Asked right before the handler would start, the
/// delivery says it is no longer this member's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_taken_before_a_stall_is_not_claimed_after_it() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .create_station("claim", StationConfig::default())
        .await
        .unwrap();
    produce(&client, "claim", 1, 3).await;
    let options = fast().ack_wait(Duration::from_secs(60));
    let stall = Duration::from_secs(5);

    // Member A, on a runtime of its own thread: it takes a delivery and does
    // not run it before its stall.
    let (stalling_tx, stalling) = tokio::sync::oneshot::channel::<()>();
    let a_thread = member_on_own_thread(
        server.url(),
        "claim",
        options.clone(),
        move |a| async move {
            let first = a.next().await.unwrap().unwrap();
            let before = first.claim_now();
            let _ = stalling_tx.send(());
            // The stall itself, not a wait: it stops the member's whole
            // runtime until it returns.
            std::thread::sleep(stall);
            let right_after = first.claim_now();
            let claimed = first.claim().await;
            let payload = first.payload.to_vec();
            drop(first);
            a.close().await.unwrap();
            (before, right_after, claimed, payload)
        },
    );

    // Member B joins while A stalls, and takes the partition.
    tokio::time::timeout(Duration::from_secs(20), stalling)
        .await
        .expect("member A takes a delivery")
        .unwrap();
    let b = Takeover::join(&server, &client, "claim", options).await;
    let handled = b.handled.clone();
    let a_thread = tokio::task::spawn_blocking(move || a_thread.join().unwrap());
    let (before, right_after, claimed, payload) =
        tokio::time::timeout(Duration::from_secs(30), a_thread)
            .await
            .expect("member A comes back from its stall and closes")
            .unwrap();
    wait_until(Duration::from_secs(20), "B runs the message A held", || {
        let (handled, payload) = (handled.clone(), payload.clone());
        async move { handled.lock().unwrap().contains_key(&payload) }
    })
    .await;
    b.finish().await;

    assert_eq!(before, Some(true), "before the stall the delivery is A's");
    assert_ne!(
        right_after,
        Some(true),
        "right after the stall A may not run it before it asked the broker"
    );
    assert!(!claimed, "B took the partition: A must not run the message");
}

/// One run of a handler.
struct Run {
    member: char,
    partition: u32,
    payload: Vec<u8>,
    deliveries: u64,
    started: std::time::Instant,
}

/// Every run of the handlers of a group's members.
type Timeline = Arc<Mutex<Vec<Run>>>;

/// Runs `member`'s handler loop in a task; each handler notes its start in
/// `timeline`, then works `work`, as a database write would.
fn timed(
    name: char,
    member: &jetstation::Consumer,
    timeline: &Timeline,
    work: Duration,
) -> tokio::task::JoinHandle<jetstation::Result<()>> {
    let (member, timeline) = (member.clone(), timeline.clone());
    tokio::spawn(async move {
        member
            .consume(move |m| {
                timeline.lock().unwrap().push(Run {
                    member: name,
                    partition: m.partition,
                    payload: m.payload.to_vec(),
                    deliveries: m.deliveries,
                    started: std::time::Instant::now(),
                });
                async move {
                    // The handler's own work, not a wait for a condition.
                    tokio::time::sleep(work).await;
                    Ok::<(), String>(())
                }
            })
            .await
    })
}

/// A member cut off from the broker (its network path goes silent, no
/// socket closes) keeps running, and holds a backlog the broker delivered
/// to it. The group gives its partition to another member a handover
/// timeout later, and the broker delivers the backlog there again. The
/// cut-off member must stop starting handlers before the broker can move
/// its pin: otherwise one message runs on both members at once, a key's
/// later message runs on one before its earlier one finished on the other,
/// and a run on the cut-off member after the other's is a first delivery
/// that exactly once does not look up. When the network comes back, the
/// member runs nothing again as a first delivery. The shortest handover
/// timeout (1 s) is the tightest case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_from_the_broker_starts_nothing_after_the_group_moved_on() {
    let server = NatsServer::start();
    let relay = jetstation_harness::Relay::start(server.port());
    let client = connect(&server).await;
    client
        .create_station("cutoff", StationConfig::default().partitions(2))
        .await
        .unwrap();
    let (keys, per_key) = (10, 200);
    produce(&client, "cutoff", keys, per_key).await;
    let options = ConsumerOptions::default()
        .handover_timeout(Duration::from_secs(1))
        .ack_wait(Duration::from_secs(60))
        .concurrency(4);
    let work = Duration::from_millis(10);
    let timeline = Timeline::default();
    let runs_of = |timeline: &Timeline, member: char| {
        timeline
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.member == member)
            .count()
    };

    let a_client = connect_through(&relay).await;
    let a = a_client
        .consumer("cutoff", "g", options.clone())
        .await
        .unwrap();
    let a_task = timed('A', &a, &timeline, work);
    // B stands by in the group, with a partition of its own.
    let b_client = connect(&server).await;
    let b = b_client.consumer("cutoff", "g", options).await.unwrap();
    let b_task = timed('B', &b, &timeline, work);
    until_owning(&a, 1).await;
    until_owning(&b, 1).await;
    let before = runs_of(&timeline, 'A');
    wait_until(
        Duration::from_secs(20),
        "member A running its partition",
        || {
            let timeline = timeline.clone();
            async move { runs_of(&timeline, 'A') >= before + 50 }
        },
    )
    .await;
    let a_partition = a
        .health()
        .await
        .unwrap()
        .iter()
        .find(|p| p.owned)
        .unwrap()
        .partition;
    relay.silence();
    let cut = std::time::Instant::now();
    let stored = produced(keys, per_key);
    let all_run = |timeline: &Timeline, payloads: &[Vec<u8>]| {
        let timeline = timeline.lock().unwrap();
        let ran: HashSet<&[u8]> = timeline.iter().map(|r| r.payload.as_slice()).collect();
        payloads.iter().all(|p| ran.contains(p.as_slice()))
    };
    wait_until(Duration::from_secs(40), "every message run", || {
        let (timeline, stored) = (timeline.clone(), stored.clone());
        async move { all_run(&timeline, &stored) }
    })
    .await;
    // Not a wait for a condition: the test checks that A starts nothing it
    // should not, so A gets a second after the group ran everything.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The network comes back, and new messages come.
    relay.speak();
    let spoke = std::time::Instant::now();
    let producer = client
        .producer("cutoff", ProducerOptions::default())
        .await
        .unwrap();
    trickle(producer, 60, 4).await;
    let trickled: Vec<Vec<u8>> = (0..60)
        .map(|i| format!("trickle-{i}").into_bytes())
        .collect();
    wait_until(Duration::from_secs(40), "every new message run", || {
        let (timeline, trickled) = (timeline.clone(), trickled.clone());
        async move { all_run(&timeline, &trickled) }
    })
    .await;
    // Not a wait for a condition either: A gets a second more, after the
    // new messages ran, to run anything it should not.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (member, task) in [(a, a_task), (b, b_task)] {
        member.close().await.unwrap();
        task.await.unwrap().unwrap();
    }

    let timeline = timeline.lock().unwrap();
    // Every run of a message after its first must say it is a redelivery.
    let mut seen = HashSet::new();
    let unflagged: Vec<String> = timeline
        .iter()
        .filter(|r| !seen.insert(r.payload.as_slice()) && r.deliveries == 1)
        .map(|r| format!("{} on {}", String::from_utf8_lossy(&r.payload), r.member))
        .collect();
    let cut_off: Vec<&Run> = timeline
        .iter()
        .filter(|r| r.member == 'A' && r.started >= cut && r.started < spoke)
        .collect();
    let taken_over = timeline
        .iter()
        .find(|r| r.member == 'B' && r.partition == a_partition && r.started >= cut)
        .map(|r| r.started.duration_since(cut));
    let stopped = cut_off
        .last()
        .map_or(Duration::ZERO, |r| r.started.duration_since(cut));
    println!(
        "A started {} runs after the cut, the last {stopped:?} after it; B started A's partition \
         {taken_over:?} after it; after the network came back A ran {} and B {}",
        cut_off.len(),
        timeline
            .iter()
            .filter(|r| r.member == 'A' && r.started >= spoke)
            .count(),
        timeline
            .iter()
            .filter(|r| r.member == 'B' && r.started >= spoke)
            .count(),
    );
    assert!(
        unflagged.is_empty(),
        "{} messages ran again as first deliveries: {:?}",
        unflagged.len(),
        &unflagged[..unflagged.len().min(5)]
    );
    // The broker may give the pin to another pull a handover timeout after
    // the last request of A's pull arrived, and requests leave every third of
    // it (every half second at least): half a second after the cut, at the
    // earliest. A must have stopped by then, whatever the other member does.
    assert!(
        stopped < Duration::from_millis(500),
        "the cut-off member started a handler {stopped:?} after the cut, when its pin may have moved"
    );
}
