//! Peak memory of a producer sending `count` messages with the default
//! buffer (64 MiB): `produce_memory <url> <count> <size>`. The application
//! keeps no receipts (it enqueues and flushes at the end), so the producer's
//! buffer is what bounds memory. Reads the process's peak resident set
//! (VmHWM) before and after, and its resident set (VmRSS) after each tenth
//! of the sends, to show whether memory stays flat. Prints one JSON line.
//! Run by `scripts/bench-consume.sh`.

use std::time::Instant;

use jetstation::{Client, ConnectOptions, Message, StationConfig};

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let count: usize = args[2].parse()?;
    let size: usize = args[3].parse()?;
    let client = Client::connect(ConnectOptions::new(url)).await?;
    let station = "bench-memory";
    let _ = client.delete_station(station).await;
    client
        .create_station(station, StationConfig::default().partitions(4))
        .await?;
    let producer = client.producer(station, Default::default()).await?;
    let before = peak_rss_mib();
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut tenths = Vec::new();
    for i in 0..count {
        if i > 0 && i % (count / 10).max(1) == 0 {
            tenths.push(format!("{:.1}", rss_mib()));
        }
        // The receipt handle is dropped: the message is still sent and retried.
        drop(
            producer
                .enqueue(Message::new(payload.clone()).key(format!("k{}", i % 100)))
                .await?,
        );
    }
    tenths.push(format!("{:.1}", rss_mib()));
    producer.flush().await?;
    let seconds = started.elapsed().as_secs_f64();
    let stored = client.station(station).await?.messages;
    assert_eq!(stored, count as u64, "every message stored");
    println!(
        "{{\"count\":{count},\"size\":{size},\"peak_rss_mib\":{:.1},\"rss_before_mib\":{before:.1},\"seconds\":{seconds:.2},\"stored\":{stored},\"rss_by_tenth_mib\":[{}]}}",
        peak_rss_mib(),
        tenths.join(",")
    );
    Ok(())
}
