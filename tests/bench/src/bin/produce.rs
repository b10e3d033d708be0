//! Produce throughput of the Rust core: `produce <url> <station> <count> <size>`.
//! Prints one JSON line. Run by `scripts/bench-produce.sh`.

use std::time::Instant;

use jetstation::{Client, ConnectOptions, Message, StationConfig};
use jetstation_bench::cpu_seconds;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (url, station) = (&args[1], &args[2]);
    let count: usize = args[3].parse()?;
    let size: usize = args[4].parse()?;
    let client = Client::connect(ConnectOptions::new(url)).await?;
    let _ = client.delete_station(station).await;
    client
        .create_station(station, StationConfig::default())
        .await?;
    let producer = client.producer(station, Default::default()).await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let keys: Vec<String> = (0..100).map(|k| format!("k{k}")).collect();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let m = Message::new(payload.clone()).key(keys[i % keys.len()].clone());
        handles.push(producer.enqueue(m).await?);
    }
    for h in handles {
        h.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    assert_eq!(client.station(station).await?.messages, count as u64);
    println!(
        "{{\"client\":\"jetstation (Rust)\",\"mode\":\"enqueue per message\",\"count\":{count},\"size\":{size},\"seconds\":{seconds:.4},\"rate\":{:.0},\"cpu_us_per_message\":{:.2}}}",
        count as f64 / seconds,
        cpu * 1e6 / count as f64
    );
    Ok(())
}
