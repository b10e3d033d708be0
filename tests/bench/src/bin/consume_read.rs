//! One reader of the consume benchmark on its own, for a profiler to record:
//! `consume_read <url> fill <count> <size>` stores `count` messages (one
//! partition, 100 keys) with a jetstation producer; `consume_read <url> raw
//! <count>` reads them all with a raw async-nats pull consumer acknowledging
//! each message, and `consume_read <url> group <count>` with a jetstation
//! consumer group (concurrency 16, ordered commits). Each reader is new, so
//! it reads the whole station; it prints one JSON line with its rate and its
//! CPU per message. Run by `scripts/bench-profile.sh`.

use std::time::{Duration, Instant};

use jetstation::{Client, ConnectOptions, ConsumerOptions};
use jetstation_bench::{cpu_seconds, fill_station, handle_count, raw_read};

const STATION: &str = "bench-consume-profile";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (url, mode, count) = (&args[1], args[2].as_str(), args[3].parse::<usize>()?);
    let client = Client::connect(ConnectOptions::new(url)).await?;
    let reader = format!("{mode}-{}", std::process::id());
    match mode {
        "fill" => {
            let size: usize = args[4].parse()?;
            fill_station(&client, STATION, count, size).await?;
            return Ok(());
        }
        "raw" => {
            let stream = format!("JST__{STATION}__P0");
            let (elapsed, cpu) = raw_read(url, &stream, &reader, count).await?;
            report(mode, count, elapsed, cpu);
        }
        "group" => {
            let consumer = client
                .consumer(STATION, &reader, ConsumerOptions::default())
                .await?;
            let (started, cpu) = (Instant::now(), cpu_seconds());
            let worker = handle_count(&consumer, count).await;
            report(mode, count, started.elapsed(), cpu_seconds() - cpu);
            consumer.close().await?;
            worker.await??;
            client.delete_group(STATION, &reader).await?;
        }
        _ => return Err(format!("unknown mode {mode}").into()),
    }
    Ok(())
}

fn report(mode: &str, count: usize, elapsed: Duration, cpu: f64) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"count\":{count},\"seconds\":{seconds:.4},\"rate\":{:.0},\"cpu_us_per_message\":{:.2}}}",
        count as f64 / seconds,
        cpu * 1e6 / count as f64
    );
}
