//! `jetstation send` and `jetstation tail`.

use clap::Args;
use jetstation::{Client, ConsumerOptions, Message, ProducerOptions, Result};
use serde_json::json;

use crate::output::{Output, payload_text};

#[derive(Debug, Args)]
pub(crate) struct Send {
    station: String,
    /// The message (UTF-8 text; JSON is sent as it is).
    payload: String,
    /// Key: messages of one key keep their order.
    #[arg(long)]
    key: Option<String>,
    /// A header, `name=value` (repeat for more).
    #[arg(long = "header", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Message id (duplicates within the station's window are recognised).
    #[arg(long)]
    id: Option<String>,
}

fn header(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("a header is name=value, got {s:?}"))
}

impl Send {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        let producer = client
            .producer(&self.station, ProducerOptions::default())
            .await?;
        let mut message = Message::new(self.payload.into_bytes());
        if let Some(key) = self.key {
            message = message.key(key);
        }
        if let Some(id) = self.id {
            message = message.msg_id(id);
        }
        for (name, value) in self.headers {
            message = message.header(name, value);
        }
        let receipt = producer.send(message).await?;
        producer.close().await?;
        out.done(
            &json!({
                "partition": receipt.partition,
                "sequence": receipt.sequence,
                "msg_id": receipt.msg_id,
                "duplicate": receipt.duplicate,
            }),
            &format!(
                "sent to {:?} partition {} sequence {}{}",
                receipt.station,
                receipt.partition,
                receipt.sequence,
                if receipt.duplicate {
                    " (a duplicate)"
                } else {
                    ""
                }
            ),
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub(crate) struct Tail {
    station: String,
    /// Only messages of this key.
    #[arg(long)]
    key: Option<String>,
    /// Where to start: latest (default), earliest or snapshot.
    #[arg(long, default_value = "latest")]
    from: String,
    /// Stop after this many messages (default: until interrupted).
    #[arg(long)]
    count: Option<usize>,
}

impl Tail {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        // A group of its own, removed at the end: tailing takes nothing
        // from the station's real groups.
        let group = format!("jetstation-tail-{}", std::process::id());
        let options = ConsumerOptions::default()
            .start(self.from.parse()?)
            .concurrency(1);
        let consumer = client.consumer(&self.station, &group, options).await?;
        let schema = client.station(&self.station).await?.config.schema;
        let mut shown = 0usize;
        let result = loop {
            if self.count.is_some_and(|n| shown >= n) {
                break Ok(());
            }
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = tokio::signal::ctrl_c() => break Ok(()),
            };
            let Some(delivery) = next else { break Ok(()) };
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => break Err(e),
            };
            if self.key.is_some() && delivery.key != self.key {
                delivery.ack()?;
                continue;
            }
            let decoded = match &schema {
                Some(b) => client
                    .decode_with_schema(&b.name, b.version, &delivery.payload)
                    .await
                    .ok(),
                None => None,
            };
            let text = payload_text(&delivery.payload);
            if out.json {
                println!(
                    "{}",
                    json!({
                        "partition": delivery.partition,
                        "sequence": delivery.sequence,
                        "key": delivery.key,
                        "payload": text,
                        "decoded": decoded,
                        "deleted": delivery.is_delete(),
                        "headers": delivery.headers,
                    })
                );
            } else {
                let body = decoded.map_or(text, |d| d.to_string());
                let what = if delivery.is_delete() {
                    "deleted".to_string()
                } else {
                    body
                };
                println!(
                    "{}/{} {} {}",
                    delivery.partition,
                    delivery.sequence,
                    delivery.key.as_deref().unwrap_or("-"),
                    what
                );
            }
            delivery.ack()?;
            shown += 1;
        };
        let _ = consumer.close().await;
        client.delete_group(&self.station, &group).await?;
        result
    }
}
