//! The Rust producer and member processes of the chaos suite. Each writes
//! one JSON line per event to `CHAOS_HISTORY`, with one `write` per line on
//! a file opened for appending, so a SIGKILL loses at most the line being
//! written, never corrupts an earlier one.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{StreamExt, stream::FuturesUnordered};
use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, ProducerOptions};
use serde_json::json;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run through `chaos run`)"))
}

fn var_u64(name: &str) -> u64 {
    var(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

struct History(Mutex<File>);

impl History {
    fn open() -> Self {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(var("CHAOS_HISTORY"))
            .expect("history file");
        Self(Mutex::new(file))
    }

    fn write(&self, mut record: serde_json::Value) {
        record["t"] = json!(now());
        let mut line = record.to_string();
        line.push('\n');
        let _ = self.0.lock().unwrap().write_all(line.as_bytes());
    }
}

/// Core log events on stderr (the worker's log file), at `JETSTATION_LOG`
/// (default `warn`).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JETSTATION_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

async fn connect() -> Client {
    init_tracing();
    let urls: Vec<String> = var("CHAOS_URLS").split(',').map(String::from).collect();
    let options = ConnectOptions::with_urls(urls)
        .request_timeout(Duration::from_secs(5))
        .max_reconnect_delay(Duration::from_millis(500));
    loop {
        match Client::connect(options.clone()).await {
            Ok(c) => return c,
            Err(e) => {
                eprintln!("chaos worker: cannot connect yet: {e}");
                // Retry interval while the cluster is down at start-up.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Sends `CHAOS_RATE` messages per second over `CHAOS_KEYS` keys for
/// `CHAOS_DURATION` seconds, then waits for every result.
pub(crate) async fn produce() -> i32 {
    let history = History::open();
    let client = connect().await;
    let station = var("CHAOS_STATION");
    let partitions = var_u64("CHAOS_PARTITIONS") as u32;
    let keys = var_u64("CHAOS_KEYS") as usize;
    let rate = var_u64("CHAOS_RATE");
    let duration = Duration::from_secs(var_u64("CHAOS_DURATION"));
    let producer = client
        .producer(
            &station,
            ProducerOptions::default().delivery_timeout(Duration::from_secs(60)),
        )
        .await
        .expect("producer");
    let mut pending = FuturesUnordered::new();
    let started = tokio::time::Instant::now();
    let tick = Duration::from_millis(20);
    let per_tick = (rate * tick.as_millis() as u64 / 1000).max(1);
    let mut ticker = tokio::time::interval(tick);
    let mut i: u64 = 0;
    while started.elapsed() < duration {
        tokio::select! {
            _ = ticker.tick() => {
                for _ in 0..per_tick {
                    let k = (i as usize) % keys;
                    let n = i / keys as u64;
                    let key = format!("k{k}");
                    let payload = json!({"key": key, "n": n}).to_string();
                    let partition = jetstation::names::partition_of(&key, partitions);
                    let sent = now();
                    match producer.enqueue(Message::new(payload).key(key.clone())).await {
                        Ok(handle) => pending.push(async move {
                            (Sent { i, key, n, partition, at: sent }, handle.await)
                        }),
                        Err(e) => history.write(json!({"ev": "send", "i": i, "key": key, "n": n,
                            "partition": partition, "ok": false, "error": e.kind().as_str(),
                            "sent": sent})),
                    }
                    i += 1;
                }
            }
            Some((sent, result)) = pending.next() => record_send(&history, sent, result),
        }
    }
    while let Some((sent, result)) = pending.next().await {
        record_send(&history, sent, result);
    }
    let _ = producer.close().await;
    0
}

/// One message the producer enqueued: its place in the flow, its key and
/// number within the key, its partition, and when it was enqueued.
struct Sent {
    i: u64,
    key: String,
    n: u64,
    partition: u32,
    at: f64,
}

fn record_send(history: &History, s: Sent, result: jetstation::Result<jetstation::Receipt>) {
    match result {
        Ok(r) => history.write(json!({"ev": "send", "i": s.i, "key": s.key, "n": s.n,
            "partition": r.partition, "ok": true, "seq": r.sequence, "msg_id": r.msg_id,
            "duplicate": r.duplicate, "sent": s.at})),
        Err(e) => history.write(json!({"ev": "send", "i": s.i, "key": s.key, "n": s.n,
            "partition": s.partition, "ok": false, "error": e.kind().as_str(),
            "message": e.message(), "sent": s.at})),
    }
}

/// A group member that records every message it handles, until killed.
pub(crate) async fn consume() -> i32 {
    let history = std::sync::Arc::new(History::open());
    let member = var("CHAOS_MEMBER");
    history.write(json!({"ev": "start", "member": member, "pid": std::process::id()}));
    let client = connect().await;
    let options = ConsumerOptions::default()
        .concurrency(16)
        .ack_wait(Duration::from_millis(var_u64("CHAOS_ACK_WAIT_MS")))
        .handover_timeout(Duration::from_millis(var_u64("CHAOS_HANDOVER_MS")))
        .exactly_once(std::env::var("CHAOS_EXACTLY_ONCE").is_ok_and(|v| v == "1"));
    let consumer = loop {
        match client
            .consumer(&var("CHAOS_STATION"), &var("CHAOS_GROUP"), options.clone())
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                eprintln!("chaos member: cannot join yet: {e}");
                // Retry interval while the cluster elects leaders at start-up.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    // The member's own view, every 2 s, to read beside the checker's verdict.
    let watcher = {
        let (consumer, history, member) = (consumer.clone(), history.clone(), member.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(parts) = consumer.health().await {
                    let parts: Vec<_> = parts
                        .iter()
                        .filter(|p| p.owned)
                        .map(|p| {
                            json!({"partition": p.partition, "in_sync": p.in_sync,
                            "held": p.held, "undelivered": p.undelivered,
                            "last_error": p.last_error})
                        })
                        .collect();
                    history.write(json!({"ev": "health", "member": member, "partitions": parts}));
                }
                // The period of the member's health records.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let h = history.clone();
    let handler_ms = var_u64("CHAOS_HANDLER_MS");
    let result = consumer
        .consume(move |m| {
            let h = h.clone();
            let member = member.clone();
            async move {
                let started = now();
                // A handler's own work (a database write, say), so that a
                // member holds messages when a fault hits it.
                tokio::time::sleep(Duration::from_millis(handler_ms)).await;
                let body: serde_json::Value =
                    serde_json::from_slice(&m.payload).unwrap_or_default();
                h.write(json!({"ev": "handled", "member": member, "key": m.key,
                    "n": body["n"], "partition": m.partition, "seq": m.sequence,
                    "msg_id": m.msg_id, "deliveries": m.deliveries,
                    "redelivered": m.deliveries > 1, "started": started}));
                Ok::<(), String>(())
            }
        })
        .await;
    watcher.abort();
    if let Err(e) = result {
        eprintln!("chaos member: consume ended: {e}");
        return 1;
    }
    0
}
