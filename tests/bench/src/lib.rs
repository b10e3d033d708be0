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
