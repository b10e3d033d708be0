//! The floor cost: acked publishes with plain async-nats, pipelined with a
//! window of 1,024 unacknowledged publishes (no message ids, no ordering
//! guard). `raw_produce <url> <stream> <count> <size> [headers]`; with
//! `headers`, every publish also carries what jetstation sends (a message id,
//! a key header and the expected-last-message-id guard), which isolates the
//! broker's cost of dedup and the guard from the client's. Prints one JSON line.

use std::time::Instant;

use async_nats::jetstream::{self, stream};
use futures::{StreamExt, stream::FuturesUnordered};
use jetstation_bench::cpu_seconds;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (url, name) = (&args[1], &args[2]);
    let count: usize = args[3].parse()?;
    let size: usize = args[4].parse()?;
    let with_headers = args.get(5).is_some_and(|a| a == "headers");
    let js = jetstream::new(async_nats::connect(url).await?);
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let subjects: Vec<String> = (0..100).map(|k| format!("{name}.k{k}")).collect();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..count {
        if in_flight.len() >= 1024 {
            in_flight.next().await.unwrap()?;
        }
        let subject = subjects[i % 100].clone();
        let ack = if with_headers {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
            h.insert("Jst-Key", format!("k{}", i % 100).as_str());
            if i > 0 {
                h.insert(
                    "Nats-Expected-Last-Msg-Id",
                    format!("raw-{}", i - 1).as_str(),
                );
            }
            js.publish_with_headers(subject, h, payload.clone()).await?
        } else {
            js.publish(subject, payload.clone()).await?
        };
        in_flight.push(ack.into_future());
    }
    while let Some(ack) = in_flight.next().await {
        ack?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    println!(
        "{{\"client\":\"async-nats (raw)\",\"mode\":\"pipelined, window 1024{}\",\"count\":{count},\"size\":{size},\"seconds\":{seconds:.4},\"rate\":{:.0},\"cpu_us_per_message\":{:.2}}}",
        if with_headers {
            ", jetstation's headers"
        } else {
            ""
        },
        count as f64 / seconds,
        cpu * 1e6 / count as f64
    );
    Ok(())
}
