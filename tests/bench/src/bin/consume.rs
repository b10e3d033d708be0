//! Consume throughput, side by side on the same stored messages:
//! `consume <url> <count> <size> <rounds>` fills one station (1 partition,
//! 100 keys), then reads it all in each round: with a raw async-nats pull
//! consumer acking each message explicitly (the floor cost: no order, no
//! ordered commits), with the same in a pinned-client priority group (the
//! broker's fence a group's partition has), with a jetstation consumer group (per-key order,
//! commits in stream order), and with a group that processes exactly once.
//! Prints one JSON line per reader. Run by `scripts/bench-consume.sh`.

use std::time::{Duration, Instant};

use jetstation::{Client, ConnectOptions, ConsumerOptions};
use jetstation_bench::{cpu_seconds, fill_station, handle_count, raw_read, raw_read_as};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let count: usize = args[2].parse()?;
    let size: usize = args[3].parse()?;
    let rounds: usize = args[4].parse()?;
    let station = "bench-consume";
    let client = Client::connect(ConnectOptions::new(url)).await?;
    fill_station(&client, station, count, size).await?;

    for round in 0..rounds {
        // Raw: a durable pull consumer on the partition's stream, explicit acks.
        let (elapsed, cpu) = raw_read(
            url,
            "JST__bench-consume__P0",
            &format!("raw-{round}"),
            count,
        )
        .await?;
        report(
            "async-nats (raw)",
            "pull consumer, explicit ack per message",
            count,
            size,
            elapsed,
            cpu,
        );
        // The same with a pinned-client priority group, as each partition of
        // a consumer group has: what the pin costs the broker and the reader.
        let (elapsed, cpu) = raw_read_as(
            url,
            "JST__bench-consume__P0",
            &format!("raw-pinned-{round}"),
            count,
            true,
        )
        .await?;
        report(
            "async-nats (raw), pinned",
            "the same, pinned-client priority group (as a group's partition)",
            count,
            size,
            elapsed,
            cpu,
        );

        // jetstation: a consumer group, per-key order, ordered commits; then
        // the same with exactly-once processing.
        for (mode, options, label) in [
            (
                "consumer group, concurrency 16, ordered commits",
                ConsumerOptions::default(),
                "jetstation (Rust)",
            ),
            (
                "the same, exactly once (handled messages recorded per partition, confirmed commits)",
                ConsumerOptions::default().exactly_once(true),
                "jetstation (Rust), exactly once",
            ),
        ] {
            read_group(&client, station, round, count, size, mode, options, label).await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn read_group(
    client: &Client,
    station: &str,
    round: usize,
    count: usize,
    size: usize,
    mode: &str,
    options: ConsumerOptions,
    label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    {
        let group = format!("group-{round}-{}", options.exactly_once);
        let consumer = client.consumer(station, &group, options).await?;
        let started = Instant::now();
        let cpu = cpu_seconds();
        // Counted like the raw loop counts (see handle_count).
        let worker = handle_count(&consumer, count).await;
        let elapsed = started.elapsed();
        let cpu = cpu_seconds() - cpu;
        consumer.close().await?;
        worker.await??;
        report(label, mode, count, size, elapsed, cpu);
        client.delete_group(station, &group).await?;
    }
    Ok(())
}

fn report(client: &str, mode: &str, count: usize, size: usize, elapsed: Duration, cpu: f64) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{{\"client\":\"{client}\",\"mode\":\"{mode}\",\"count\":{count},\"size\":{size},\"seconds\":{seconds:.4},\"rate\":{:.0},\"cpu_us_per_message\":{:.2}}}",
        count as f64 / seconds,
        cpu * 1e6 / count as f64
    );
}
