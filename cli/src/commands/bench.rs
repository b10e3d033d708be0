//! `jetstation bench`: produce then consume throughput against the hub, on
//! a station of its own (removed at the end).

use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use jetstation::{Client, ConsumerOptions, Message, Result, StationConfig};
use serde_json::json;

use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct Bench {
    /// Messages to send, then to consume.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Keys the messages are spread over.
    #[arg(long, default_value_t = 100)]
    keys: u64,
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

fn bar(out: Output, total: u64, what: &str) -> ProgressBar {
    if out.json {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!("{what:>9} {{bar:40}} {{pos}}/{{len}} {{per_sec}}"))
            .expect("a valid template"),
    )
}

impl Bench {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        let station = format!("jetstation-bench-{}", std::process::id());
        client
            .create_station(
                &station,
                StationConfig::default()
                    .partitions(self.partitions)
                    .replicas(self.replicas),
            )
            .await?;
        let result = self.measure(client, &station, out).await;
        client.delete_station(&station).await?;
        let (produce, consume) = result?;
        let value = json!({
            "messages": self.messages,
            "size": self.size,
            "partitions": self.partitions,
            "replicas": self.replicas,
            "produce_per_second": produce.round(),
            "consume_per_second": consume.round(),
        });
        out.table(
            &value,
            &["phase", "messages/s", "MiB/s"],
            [("produce", produce), ("consume", consume)]
                .iter()
                .map(|(phase, rate)| {
                    vec![
                        phase.to_string(),
                        format!("{rate:.0}"),
                        format!("{:.1}", rate * self.size as f64 / (1024.0 * 1024.0)),
                    ]
                })
                .collect(),
        );
        Ok(())
    }

    async fn measure(&self, client: &Client, station: &str, out: Output) -> Result<(f64, f64)> {
        let producer = client.producer(station, Default::default()).await?;
        let payload = bytes::Bytes::from(vec![b'x'; self.size]);
        let progress = bar(out, self.messages, "produce");
        let started = Instant::now();
        for i in 0..self.messages {
            let message = Message::new(payload.clone()).key(format!("k{}", i % self.keys.max(1)));
            producer.enqueue(message).await?;
            if i.is_multiple_of(1000) {
                progress.set_position(i);
            }
        }
        producer.flush().await?;
        let produce = self.messages as f64 / started.elapsed().as_secs_f64();
        progress.finish_and_clear();
        producer.close().await?;

        let consumer = client
            .consumer(station, "bench", ConsumerOptions::default())
            .await?;
        let progress = bar(out, self.messages, "consume");
        let started = Instant::now();
        let mut handled = 0u64;
        while handled < self.messages {
            let Some(delivery) = consumer.next().await else {
                break;
            };
            delivery?.ack()?;
            handled += 1;
            if handled.is_multiple_of(1000) {
                progress.set_position(handled);
            }
        }
        let consume = self.messages as f64 / started.elapsed().as_secs_f64();
        progress.finish_and_clear();
        consumer.close().await?;
        Ok((produce, consume))
    }
}
