//! The floor cost: acked publishes with plain async-nats, pipelined with a
//! window of 1,024 unacknowledged publishes (no message ids, no ordering
//! guard). `raw_produce <url> <stream> <count> <size> [headers|batches]`:
//! with `headers`, every publish also carries jetstation's message id and
//! key header (the broker's dedup cost, without any order guard); with
//! `batches`, the same messages leave as jetstation's order guard sends
//! them, one atomic batch of up to 1,000 at a time, each sent once the
//! previous one is confirmed (the broker's cost of the guard, without
//! jetstation's client); with `fast`, the same messages leave as one
//! fast-ingest batch (nats-server 2.14+, gap mode `fail`), pipelined under
//! the server's flow control: at most two flow acknowledgements outstanding,
//! the batch committed by its last message. Prints one JSON line.

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
    let batches = args.get(5).is_some_and(|a| a == "batches");
    let fast = args.get(5).is_some_and(|a| a == "fast");
    let js = jetstream::new(async_nats::connect(url).await?);
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        allow_atomic_publish: batches,
        allow_batch_publish: fast,
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let subjects: Vec<String> = (0..100).map(|k| format!("{name}.k{k}")).collect();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut in_flight = FuturesUnordered::new();
    if batches {
        let nats = js.client();
        for start in (0..count).step_by(1000) {
            let end = (start + 1000).min(count);
            let id = format!("b{start}");
            for i in start..end {
                let mut h = async_nats::HeaderMap::new();
                h.insert(jetstation::headers::MSG_ID, format!("raw-{i}").as_str());
                h.insert(jetstation::headers::KEY, format!("k{}", i % 100).as_str());
                h.insert(jetstation::headers::BATCH_ID, id.as_str());
                h.insert(
                    jetstation::headers::BATCH_SEQUENCE,
                    (i - start + 1).to_string().as_str(),
                );
                if i + 1 == end {
                    h.insert(jetstation::headers::BATCH_COMMIT, "1");
                    js.publish_with_headers(subjects[i % 100].clone(), h, payload.clone())
                        .await?
                        .await?;
                } else {
                    nats.publish_with_headers(subjects[i % 100].clone(), h, payload.clone())
                        .await?;
                }
            }
        }
    }
    if fast {
        fast_ingest(js.client(), &subjects, count, &payload).await?;
    }
    for i in (0..count).filter(|_| !batches && !fast) {
        if in_flight.len() >= 1024 {
            in_flight.next().await.unwrap()?;
        }
        let subject = subjects[i % 100].clone();
        let ack = if with_headers {
            let mut h = async_nats::HeaderMap::new();
            h.insert(jetstation::headers::MSG_ID, format!("raw-{i}").as_str());
            h.insert(jetstation::headers::KEY, format!("k{}", i % 100).as_str());
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
        "{{\"client\":\"async-nats (raw)\",\"mode\":\"{}\",\"count\":{count},\"size\":{size},\"seconds\":{seconds:.4},\"rate\":{:.0},\"cpu_us_per_message\":{:.2}}}",
        if with_headers {
            "pipelined, window 1024, with ids and keys"
        } else if batches {
            "serial atomic batches of 1,000, with ids and keys"
        } else if fast {
            "one fast-ingest batch, flow-controlled, with ids and keys"
        } else {
            "pipelined, window 1024"
        },
        count as f64 / seconds,
        cpu * 1e6 / count as f64
    );
    Ok(())
}

/// Sends every message as one fast-ingest batch: each publish's reply
/// subject `<inbox>.<flow>.fail.<batch sequence>.<operation>.$FI` tells the
/// server the batch and its place in it; the server answers on that subject
/// with a flow acknowledgement every `msgs` messages and, after the last one
/// (operation 2, commit), with the publish acknowledgement of the batch.
async fn fast_ingest(
    nats: async_nats::Client,
    subjects: &[String],
    count: usize,
    payload: &bytes::Bytes,
) -> Result<(), Box<dyn std::error::Error>> {
    const FLOW: u64 = 500;
    const OUTSTANDING: u64 = 2;
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(format!("{inbox}.>")).await?;
    let (mut acked, mut every) = (0u64, 100u64);
    for i in 0..count {
        let sequence = i as u64 + 1;
        while acked + every * OUTSTANDING <= sequence {
            let value = answer(&mut replies).await?;
            if value["type"] == "ack" {
                acked = acked.max(value["seq"].as_u64().unwrap_or(0));
                every = value["msgs"].as_u64().unwrap_or(every).max(1);
            }
        }
        let operation = match (sequence, i + 1 == count) {
            (_, true) => 2,
            (1, false) => 0,
            _ => 1,
        };
        let mut h = async_nats::HeaderMap::new();
        h.insert(jetstation::headers::MSG_ID, format!("raw-{i}").as_str());
        h.insert(jetstation::headers::KEY, format!("k{}", i % 100).as_str());
        let reply = format!("{inbox}.{FLOW}.fail.{sequence}.{operation}.$FI");
        nats.publish_with_reply_and_headers(subjects[i % 100].clone(), reply, h, payload.clone())
            .await?;
    }
    loop {
        let value = answer(&mut replies).await?;
        if value.get("type").is_none() {
            let stored = value["count"].as_u64().unwrap_or(0);
            if stored != count as u64 {
                return Err(format!("the batch committed {stored} of {count} messages").into());
            }
            return Ok(());
        }
    }
}

/// The server's next answer on the batch's inbox; a gap, an error or a
/// refused batch ends the run.
async fn answer(
    replies: &mut async_nats::Subscriber,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let reply = replies.next().await.ok_or("the reply subscription ended")?;
    let value: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    if value.get("error").is_some() || matches!(value["type"].as_str(), Some("gap" | "err")) {
        return Err(format!("fast-ingest batch failed: {value}").into());
    }
    Ok(value)
}
