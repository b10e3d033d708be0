//! Helpers shared by the benchmark programs.

/// CPU time (user + system) this process used so far, in seconds (Linux:
/// /proc/self/stat, in clock ticks of 10 ms).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime: fields 14 and 15 of the line, indices 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `consumer` with a handler that only counts, and returns once it has
/// handled `count` messages (one notification for the last one, no wake-up
/// per message), with the task that runs it: close the consumer, then await
/// the task.
pub async fn handle_count(
    consumer: &jetstation::Consumer,
    count: usize,
) -> tokio::task::JoinHandle<jetstation::Result<()>> {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let handled = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let worker = {
        let consumer = consumer.clone();
        let all_done = all_done.clone();
        tokio::spawn(async move {
            consumer
                .consume(move |_m| {
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == count {
                        all_done.notify_one();
                    }
                    async { Ok::<(), String>(()) }
                })
                .await
        })
    };
    all_done.notified().await;
    worker
}

/// Creates `station` anew (one partition) and stores `count` messages of
/// `size` bytes in it, keyed over 100 keys: what the consume benchmarks read.
pub async fn fill_station(
    client: &jetstation::Client,
    station: &str,
    count: usize,
    size: usize,
) -> jetstation::Result<()> {
    let _ = client.delete_station(station).await;
    client
        .create_station(station, jetstation::StationConfig::default())
        .await?;
    let producer = client.producer(station, Default::default()).await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let message = jetstation::Message::new(payload.clone()).key(format!("k{}", i % 100));
        handles.push(producer.enqueue(message).await?);
    }
    for h in handles {
        h.await?;
    }
    Ok(())
}

/// Reads `count` messages of a partition's stream with a raw async-nats
/// durable pull consumer named `name` (explicit ack per message, batches of
/// 256, up to 4,096 unacknowledged), then deletes it. Returns the read's
/// wall time and this process's CPU seconds over it (the consumer's creation
/// and deletion are not counted).
pub async fn raw_read(
    url: &str,
    stream: &str,
    name: &str,
    count: usize,
) -> Result<(std::time::Duration, f64), Box<dyn std::error::Error>> {
    raw_read_as(url, stream, name, count, false).await
}

/// [`raw_read`], with `pinned`: the consumer has a pinned-client priority
/// group, as a consumer group's partition has, and pulls in that group (the
/// broker then adds the pin's id to every message it delivers).
pub async fn raw_read_as(
    url: &str,
    stream: &str,
    name: &str,
    count: usize,
    pinned: bool,
) -> Result<(std::time::Duration, f64), Box<dyn std::error::Error>> {
    use async_nats::jetstream::{self, consumer::pull};
    use futures::StreamExt;
    let js = jetstream::new(async_nats::connect(url).await?);
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_string()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4096,
            priority_policy: if pinned {
                jetstream::consumer::PriorityPolicy::PinnedClient
            } else {
                jetstream::consumer::PriorityPolicy::None
            },
            priority_groups: if pinned { vec!["pin".into()] } else { vec![] },
            ..Default::default()
        })
        .await?;
    let (started, cpu) = (std::time::Instant::now(), cpu_seconds());
    let mut builder = consumer.stream().max_messages_per_batch(256);
    if pinned {
        builder = builder.group("pin");
    }
    let mut messages = builder.messages().await?;
    let mut received = 0;
    while let Some(m) = messages.next().await {
        m?.ack().await.map_err(|e| e.to_string())?;
        received += 1;
        if received == count {
            break;
        }
    }
    let spent = (started.elapsed(), cpu_seconds() - cpu);
    drop(messages);
    stream.delete_consumer(name).await?;
    Ok(spent)
}
