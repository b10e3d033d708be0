//! CDC throughput: `cdc <nats-url> <rows>` starts a PostgreSQL (the test
//! harness's), then measures, side by side:
//! - capture: rows committed in PostgreSQL (transactions of 1,000 rows) until
//!   the broker confirmed them all in the station;
//! - direct: the same messages (same payloads, keys and ids) sent by a
//!   producer, the ceiling the capture can reach;
//! - sink: the station's changes applied to a table of another database;
//! - group: a consumer group acknowledging the same changes without a
//!   database, the ceiling the sink can reach.
//!
//! Prints one JSON line per path. Run by `scripts/bench-cdc.sh`.

use std::time::{Duration, Instant};

use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};
use jetstation_cdc::{CaptureOptions, SinkOptions, capture, sink};
use jetstation_harness::Postgres;

async fn sql(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await; // poll interval: the measurement's 5 ms resolution; the deadline bounds it
    }
}

fn line(path: &str, what: &str, rows: u64, seconds: f64) {
    println!(
        "{{\"path\":\"{path}\",\"what\":\"{what}\",\"rows\":{rows},\"seconds\":{seconds:.3},\"rate\":{:.0}}}",
        rows as f64 / seconds
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let n: u64 = args[2].parse()?;
    let client = Client::connect(ConnectOptions::new(url)).await?;
    // Each round starts from nothing on the broker too.
    for station in ["accounts", "jetstation-cdc", "bench-direct"] {
        let _ = client.delete_station(station).await;
    }
    let pg = Postgres::start();
    let admin = sql(&pg.url("postgres")).await;
    admin.batch_execute("CREATE DATABASE source").await?;
    admin.batch_execute("CREATE DATABASE target").await?;
    let source = sql(&pg.url("source")).await;
    let table = "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text)";
    source.batch_execute(table).await?;

    // Capture.
    let mut options = CaptureOptions::new(pg.url("source"), vec!["public.accounts".parse()?]);
    options.slot = "bench".into();
    options.publication = "bench".into();
    let capturing = {
        let client = client.clone();
        tokio::spawn(async move { capture::run(&client, &options, std::future::pending()).await })
    };
    wait_for("the capture to start", async || {
        assert!(!capturing.is_finished(), "the capture stopped");
        source
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'bench' AND active",
                &[],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let started = Instant::now();
    let mut first = 1u64;
    while first <= n {
        let last = (first + 999).min(n);
        source
            .batch_execute(&format!(
                "INSERT INTO accounts SELECT g, g, 'account note ' || g FROM generate_series({first}, {last}) g"
            ))
            .await?;
        first = last + 1;
    }
    let committed = started.elapsed().as_secs_f64();
    wait_for("every change in the station", async || {
        client
            .station("accounts")
            .await
            .map(|s| s.messages)
            .unwrap_or(0)
            >= n
    })
    .await;
    line(
        "capture",
        "commit in PostgreSQL to confirmed in the station",
        n,
        started.elapsed().as_secs_f64(),
    );
    line(
        "postgres",
        "commit in PostgreSQL alone (the writer)",
        n,
        committed,
    );
    capturing.abort();

    // Direct: the same messages from a producer.
    let _ = client.delete_station("bench-direct").await;
    client
        .create_station("bench-direct", StationConfig::default().partitions(4))
        .await?;
    let producer = client.producer("bench-direct", Default::default()).await?;
    let started = Instant::now();
    for i in 1..=n {
        let payload = format!(
            "{{\"op\":\"insert\",\"table\":\"public.accounts\",\"lsn\":\"0/1A2B3C4D\",\"index\":{i},\"xid\":750,\"commit_time\":\"2026-11-30T21:00:00.000000Z\",\"before\":null,\"after\":{{\"id\":{i},\"balance\":{i},\"note\":\"account note {i}\"}},\"unchanged\":[]}}"
        );
        producer
            .enqueue(
                Message::new(payload)
                    .key(i.to_string())
                    .msg_id(format!("bench:c:439041101:{i}")),
            )
            .await?;
    }
    producer.flush().await?;
    line(
        "direct",
        "the same messages sent by a producer",
        n,
        started.elapsed().as_secs_f64(),
    );

    // Sink.
    let target = sql(&pg.url("target")).await;
    target.batch_execute(table).await?;
    let started = Instant::now();
    // Stopped, not aborted, at the end: the member leaves the group, so the
    // next round's sink does not wait for this one's partitions to expire.
    let (stop_sink, stop) = tokio::sync::oneshot::channel::<()>();
    let sinking = {
        let client = client.clone();
        let options = SinkOptions::new(
            pg.url("target"),
            "accounts",
            "bench-sink",
            "public.accounts",
        );
        tokio::spawn(async move {
            sink::run(&client, &options, async {
                let _ = stop.await;
            })
            .await
        })
    };
    // The sink acknowledges a change after its transaction committed, so
    // the group's lag reaching 0 means every row is in the target. Asked of
    // the broker: counting the target's rows every 5 ms would scan the table
    // beside the sink and slow it down.
    wait_for("every change applied by the sink", async || {
        assert!(!sinking.is_finished(), "the sink stopped");
        client
            .groups("accounts")
            .await
            .ok()
            .and_then(|groups| groups.into_iter().find(|g| g.group == "bench-sink"))
            .is_some_and(|g| g.partitions.len() == 4 && g.partitions.iter().all(|p| p.lag == 0))
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let rows: i64 = target
        .query_one("SELECT count(*) FROM accounts", &[])
        .await?
        .get(0);
    assert_eq!(
        rows as u64, n,
        "the sink acknowledged changes it did not write"
    );
    line(
        "sink",
        "station to rows committed in the target table",
        n,
        seconds,
    );
    let _ = stop_sink.send(());
    sinking.await??;

    // Group: the same station, acknowledged without a database.
    let started = Instant::now();
    let consumer = client
        .consumer(
            "accounts",
            "bench-group",
            ConsumerOptions::default().concurrency(512),
        )
        .await?;
    let mut seen = 0u64;
    while seen < n {
        let d = consumer.next().await.expect("open")?;
        d.ack()?;
        seen += 1;
    }
    line(
        "group",
        "a consumer group acknowledging them, no database",
        n,
        started.elapsed().as_secs_f64(),
    );
    let _ = consumer.close().await;
    Ok(())
}
