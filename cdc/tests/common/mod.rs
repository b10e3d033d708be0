//! What every CDC test needs: a real PostgreSQL with logical replication, a
//! real nats-server, SQL, and a reader of what reached a station.

#![allow(dead_code, unreachable_pub)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use jetstation::{Client, ConnectOptions, ConsumerOptions, StartPosition};
use jetstation_harness::{NatsServer, Postgres};
use serde_json::Value;

pub struct World {
    pub pg: Postgres,
    pub nats: NatsServer,
    pub client: Client,
}

impl World {
    pub async fn start() -> Self {
        let pg = Postgres::start();
        let nats = NatsServer::start();
        let client = Client::connect(ConnectOptions::new(nats.url()))
            .await
            .expect("connect to nats");
        let admin = sql(&pg.url("postgres")).await;
        for db in ["source", "target"] {
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .expect("create database");
        }
        Self { pg, nats, client }
    }

    pub fn source_url(&self) -> String {
        self.pg.url("source")
    }

    pub fn target_url(&self) -> String {
        self.pg.url("target")
    }
}

/// A SQL connection (the connection task runs in the background).
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await; // retry interval while PostgreSQL (re)starts; the deadline bounds it
            }
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }
}

/// Every change that reached `station`, in arrival order per key, read by a
/// group of its own until `count` arrived (or panics with what is missing).
pub async fn read_changes(
    client: &Client,
    station: &str,
    count: usize,
    within: Duration,
) -> Vec<Value> {
    let group = format!("reader-{}", nuid_like());
    eventually(&format!("station {station}"), within, || async {
        client.station(station).await.is_ok()
    })
    .await;
    let consumer = client
        .consumer(
            station,
            &group,
            ConsumerOptions::default()
                .start(StartPosition::Earliest)
                .concurrency(256),
        )
        .await
        .expect("consumer");
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                let mut v: Value = serde_json::from_slice(&d.payload).expect("JSON change");
                v["_key"] = d.key.clone().map_or(Value::Null, Value::String);
                v["_partition"] = d.partition.into();
                v["_sequence"] = d.sequence.into();
                out.push(v);
                d.ack().expect("ack");
            }
            _ => panic!(
                "{station}: {} of {count} changes arrived within {within:?}",
                out.len()
            ),
        }
    }
    let _ = consumer.close().await;
    let _ = client.delete_group(station, &group).await;
    out
}

fn nuid_like() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Changes grouped by key, each key's in station order (partition sequence).
pub fn by_key(changes: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut sorted = changes.to_vec();
    sorted.sort_by_key(|c| (c["_partition"].as_u64(), c["_sequence"].as_u64()));
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for c in sorted {
        map.entry(c["_key"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(c);
    }
    map
}

/// A change's position: (commit LSN, index).
pub fn position(c: &Value) -> (u64, u64) {
    let lsn = c["lsn"].as_str().unwrap();
    let (hi, lo) = lsn.split_once('/').unwrap();
    (
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap(),
        c["index"].as_u64().unwrap(),
    )
}

/// Waits until `check` holds, polling.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval; the deadline above bounds the wait
    }
}

/// The rows of a table as text, ordered by the first column.
pub async fn rows(pg: &tokio_postgres::Client, query: &str) -> Vec<Vec<Option<String>>> {
    pg.query(query, &[])
        .await
        .expect("query")
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

/// A capture or a sink running in the background until `stop`.
pub struct Task {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<jetstation::Result<()>>,
}

impl Task {
    pub fn sink(client: &Client, options: jetstation_cdc::SinkOptions) -> Self {
        let client = client.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            jetstation_cdc::sink::run(&client, &options, async {
                let _ = stopped.await;
            })
            .await
        });
        Self { stop, handle }
    }

    pub fn capture(client: &Client, options: jetstation_cdc::CaptureOptions) -> Self {
        let client = client.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            jetstation_cdc::capture::run(&client, &options, async {
                let _ = stopped.await;
            })
            .await
        });
        Self { stop, handle }
    }

    /// Stops it and returns how it ended.
    pub async fn stop(self) -> jetstation::Result<()> {
        let _ = self.stop.send(());
        self.handle.await.expect("the task panicked")
    }
}

/// Waits until replication slot `slot` exists.
pub async fn slot_created(pg: &tokio_postgres::Client, slot: &str) {
    eventually(&format!("slot {slot}"), Duration::from_secs(60), || async {
        pg.query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("query")
        .is_some()
    })
    .await;
}

/// Waits until the capture reported to PostgreSQL every change written so
/// far (the slot's confirmed position reached the current WAL position): from
/// then on a restart resends nothing, so no repeat can still arrive.
pub async fn all_reported(pg: &tokio_postgres::Client, slot: &str) {
    let now: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("query")
        .get(0);
    eventually(&format!("slot {slot} to confirm {now}"), Duration::from_secs(60), || async {
        pg.query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn >= $2::text::pg_lsn",
            &[&slot, &now],
        )
        .await
        .expect("query")
        .is_some()
    })
    .await;
}
