//! Produce and consume in the shapes production runs, on one node (R1) and
//! on a 3-node cluster (R3), each started here on loopback:
//! `shapes <count>`. Per setup: raw async-nats (pipelined publishes, window
//! 1,024; a pull consumer acknowledging each message) beside jetstation with
//! one producer on 1, 4 and 64 partitions, four producers (four connections)
//! sharing one station of 4 partitions, and consumer groups (plain and
//! exactly once) reading them back. 256 B messages, 100 keys (10,000 keys
//! on 64 partitions), file storage. Prints one JSON line per measurement.
//! Run by `scripts/bench-shapes.sh`.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::{StreamExt, stream::FuturesUnordered};
use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};
use jetstation_bench::handle_count;
use jetstation_harness::{Cluster, NatsServer};

const SIZE: usize = 256;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Setup {
    name: &'static str,
    urls: Vec<String>,
    replicas: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    {
        let server = NatsServer::start();
        let setup = Setup {
            name: "single node, R1",
            urls: vec![server.url()],
            replicas: 1,
        };
        run(&setup, count).await?;
    }
    {
        let cluster = Cluster::start(3);
        let setup = Setup {
            name: "3-node cluster, R3",
            urls: cluster.urls(),
            replicas: 3,
        };
        run(&setup, count).await?;
    }
    Ok(())
}

