//! The capture as its own process, broken on purpose: SIGKILL mid-stream,
//! a PostgreSQL restart, a 100,000-row transaction. Judged from what reached
//! the station and the sink's table, compared with the source row by row.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{
    World, all_reported, by_key, eventually, position, read_changes, rows, slot_created, sql,
};
use jetstation_cdc::{SinkOptions, sink};

fn capture(world: &World, slot: &str, extra: &[&str], log: Option<&std::path::Path>) -> Child {
    let stderr = log.map_or_else(Stdio::inherit, |p| {
        std::fs::File::create(p).expect("log").into()
    });
    Command::new(env!("CARGO_BIN_EXE_jetstation-cdc"))
        .args([
            "--url",
            &world.nats.url(),
            "capture",
            "--postgres",
            &world.source_url(),
        ])
        .args([
            "--table",
            "public.accounts",
            "--slot",
            slot,
            "--publication",
            slot,
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start jetstation-cdc")
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("jetstation-{}-{name}", std::process::id()))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `n` one-row transactions on `keys` keys, from `first` on.
async fn write(url: &str, first: u32, n: u32, keys: u32) {
    let pg = sql(url).await;
    for i in first..first + n {
        pg.batch_execute(&format!(
            "INSERT INTO accounts VALUES ({k}, {i}, 'n{i}') \
             ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance, note = EXCLUDED.note",
            k = i % keys
        ))
        .await
        .expect("write");
    }
}

async fn station_messages(world: &World) -> u64 {
    world
        .client
        .station("accounts")
        .await
        .map(|s| s.messages)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_a_postgres_restart_lose_nothing_and_repeat_nothing() {
    let mut world = World::start().await;
    let source = sql(&world.source_url()).await;
    source
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text)",
        )
        .await
        .unwrap();
    // The first process reports nothing to PostgreSQL before it is killed
    // (30 s between reports), so its successor certainly sends changes the
    // station already has.
    let mut cdc = capture(&world, "faults", &["--status-interval-ms", "30000"], None);
    slot_created(&source, "faults").await;

    // 1. SIGKILL while changes stream, and start again.
    let url = world.source_url();
    let writer = tokio::spawn(async move { write(&url, 0, 3000, 200).await });
    eventually("changes to flow", Duration::from_secs(60), || async {
        station_messages(&world).await > 500
    })
    .await;
    kill(&mut cdc);
    writer.await.unwrap();
    let log = tempfile_path("cdc-restart.log");
    cdc = capture(&world, "faults", &[], Some(&log));
    eventually(
        "the first 3,000 changes",
        Duration::from_secs(120),
        || async { station_messages(&world).await >= 3000 },
    )
    .await;

    // 2. PostgreSQL restarts while the capture runs; writes go on after it.
    let url = world.source_url();
    let writer = tokio::spawn(async move { write(&url, 3000, 1000, 200).await });
    eventually("changes to flow", Duration::from_secs(60), || async {
        station_messages(&world).await > 3200
    })
    .await;
    writer.abort();
    let _ = writer.await;
    drop(source);
    world.pg.restart();
    let source = sql(&world.source_url()).await;
    let written: i64 = source
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert!(written > 0);
    // How many one-row transactions committed: the highest balance written + 1.
    let last: i32 = source
        .query_one("SELECT max(balance) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    let url = world.source_url();
    write(&url, last as u32 + 1, 1000, 200).await;
    let total = last as u64 + 1 + 1000;

    eventually("every change", Duration::from_secs(120), || async {
        station_messages(&world).await >= total
    })
    .await;
    // Once every change is reported to PostgreSQL, nothing more is resent.
    all_reported(&source, "faults").await;
    assert_eq!(
        station_messages(&world).await,
        total,
        "each change stored exactly once"
    );
    kill(&mut cdc);

    let changes = read_changes(
        &world.client,
        "accounts",
        total as usize,
        Duration::from_secs(120),
    )
    .await;
    let mut positions: Vec<_> = changes.iter().map(position).collect();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len() as u64, total, "no change twice");
    let balances: std::collections::BTreeSet<i64> = changes
        .iter()
        .map(|c| c["after"]["balance"].as_i64().unwrap())
        .collect();
    assert_eq!(
        balances.len() as u64,
        total,
        "every transaction's change arrived"
    );
    for (key, list) in by_key(&changes) {
        let p: Vec<_> = list.iter().map(position).collect();
        assert!(p.windows(2).all(|w| w[0] < w[1]), "key {key} out of order");
    }

    // The sink converges to the source table.
    let target = sql(&world.target_url()).await;
    target
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text)",
        )
        .await
        .unwrap();
    let client = world.client.clone();
    let options = SinkOptions::new(world.target_url(), "accounts", "ledger", "public.accounts");
    let sinking =
        tokio::spawn(async move { sink::run(&client, &options, std::future::pending()).await });
    let query = "SELECT id::text, balance::text, note FROM accounts ORDER BY id";
    let expected = rows(&source, query).await;
    eventually("the sink to converge", Duration::from_secs(120), || async {
        rows(&target, query).await == expected
    })
    .await;
    sinking.abort();
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_100k_row_transaction_streams_with_bounded_memory() {
    let world = World::start().await;
    let source = sql(&world.source_url()).await;
    source
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text)",
        )
        .await
        .unwrap();
    let mut cdc = capture(&world, "big", &[], None);
    slot_created(&source, "big").await;
    source
        .batch_execute(
            "INSERT INTO accounts SELECT g, g, repeat('x', 200) FROM generate_series(1, 100000) g",
        )
        .await
        .unwrap();
    eventually("100,000 changes", Duration::from_secs(240), || async {
        station_messages(&world).await >= 100_000
    })
    .await;
    let peak = peak_rss_mib(cdc.id());
    kill(&mut cdc);
    println!("peak RSS of the capture for one 100,000-row transaction: {peak:.1} MiB");
    assert_eq!(station_messages(&world).await, 100_000);
    // The producer's buffer (16 MiB) and the confirmation queue bound it;
    // the transaction's rows (about 33 MB as messages) are never all held.
    assert!(peak > 0.0 && peak < 96.0, "peak RSS {peak:.1} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_node_killed_mid_stream_on_a_cluster_loses_and_repeats_nothing() {
    let pg = jetstation_harness::Postgres::start();
    let mut cluster = jetstation_harness::Cluster::start(3);
    let urls = cluster.urls();
    // A fresh cluster answers JetStream requests once its meta leader is elected.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        let options = jetstation::ConnectOptions::with_urls(urls.clone())
            .request_timeout(Duration::from_secs(5))
            .max_reconnect_delay(Duration::from_millis(250));
        match jetstation::Client::connect(options).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cluster never ready: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await; // retry interval until the meta leader is elected; the deadline bounds it
            }
        }
    };
    let admin = sql(&pg.url("postgres")).await;
    admin.batch_execute("CREATE DATABASE source").await.unwrap();
    let source_url = pg.url("source");
    let source = sql(&source_url).await;
    source
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text)",
        )
        .await
        .unwrap();
    let mut cdc = Command::new(env!("CARGO_BIN_EXE_jetstation-cdc"))
        .args([
            "--url",
            &urls.join(","),
            "capture",
            "--postgres",
            &source_url,
        ])
        .args([
            "--table",
            "public.accounts",
            "--replicas",
            "3",
            "--slot",
            "r3",
            "--publication",
            "r3",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start jetstation-cdc");
    slot_created(&source, "r3").await;
    let messages = || async {
        client
            .station("accounts")
            .await
            .map(|s| s.messages)
            .unwrap_or(0)
    };
    let writer = tokio::spawn(async move { write(&source_url, 0, 3000, 200).await });
    eventually("changes to flow", Duration::from_secs(60), || async {
        messages().await > 300
    })
    .await;
    // A node dies with SIGKILL while the changes stream, and comes back.
    cluster.nodes[0].kill();
    tokio::time::sleep(Duration::from_secs(3)).await; // the node stays down while writes go on
    cluster.nodes[0].start_again();
    writer.await.unwrap();
    eventually("every change", Duration::from_secs(180), || async {
        messages().await >= 3000
    })
    .await;
    all_reported(&source, "r3").await;
    assert_eq!(messages().await, 3000, "each change stored exactly once");
    kill(&mut cdc);
    let changes = read_changes(&client, "accounts", 3000, Duration::from_secs(120)).await;
    let mut positions: Vec<_> = changes.iter().map(position).collect();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), 3000, "no change twice");
    for (key, list) in by_key(&changes) {
        let p: Vec<_> = list.iter().map(position).collect();
        assert!(p.windows(2).all(|w| w[0] < w[1]), "key {key} out of order");
    }
}
