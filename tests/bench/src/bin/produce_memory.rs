//! Peak memory of a producer sending 1,000,000 messages with the default
//! buffer (64 MiB): `produce_memory <url> <count> <size>`. The application
//! keeps no receipts (it enqueues and flushes at the end), so the producer's
//! buffer is what bounds memory. Reads the process's peak resident set
//! (VmHWM) before and after. Prints one JSON line. Run by
//! `scripts/bench-consume.sh`.

use std::time::Instant;

use jetstation::{Client, ConnectOptions, Message, StationConfig};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
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
    for i in 0..count {
        // The receipt handle is dropped: the message is still sent and retried.
        drop(
            producer
                .enqueue(Message::new(payload.clone()).key(format!("k{}", i % 100)))
                .await?,
        );
    }
    producer.flush().await?;
    let seconds = started.elapsed().as_secs_f64();
    let stored = client.station(station).await?.messages;
    assert_eq!(stored, count as u64, "every message stored");
    println!(
        "{{\"count\":{count},\"size\":{size},\"peak_rss_mib\":{:.1},\"rss_before_mib\":{before:.1},\"seconds\":{seconds:.2},\"stored\":{stored}}}",
        peak_rss_mib()
    );
    Ok(())
}
