//! The capture against a real PostgreSQL and a real nats-server: snapshot
//! then stream, order per key, before and after images, TOAST, schema
//! versions from DDL, and the sink converging to the source.

mod common;

use std::time::Duration;

use common::{Task, World, by_key, eventually, position, read_changes, rows, slot_created, sql};
use jetstation::ErrorKind;
use jetstation_cdc::{CaptureOptions, SinkOptions, capture, sink};
use serde_json::json;

const EMPLOYEES: &str = "CREATE TABLE employees (\
    id int PRIMARY KEY, name text NOT NULL, salary numeric(12,2), active boolean, bio text);\
    ALTER TABLE employees REPLICA IDENTITY FULL;";

fn options(world: &World, slot: &str) -> CaptureOptions {
    let mut o = CaptureOptions::new(
        world.source_url(),
        vec!["public.employees".parse().unwrap()],
    );
    o.slot = slot.into();
    o.publication = slot.into();
    o.partitions = 3;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_then_changes_in_order_per_key_and_the_sink_converges() {
    let world = World::start().await;
    let source = sql(&world.source_url()).await;
    source.batch_execute(EMPLOYEES).await.unwrap();
    source
        .batch_execute(
            "INSERT INTO employees VALUES (1, 'Ada', 5000, true, 'short'), (2, 'Grace', 6000, true, NULL);",
        )
        .await
        .unwrap();

    let capturing = Task::capture(&world.client, options(&world, "hr"));
    // The snapshot's two rows arrive first.
    let snapshot = read_changes(&world.client, "employees", 2, Duration::from_secs(60)).await;
    assert!(snapshot.iter().all(|c| c["op"] == "read"), "{snapshot:?}");

    let big_bio = "x".repeat(20_000); // stored out of line (TOAST)
    source
        .batch_execute(
            "BEGIN;\
             INSERT INTO employees VALUES (3, 'Linus', 4000, true, NULL);\
             UPDATE employees SET salary = 5100 WHERE id = 1;\
             UPDATE employees SET salary = 5200 WHERE id = 1;\
             COMMIT;",
        )
        .await
        .unwrap();
    for statement in [
        format!("UPDATE employees SET bio = '{big_bio}' WHERE id = 3"),
        "UPDATE employees SET name = 'Linus T.' WHERE id = 3".into(),
        "DELETE FROM employees WHERE id = 2".into(),
        "INSERT INTO employees VALUES (4, 'Barbara', NULL, false, NULL)".into(),
        "UPDATE employees SET active = true, salary = 7000 WHERE id = 4".into(),
    ] {
        source.batch_execute(&statement).await.unwrap();
    }
    let all = read_changes(&world.client, "employees", 2 + 8, Duration::from_secs(60)).await;
    let keys = by_key(&all);
    let ops = |k: &str| {
        keys[k]
            .iter()
            .map(|c| c["op"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ops("1"), ["read", "update", "update"]);
    assert_eq!(ops("2"), ["read", "delete"]);
    assert_eq!(ops("3"), ["insert", "update", "update"]);
    assert_eq!(ops("4"), ["insert", "update"]);
    for changes in keys.values() {
        let positions: Vec<_> = changes.iter().map(position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "order: {positions:?}"
        );
    }
    // Before and after images (replica identity full).
    let k1 = &keys["1"];
    assert_eq!(k1[1]["before"]["salary"], json!("5000.00"));
    assert_eq!(k1[1]["after"]["salary"], json!("5100.00"));
    assert_eq!(k1[2]["before"]["salary"], json!("5100.00"));
    assert_eq!(k1[1]["lsn"], k1[2]["lsn"], "one transaction");
    assert_eq!(
        k1[1]["index"].as_u64().unwrap() + 1,
        k1[2]["index"].as_u64().unwrap()
    );
    assert!(k1[1]["xid"].is_u64() && k1[1]["commit_time"].is_string());
    assert_eq!(
        k1[0]["after"],
        json!({"id": 1, "name": "Ada", "salary": "5000.00", "active": true, "bio": "short"})
    );
    let delete = &keys["2"][1];
    assert_eq!(delete["after"], json!(null));
    assert_eq!(delete["before"]["name"], json!("Grace"));
    // The unchanged TOAST value is filled from the old row.
    let renamed = &keys["3"][2];
    assert_eq!(renamed["after"]["name"], json!("Linus T."));
    assert_eq!(renamed["after"]["bio"].as_str().map(str::len), Some(20_000));
    assert_eq!(renamed["unchanged"], json!([]));
    assert_eq!(keys["4"][1]["after"]["active"], json!(true));

    // The sink applies them to a table with a subset of the columns.
    let target = sql(&world.target_url()).await;
    target
        .batch_execute("CREATE TABLE staff (id int PRIMARY KEY, name text, salary numeric(12,2));")
        .await
        .unwrap();
    let sinking = Task::sink(
        &world.client,
        SinkOptions::new(
            world.target_url(),
            "employees",
            "staff-sync",
            "public.staff",
        ),
    );
    let expected = rows(
        &source,
        "SELECT id::text, name, salary::text FROM employees ORDER BY id",
    )
    .await;
    eventually("the sink to converge", Duration::from_secs(60), || async {
        rows(
            &target,
            "SELECT id::text, name, salary::text FROM staff ORDER BY id",
        )
        .await
            == expected
    })
    .await;
    // Replaying every change again changes nothing: positions already applied are skipped.
    world
        .client
        .delete_group("employees", "staff-sync")
        .await
        .ok();
    sinking.stop().await.unwrap();
    let again = Task::sink(
        &world.client,
        SinkOptions::new(
            world.target_url(),
            "employees",
            "staff-sync-2",
            "public.staff",
        ),
    );
    eventually(
        "the replay to be consumed",
        Duration::from_secs(60),
        || async {
            world
                .client
                .groups("employees")
                .await
                .unwrap()
                .iter()
                .any(|g| {
                    g.group == "staff-sync-2"
                        && g.partitions
                            .iter()
                            .all(|p| p.lag == 0 && p.unacknowledged == 0)
                })
        },
    )
    .await;
    assert_eq!(
        rows(
            &target,
            "SELECT id::text, name, salary::text FROM staff ORDER BY id"
        )
        .await,
        expected
    );
    again.stop().await.unwrap();
    capturing.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_column_is_a_new_schema_version_and_a_breaking_change_stops_the_stream() {
    let world = World::start().await;
    let source = sql(&world.source_url()).await;
    source.batch_execute(EMPLOYEES).await.unwrap();
    let client = world.client.clone();
    let opts = options(&world, "ddl");
    let capturing =
        tokio::spawn(async move { capture::run(&client, &opts, std::future::pending()).await });
    eventually("the capture to start", Duration::from_secs(60), || async {
        world.client.schema("employees", None).await.is_ok()
    })
    .await;
    assert_eq!(
        world
            .client
            .schema("employees", None)
            .await
            .unwrap()
            .version,
        1
    );
    // Give the slot time to exist before writing (the snapshot is empty).
    slot_created(&source, "ddl").await;

    for statement in [
        "INSERT INTO employees VALUES (1, 'Ada', 5000, true, NULL)",
        "ALTER TABLE employees ADD COLUMN department text",
        "INSERT INTO employees VALUES (2, 'Grace', 6000, true, NULL, 'Navy')",
    ] {
        source.batch_execute(statement).await.unwrap();
    }
    let changes = read_changes(&world.client, "employees", 2, Duration::from_secs(60)).await;
    let keys = by_key(&changes);
    assert_eq!(keys["2"][0]["after"]["department"], json!("Navy"));
    let v2 = world.client.schema("employees", None).await.unwrap();
    assert_eq!(v2.version, 2);
    assert!(v2.source.contains("\"department\""), "{}", v2.source);

    // Changing a column's type breaks the backward mode: the capture stops
    // with a clear error before sending the change.
    for statement in [
        "ALTER TABLE employees ALTER COLUMN salary TYPE int USING salary::int",
        "INSERT INTO employees VALUES (3, 'Linus', 4000, true, NULL, 'Kernel')",
    ] {
        source.batch_execute(statement).await.unwrap();
    }
    let err = tokio::time::timeout(Duration::from_secs(60), capturing)
        .await
        .expect("the capture stops")
        .unwrap()
        .expect_err("a breaking change is an error");
    assert_eq!(err.kind(), ErrorKind::IncompatibleSchema);
    assert!(
        err.message().contains("table public.employees changed"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("salary"), "{}", err.message());
    assert_eq!(
        world.client.station("employees").await.unwrap().messages,
        2,
        "nothing of the new shape was sent"
    );
    assert_eq!(
        world
            .client
            .schema("employees", None)
            .await
            .unwrap()
            .version,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unchanged_toast_value_without_the_old_row_is_named_and_kept_by_the_sink() {
    let world = World::start().await;
    let source = sql(&world.source_url()).await;
    source
        .batch_execute("CREATE TABLE documents (id int PRIMARY KEY, title text, body text)")
        .await
        .unwrap();
    let mut opts = CaptureOptions::new(world.source_url(), vec!["documents".parse().unwrap()]);
    opts.slot = "docs".into();
    opts.publication = "docs".into();
    let client = world.client.clone();
    let capturing =
        tokio::spawn(async move { capture::run(&client, &opts, std::future::pending()).await });
    slot_created(&source, "docs").await;
    // Random text does not compress, so the body is stored out of line.
    source
        .batch_execute(
            "INSERT INTO documents SELECT 1, 'draft', string_agg(md5(g::text), '') FROM generate_series(1, 2000) g",
        )
        .await
        .unwrap();
    source
        .batch_execute("UPDATE documents SET title = 'final' WHERE id = 1")
        .await
        .unwrap();
    let changes = read_changes(&world.client, "documents", 2, Duration::from_secs(60)).await;
    let keys = by_key(&changes);
    let update = &keys["1"][1];
    assert_eq!(update["op"], json!("update"));
    assert_eq!(update["after"], json!({"id": 1, "title": "final"}));
    assert_eq!(update["unchanged"], json!(["body"]));
    assert_eq!(
        update["before"],
        json!(null),
        "the key did not change: no old row"
    );

    let target = sql(&world.target_url()).await;
    target
        .batch_execute("CREATE TABLE documents (id int PRIMARY KEY, title text, body text)")
        .await
        .unwrap();
    let client = world.client.clone();
    let options = SinkOptions::new(world.target_url(), "documents", "mirror", "documents");
    let sinking =
        tokio::spawn(async move { sink::run(&client, &options, std::future::pending()).await });
    let query = "SELECT id::text, title, md5(body) FROM documents";
    let expected = rows(&source, query).await;
    eventually("the sink to converge", Duration::from_secs(60), || async {
        rows(&target, query).await == expected
    })
    .await;
    sinking.abort();
    capturing.abort();
}