async fn connect(setup: &Setup) -> Result<Client> {
    // A fresh cluster answers once its meta leader is elected.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let options =
            ConnectOptions::with_urls(setup.urls.clone()).request_timeout(Duration::from_secs(10));
        match Client::connect(options).await {
            Ok(client) => return Ok(client),
            Err(_) if Instant::now() < deadline => {
                // Retry interval while the cluster elects its leaders; bounded by the deadline.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn run(setup: &Setup, count: usize) -> Result<()> {
    let client = connect(setup).await?;
    let addresses = setup
        .urls
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let raw = async_nats::connect(addresses).await?;
    let js = jetstream::new(raw);

    let rate = raw_produce(&js, setup, count).await?;
    report(
        setup,
        "produce",
        "async-nats (raw)",
        "pipelined, window 1024",
        rate,
    );
    let rate = raw_consume(&js, "shape-raw", count).await?;
    js.delete_stream("shape-raw").await?;
    report(setup, "consume", "async-nats (raw)", RAW_CONSUME, rate);

    for (station, partitions, keys, producers) in [
        ("shape-1", 1, 100, 1),
        ("shape-4", 4, 100, 1),
        ("shape-4x4", 4, 100, 4),
        ("shape-64", 64, 10_000, 1),
    ] {
        let config = StationConfig::default()
            .partitions(partitions)
            .replicas(setup.replicas);
        let _ = client.delete_station(station).await;
        client.create_station(station, config).await?;
        let rate = produce(setup, station, count, keys, producers).await?;
        let mode = match producers {
            1 => format!("1 producer, {}, {keys} keys", partitions_label(partitions)),
            n => format!(
                "{n} producers, {}, {keys} keys",
                partitions_label(partitions)
            ),
        };
        report(setup, "produce", "jetstation (Rust)", &mode, rate);
        if partitions == 1 {
            // The same reader on the messages the group reads (they carry
            // the headers the producer sent, which the server stores), in
            // turns with the group: a read of 100,000 messages lasts half a
            // second, and one of each per run is at the mercy of a moment.
            for _ in 0..SAME_MESSAGES_TURNS {
                let rate = raw_consume(&js, "JST__shape-1__P0", count).await?;
                report(setup, "consume", "async-nats (raw)", RAW_ON_STATION, rate);
                let rate = consume(&client, station, count, false).await?;
                report(setup, "consume", "jetstation (Rust)", GROUP_ON_ONE, rate);
            }
        }
        if producers == 1 && partitions == 64 {
            let rate = consume(&client, station, count, false).await?;
            let mode = format!("group, {}, {keys} keys", partitions_label(partitions));
            report(setup, "consume", "jetstation (Rust)", &mode, rate);
        }
        if partitions == 1 {
            let rate = consume(&client, station, count, true).await?;
            let mode = "group, exactly once, 1 partition, 100 keys";
            report(setup, "consume", "jetstation (Rust)", mode, rate);
        }
        client.delete_station(station).await?;
    }
    Ok(())
}

fn report(setup: &Setup, direction: &str, client: &str, mode: &str, rate: f64) {
    println!(
        "{{\"setup\":\"{}\",\"direction\":\"{direction}\",\"client\":\"{client}\",\"mode\":\"{mode}\",\"rate\":{rate:.0}}}",
        setup.name
    );
}

async fn raw_produce(js: &jetstream::Context, setup: &Setup, count: usize) -> Result<f64> {
    let _ = js.delete_stream("shape-raw").await;
    js.create_stream(stream::Config {
        name: "shape-raw".into(),
        subjects: vec!["shape-raw.>".into()],
        num_replicas: setup.replicas,
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; SIZE]);
    let subjects: Vec<String> = (0..100).map(|k| format!("shape-raw.k{k}")).collect();
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..count {
        if in_flight.len() >= 1024 {
            in_flight.next().await.unwrap()?;
        }
        let ack = js
            .publish(subjects[i % 100].clone(), payload.clone())
            .await?;
        in_flight.push(ack.into_future());
    }
    while let Some(ack) = in_flight.next().await {
        ack?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The raw reader's rows: on raw publishes (no headers), and on the
/// station's one partition (the messages the group reads).
const RAW_CONSUME: &str = "pull consumer, ack per message";
/// The group's row on the 1-partition station.
const GROUP_ON_ONE: &str = "group, 1 partition, 100 keys";
/// How many times per run the raw reader and the group each read the
/// 1-partition station, in turns.
const SAME_MESSAGES_TURNS: usize = 3;
const RAW_ON_STATION: &str = "the same, on the group's messages (1 partition)";

/// Reads `count` messages of `stream` with a durable pull consumer,
/// acknowledging each one; the consumer is deleted afterwards.
async fn raw_consume(js: &jetstream::Context, stream: &str, count: usize) -> Result<f64> {
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4096,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .messages()
        .await?;
    let mut read = 0;
    while read < count {
        let m = messages.next().await.ok_or("the raw consumer ended")??;
        m.ack().await.map_err(|e| e.to_string())?;
        read += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    stream.delete_consumer("raw").await?;
    Ok(rate)
}

/// `producers` producers, each on a connection of its own, send `count`
/// messages between them; the rate is of all of them together.
async fn produce(
    setup: &Setup,
    station: &str,
    count: usize,
    keys: usize,
    producers: usize,
) -> Result<f64> {
    let mut clients = Vec::new();
    for _ in 0..producers {
        let client = connect(setup).await?;
        let producer = client.producer(station, Default::default()).await?;
        clients.push((client, producer));
    }
    let payload = bytes::Bytes::from(vec![b'x'; SIZE]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, (_, producer)) in clients.iter().enumerate() {
        let (producer, payload) = (producer.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in (n..count).step_by(producers) {
                let m = Message::new(payload.clone()).key(format!("k{}", i % keys));
                handles.push(producer.enqueue(m).await?);
            }
            for h in handles {
                h.await?;
            }
            Ok::<(), jetstation::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    for (client, _) in clients {
        client.close().await?;
    }
    Ok(rate)
}

async fn consume(client: &Client, station: &str, count: usize, exactly_once: bool) -> Result<f64> {
    let group = format!("shape-{exactly_once}");
    let options = ConsumerOptions::default()
        .concurrency(16)
        .exactly_once(exactly_once);
    let consumer = client.consumer(station, &group, options).await?;
    let started = Instant::now();
    let worker = handle_count(&consumer, count).await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    consumer.close().await?;
    worker.await??;
    client.delete_group(station, &group).await?;
    Ok(rate)
}

fn partitions_label(n: u32) -> String {
    match n {
        1 => "1 partition".into(),
        n => format!("{n} partitions"),
    }
}
