//! End-to-end latency (send to handler), side by side at the same offered
//! load: `latency <url> <seconds>`. First measures jetstation's maximum
//! end-to-end rate (an unpaced burst through a producer and a consumer group),
//! then sends at half that rate, `<seconds>` per path in slices of one second
//! that take turns (the order rotates every cycle), so that every path meets
//! the same moments of the machine, after one slice per path that is not
//! counted (new streams, consumers and connections warm up): raw async-nats (acked publishes, pull
//! consumer, explicit acks); jetstation (producer, consumer group); and, to
//! split the two, a jetstation producer's station read by a raw pull consumer,
//! and raw async-nats publishes into a station read by a jetstation group;
//! and raw async-nats again with the pull consumer pinned to its reader, as
//! a group's consumers are (the broker's priority policy `pinned_client`);
//! and raw async-nats publishing messages that carry the two headers a
//! jetstation message has (`Jst-Id` and `Jst-Key`), read as the raw path is:
//! what carrying headers costs async-nats and the broker.
//! Each payload carries its send time. Prints one JSON line per reader with p50/p99 in
//! milliseconds. Run by `scripts/bench-consume.sh`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};

const SIZE: usize = 256;
/// The priority group of the pinned raw reader.
const PIN_GROUP: &str = "latency";

fn stamped(origin: Instant) -> bytes::Bytes {
    let mut payload = vec![b'x'; SIZE];
    payload[..16].copy_from_slice(&origin.elapsed().as_nanos().to_le_bytes());
    bytes::Bytes::from(payload)
}

fn latency_of(origin: Instant, payload: &[u8]) -> Duration {
    let sent = u128::from_le_bytes(payload[..16].try_into().unwrap());
    origin
        .elapsed()
        .saturating_sub(Duration::from_nanos(sent as u64))
}

/// Sends `rate` messages per second for `seconds` through `send`.
async fn paced<F, Fut>(rate: f64, seconds: f64, mut send: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while started.elapsed().as_secs_f64() < seconds {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as usize;
        while sent < due {
            send().await;
            sent += 1;
        }
    }
    sent
}

fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50).as_secs_f64() * 1e3, at(0.99).as_secs_f64() * 1e3)
}

/// One reader's latencies, as they arrive.
type Samples = Arc<Mutex<Vec<Duration>>>;

/// A consumer group on `station` recording each message's latency.
async fn group_reader(
    client: &Client,
    station: &str,
    origin: Instant,
) -> Result<(Samples, jetstation::Consumer, tokio::task::JoinHandle<()>), Box<dyn std::error::Error>>
{
    let consumer = client
        .consumer(station, "latency", ConsumerOptions::default())
        .await?;
    let samples: Samples = Arc::default();
    let worker = {
        let (consumer, samples) = (consumer.clone(), samples.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |m| {
                    let samples = samples.clone();
                    async move {
                        samples.lock().unwrap().push(latency_of(origin, &m.payload));
                        Ok::<(), String>(())
                    }
                })
                .await
                .expect("the latency group failed");
        })
    };
    Ok((samples, consumer, worker))
}

/// A fresh station of one partition.
async fn station(client: &Client, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _ = client.delete_station(name).await;
    client
        .create_station(name, StationConfig::default())
        .await?;
    Ok(())
}

/// jetstation's maximum end-to-end rate: `count` messages enqueued unpaced
/// through a producer and read by a group.
async fn max_rate(
    client: &Client,
    origin: Instant,
    count: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let name = "bench-latency-burst";
    station(client, name).await?;
    let producer = client.producer(name, Default::default()).await?;
    let (samples, consumer, worker) = group_reader(client, name, origin).await?;
    let started = Instant::now();
    for i in 0..count {
        // The group sees every message; its receipt is not needed.
        drop(
            producer
                .enqueue(Message::new(stamped(origin)).key(format!("k{}", i % 100)))
                .await?,
        );
    }
    all_seen(&samples, count).await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    consumer.close().await?;
    worker.await?;
    producer.close().await?;
    client.delete_station(name).await?;
    Ok(rate)
}

/// Sends `rate` messages per second for `seconds` through a jetstation
/// producer (100 keys), without waiting for receipts.
async fn producer_paced(
    producer: &jetstation::Producer,
    origin: Instant,
    rate: f64,
    seconds: f64,
) -> usize {
    let mut i = 0usize;
    paced(rate, seconds, || {
        i += 1;
        let m = Message::new(stamped(origin)).key(format!("k{}", i % 100));
        let producer = producer.clone();
        async move {
            let _ = producer.enqueue(m).await;
        }
    })
    .await
}

