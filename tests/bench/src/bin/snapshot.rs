//! Snapshot bootstrap: `snapshot <url> <keys>` fills a compacted station
//! (4 partitions) with two versions of every key, waits until the state view
//! holds them, then measures, side by side:
//! - reading the state view with `Client::snapshot` (no group, no acks);
//! - a new group with `start=snapshot` receiving the latest message of every
//!   key (acked, ordered commits) until it follows the history;
//! - a new group replaying the whole history (`start=earliest`), the way a
//!   new service bootstraps without a state view.
//!
//! Prints one JSON line per reader. Run by `scripts/bench-consume.sh`.

use std::time::{Duration, Instant};

use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StartPosition, StationConfig};
use jetstation_bench::handle_count;

const STATION: &str = "bench-snapshot";
const PARTITIONS: u32 = 4;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let keys: usize = args[2].parse()?;
    let client = Client::connect(ConnectOptions::new(url)).await?;
    let _ = client.delete_station(STATION).await;
    client
        .create_station(
            STATION,
            StationConfig::default()
                .partitions(PARTITIONS)
                .compaction(true),
        )
        .await?;
    let producer = client.producer(STATION, Default::default()).await?;
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    for _version in 0..2 {
        for k in 0..keys {
            producer
                .enqueue(Message::new(payload.clone()).key(format!("key-{k}")))
                .await?;
        }
    }
    producer.flush().await?;

    // The broker fills the view by itself: wait until it holds every key.
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut held = 0;
        for p in 0..PARTITIONS {
            let mut s = js.get_stream(format!("JST__{STATION}__S{p}")).await?;
            held += s.info().await?.state.messages as usize;
        }
        if held == keys {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the view holds {held} of {keys} keys after 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The state view, read with no group.
    let started = Instant::now();
    let mut snapshot = client.snapshot(STATION).await?;
    let mut read = 0;
    while let Some(entry) = snapshot.next().await {
        entry?;
        read += 1;
    }
    report(
        "Client::snapshot",
        "read the state view, no group",
        read,
        started.elapsed(),
    );

    for (reader, mode, start, expect) in [
        (
            "group, start=snapshot",
            "the latest message of every key, acked",
            StartPosition::Snapshot,
            keys,
        ),
        (
            "group, start=earliest",
            "the whole history (2 versions of every key), acked",
            StartPosition::Earliest,
            2 * keys,
        ),
    ] {
        let group = format!("bootstrap-{reader}").replace([' ', ',', '='], "-");
        let started = Instant::now();
        let consumer = client
            .consumer(STATION, &group, ConsumerOptions::default().start(start))
            .await?;
        let worker = handle_count(&consumer, expect).await;
        let elapsed = started.elapsed();
        consumer.close().await?;
        worker.await??;
        report(reader, mode, expect, elapsed);
        client.delete_group(STATION, &group).await?;
    }
    client.delete_station(STATION).await?;
    Ok(())
}

fn report(reader: &str, mode: &str, messages: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{{\"reader\":\"{reader}\",\"mode\":\"{mode}\",\"messages\":{messages},\"seconds\":{seconds:.3},\"rate\":{:.0}}}",
        messages as f64 / seconds
    );
}
