//! End-to-end latency (send to handler), side by side at the same offered
//! load: `latency <url> <seconds>`. First measures jetstation's maximum
//! end-to-end rate (an unpaced burst through a producer and a consumer group),
//! then sends at half that rate for `<seconds>` with raw async-nats (acked
//! publishes, pull consumer, explicit acks) and with jetstation (producer,
//! consumer group), and, to split the two, raw async-nats publishes into a
//! station read by a jetstation group, and a jetstation producer's station
//! read by a raw pull consumer. Each payload carries its send time.
//! Prints one JSON line per client with p50/p99 in milliseconds. Run by
//! `scripts/bench-consume.sh`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};

const SIZE: usize = 256;

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

async fn jetstation_run(
    client: &Client,
    origin: Instant,
    rate: Option<f64>,
    seconds: f64,
    count: usize,
    raw_producer: Option<&str>,
) -> Result<(Vec<Duration>, f64), Box<dyn std::error::Error>> {
    let station = if raw_producer.is_some() {
        "bench-latency-split"
    } else {
        "bench-latency"
    };
    let _ = client.delete_station(station).await;
    client
        .create_station(station, StationConfig::default())
        .await?;
    let producer = client.producer(station, Default::default()).await?;
    let consumer = client
        .consumer(station, "latency", ConsumerOptions::default())
        .await?;
    let samples = Arc::new(Mutex::new(Vec::new()));
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
        })
    };
    let started = Instant::now();
    let sent = match (rate, raw_producer) {
        (Some(rate), Some(url)) => {
            // The station's one partition, written as plain acked publishes
            // with the key header the group orders by.
            let subject = format!("jst._.{station}.0.m");
            raw_paced(url, origin, rate, seconds, |i| {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Jst-Key", format!("k{}", i % 100).as_str());
                (subject.clone(), headers)
            })
            .await?
        }
        (Some(rate), None) => producer_paced(&producer, origin, rate, seconds).await,
        (None, _) => {
            for i in 0..count {
                // The consumer sees every message; its receipt is not needed.
                drop(
                    producer
                        .enqueue(Message::new(stamped(origin)).key(format!("k{}", i % 100)))
                        .await?,
                );
            }
            count
        }
    };
    all_seen(&samples, sent).await;
    let elapsed = started.elapsed().as_secs_f64();
    consumer.close().await?;
    worker.await??;
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Ok((samples, sent as f64 / elapsed))
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
/// each message's latency as it arrives.
async fn raw_reader(
    stream: &jetstream::stream::Stream,
    origin: Instant,
) -> Result<(Arc<Mutex<Vec<Duration>>>, tokio::task::JoinHandle<()>), Box<dyn std::error::Error>> {
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(256)
                .messages()
                .await
                .unwrap();
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

/// Waits until `samples` holds `sent` latencies, then stops `reader` and
/// returns them.
async fn collected(
    samples: Arc<Mutex<Vec<Duration>>>,
    reader: tokio::task::JoinHandle<()>,
    sent: usize,
) -> Vec<Duration> {
    all_seen(&samples, sent).await;
    reader.abort();
    std::mem::take(&mut *samples.lock().unwrap())
}

/// A jetstation producer into a station whose partition a raw pull consumer
/// reads: the producer's half of the path.
async fn producer_to_raw(
    client: &Client,
    url: &str,
    origin: Instant,
    rate: f64,
    seconds: f64,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let station = "bench-latency-producer";
    let _ = client.delete_station(station).await;
    client
        .create_station(station, StationConfig::default())
        .await?;
    let producer = client.producer(station, Default::default()).await?;
    let js = jetstream::new(async_nats::connect(url).await?);
    let stream = js.get_stream(format!("JST__{station}__P0")).await?;
    let (samples, reader) = raw_reader(&stream, origin).await?;
    let sent = producer_paced(&producer, origin, rate, seconds).await;
    Ok(collected(samples, reader, sent).await)
}

async fn raw_run(
    url: &str,
    origin: Instant,
    rate: f64,
    seconds: f64,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let name = "LATENCY_RAW";
    let _ = js.delete_stream(name).await;
    let stream = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec!["lat.>".into()],
            ..Default::default()
        })
        .await?;
    let (samples, reader) = raw_reader(&stream, origin).await?;
    let sent = raw_paced(url, origin, rate, seconds, |i| {
        (format!("lat.k{}", i % 100), async_nats::HeaderMap::new())
    })
    .await?;
    Ok(collected(samples, reader, sent).await)
}

/// Sends `rate` acked publishes per second for `seconds` with plain
/// async-nats on a connection of its own; `message(i)` gives the subject and
/// headers of the i-th. Acknowledgements are awaited off the sending path.
async fn raw_paced(
    url: &str,
    origin: Instant,
    rate: f64,
    seconds: f64,
    message: impl Fn(usize) -> (String, async_nats::HeaderMap),
) -> Result<usize, Box<dyn std::error::Error>> {
    let js = jetstream::new(async_nats::connect(url).await?);
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
    confirm.await?;
    Ok(sent)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let seconds: f64 = args[2].parse()?;
    let origin = Instant::now();
    let client = Client::connect(ConnectOptions::new(url)).await?;
    let (_, max) = jetstation_run(&client, origin, None, 0.0, 50_000, None).await?;
    let rate = (max / 2.0).floor();
    let mut raw = raw_run(url, origin, rate, seconds).await?;
    let (mut ours, _) = jetstation_run(&client, origin, Some(rate), seconds, 0, None).await?;
    let (mut split, _) =
        jetstation_run(&client, origin, Some(rate), seconds, 0, Some(url.as_str())).await?;
    let mut producer_half = producer_to_raw(&client, url, origin, rate, seconds).await?;
    for (name, samples) in [
        ("async-nats (raw)", &mut raw),
        ("jetstation (Rust)", &mut ours),
        ("async-nats producer, jetstation group", &mut split),
        ("jetstation producer, async-nats reader", &mut producer_half),
    ] {
        let n = samples.len();
        let (p50, p99) = percentiles(samples);
        println!(
            "{{\"client\":\"{name}\",\"rate\":{rate:.0},\"max_rate\":{max:.0},\"messages\":{n},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3}}}"
        );
    }
    Ok(())
}