/// A durable pull consumer on `stream` acknowledging each message, recording
/// each message's latency as it arrives; `pinned`: the consumer pins its
/// reader, as a group's consumers do.
async fn raw_reader(
    stream: &jetstream::stream::Stream,
    origin: Instant,
    pinned: bool,
) -> Result<(Samples, tokio::task::JoinHandle<()>), Box<dyn std::error::Error>> {
    let mut config = pull::Config {
        durable_name: Some("raw".into()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    if pinned {
        config.priority_policy = jetstream::consumer::PriorityPolicy::PinnedClient;
        config.priority_groups = vec![PIN_GROUP.into()];
        config.priority_timeout = Duration::from_secs(10);
    }
    let consumer = stream.create_consumer(config).await?;
    let samples: Samples = Arc::default();
    let reader = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let pull = consumer.stream().max_messages_per_batch(256);
            let pull = if pinned { pull.group(PIN_GROUP) } else { pull };
            let mut messages = pull.messages().await.unwrap();
            while let Some(Ok(m)) = messages.next().await {
                samples.lock().unwrap().push(latency_of(origin, &m.payload));
                let _ = m.ack().await;
            }
        })
    };
    Ok((samples, reader))
}

/// Waits until `samples` holds `sent` latencies; panics naming how many
/// are missing if they do not arrive within a minute.
async fn all_seen(samples: &Mutex<Vec<Duration>>, sent: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = samples.lock().unwrap().len();
        if seen >= sent {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reader saw {seen} of {sent} messages within 60 s"
        );
        // The poll interval; the samples carry their own timestamps, so it
        // adds nothing to the latencies measured.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `rate` acked publishes per second for `seconds` with plain
/// async-nats; `message(i)` gives the subject and headers of the i-th.
/// Acknowledgements are awaited off the sending path, and all of them before
/// it returns.
async fn raw_paced(
    js: &jetstream::Context,
    origin: Instant,
    rate: f64,
    seconds: f64,
    message: impl Fn(usize) -> (String, async_nats::HeaderMap),
) -> usize {
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    let confirm = tokio::spawn(async move {
        while let Some(ack) = acks_rx.recv().await {
            let ack: async_nats::jetstream::context::PublishAckFuture = ack;
            let _ = ack.await;
        }
    });
    let mut i = 0usize;
    let sent = paced(rate, seconds, || {
        i += 1;
        let (js, acks_tx) = (js.clone(), acks_tx.clone());
        let (subject, headers) = message(i);
        async move {
            if let Ok(ack) = js
                .publish_with_headers(subject, headers, stamped(origin))
                .await
            {
                let _ = acks_tx.send(ack);
            }
        }
    })
    .await;
    drop(acks_tx);
    confirm.await.expect("the acknowledgement task failed");
    sent
}

/// A fresh stream of plain messages under `<prefix>.>`.
async fn plain_stream(
    js: &jetstream::Context,
    name: &str,
    prefix: &str,
) -> Result<jetstream::stream::Stream, Box<dyn std::error::Error>> {
    let _ = js.delete_stream(name).await;
    Ok(js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await?)
}

/// The paths measured, each with its own sender and readers, set up once
/// and then sent through in turns.
#[derive(Clone, Copy)]
enum Path {
    /// Raw publishes into a plain stream read by a raw pull consumer.
    Raw,
    /// A jetstation producer into a station read by a group.
    Jetstation,
    /// A jetstation producer into a station read by a raw pull consumer.
    ProducerHalf,
    /// Raw publishes into a station read by a group.
    GroupHalf,
    /// Raw publishes into a plain stream read by a raw pull consumer that
    /// pins its reader.
    RawPinned,
    /// Raw publishes with an id and a key header into a plain stream read
    /// by a raw pull consumer.
    RawHeaders,
}

/// How long each path is sent through before the next one takes its turn.
const SLICE_SECONDS: f64 = 1.0;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let seconds: f64 = args[2].parse()?;
    let origin = Instant::now();
    let client = Client::connect(ConnectOptions::new(url)).await?;
    let max = max_rate(&client, origin, 50_000).await?;
    let rate = (max / 2.0).floor();

    // Raw publishes use a connection of their own, as a raw service would.
    let js = jetstream::new(async_nats::connect(url).await?);
    let (raw, raw_task) = raw_reader(
        &plain_stream(&js, "LATENCY_RAW", "lat").await?,
        origin,
        false,
    )
    .await?;
    let (raw_pinned, raw_pinned_task) = raw_reader(
        &plain_stream(&js, "LATENCY_RAW_PINNED", "latpin").await?,
        origin,
        true,
    )
    .await?;
    let (raw_headers, raw_headers_task) = raw_reader(
        &plain_stream(&js, "LATENCY_RAW_HEADERS", "lathdr").await?,
        origin,
        false,
    )
    .await?;

    station(&client, "bench-latency").await?;
    let producer = client.producer("bench-latency", Default::default()).await?;
    let (ours, ours_group, ours_task) = group_reader(&client, "bench-latency", origin).await?;

    station(&client, "bench-latency-producer").await?;
    let half_producer = client
        .producer("bench-latency-producer", Default::default())
        .await?;
    let half_stream = js.get_stream("JST__bench-latency-producer__P0").await?;
    let (producer_half, producer_half_task) = raw_reader(&half_stream, origin, false).await?;

    // The station's one partition, written as plain acked publishes with the
    // key header the group orders by.
    station(&client, "bench-latency-split").await?;
    let (group_half, split_group, split_task) =
        group_reader(&client, "bench-latency-split", origin).await?;

    let paths = [
        Path::Raw,
        Path::Jetstation,
        Path::ProducerHalf,
        Path::GroupHalf,
        Path::RawPinned,
        Path::RawHeaders,
    ];
    let mut sent = vec![0usize; paths.len()];
    let cycles = (seconds / SLICE_SECONDS).round().max(1.0) as usize;
    let readers = [
        &raw,
        &ours,
        &producer_half,
        &group_half,
        &raw_pinned,
        &raw_headers,
    ];
    // Cycle 0 warms up: its latencies are dropped.
    for cycle in 0..=cycles {
        for turn in 0..paths.len() {
            let index = (cycle + turn) % paths.len();
            let n = match paths[index] {
                Path::Raw | Path::RawPinned => {
                    let prefix = if matches!(paths[index], Path::Raw) {
                        "lat"
                    } else {
                        "latpin"
                    };
                    raw_paced(&js, origin, rate, SLICE_SECONDS, |i| {
                        (
                            format!("{prefix}.k{}", i % 100),
                            async_nats::HeaderMap::new(),
                        )
                    })
                    .await
                }
                Path::RawHeaders => {
                    raw_paced(&js, origin, rate, SLICE_SECONDS, |i| {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(
                            jetstation::headers::PRODUCER_ID,
                            nuid::next().to_string().as_str(),
                        );
                        headers.insert(jetstation::headers::KEY, format!("k{}", i % 100).as_str());
                        (format!("lathdr.k{}", i % 100), headers)
                    })
                    .await
                }
                Path::Jetstation => producer_paced(&producer, origin, rate, SLICE_SECONDS).await,
                Path::ProducerHalf => {
                    producer_paced(&half_producer, origin, rate, SLICE_SECONDS).await
                }
                Path::GroupHalf => {
                    raw_paced(&js, origin, rate, SLICE_SECONDS, |i| {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(jetstation::headers::KEY, format!("k{}", i % 100).as_str());
                        ("jst._.bench-latency-split.0.m".to_string(), headers)
                    })
                    .await
                }
            };
            sent[index] += n;
            // The next slice starts once this one's messages are all read.
            all_seen(readers[index], sent[index]).await;
        }
        if cycle == 0 {
            for reader in readers {
                reader.lock().unwrap().clear();
            }
            sent.fill(0);
        }
    }
    for task in [
        raw_task,
        producer_half_task,
        raw_pinned_task,
        raw_headers_task,
    ] {
        task.abort();
    }
    ours_group.close().await?;
    split_group.close().await?;
    ours_task.await?;
    split_task.await?;
    for (name, samples) in [
        ("async-nats (raw)", &raw),
        ("jetstation (Rust)", &ours),
        ("async-nats producer, jetstation group", &group_half),
        ("jetstation producer, async-nats reader", &producer_half),
        ("async-nats (raw), pinned reader", &raw_pinned),
        ("async-nats (raw), with headers", &raw_headers),
    ] {
        let mut samples = std::mem::take(&mut *samples.lock().unwrap());
        let n = samples.len();
        let (p50, p99) = percentiles(&mut samples);
        println!(
            "{{\"client\":\"{name}\",\"rate\":{rate:.0},\"max_rate\":{max:.0},\"seconds\":{seconds},\"messages\":{n},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3}}}"
        );
    }
    Ok(())
}
