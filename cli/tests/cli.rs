//! The `jetstation` tool against a real nats-server: every subcommand, its
//! `--json` output parsed, its tables read, its errors typed.

use std::{process::Command, time::Duration};

use jetstation::{
    Client, ConnectOptions, ConsumerOptions, Message, SchemaDefinition, StationConfig,
};
use jetstation_harness::NatsServer;
use serde_json::Value;

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(server: &NatsServer, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_jetstation"))
        .arg("--url")
        .arg(server.url())
        .args(args)
        .env_remove("NATS_URL")
        .output()
        .expect("run jetstation");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs with `--json` and parses what it printed.
fn json(server: &NatsServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let r = run(server, &all);
    assert_eq!(r.status, 0, "{args:?} failed: {}", r.stderr);
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
}

async fn library(server: &NatsServer) -> Client {
    Client::connect(ConnectOptions::new(server.url()))
        .await
        .unwrap()
}

#[tokio::test]
async fn stations_send_tail_and_groups() {
    let server = NatsServer::start();
    let created = json(
        &server,
        &[
            "stations",
            "create",
            "hires",
            "--partitions",
            "2",
            "--max-age",
            "3600",
        ],
    );
    assert_eq!(created["partitions"], 2);
    assert_eq!(created["max_age"], 3600.0);
    let listed = json(&server, &["stations", "ls"]);
    assert_eq!(listed[0]["name"], "hires");
    let table = run(&server, &["stations", "ls"]);
    assert!(
        table.stdout.contains("hires") && table.stdout.contains("partitions"),
        "{}",
        table.stdout
    );

    let sent = json(
        &server,
        &[
            "send",
            "hires",
            r#"{"id":"e-1"}"#,
            "--key",
            "e-1",
            "--header",
            "x-source=cli",
        ],
    );
    assert_eq!(sent["duplicate"], false);
    let shown = json(&server, &["stations", "show", "hires"]);
    assert_eq!(shown["messages"], 1);
    assert_eq!(shown["partitions_detail"].as_array().unwrap().len(), 2);
    let updated = json(
        &server,
        &["stations", "update", "hires", "--max-deliveries", "7"],
    );
    assert_eq!(updated["max_deliveries"], 7);

    // tail from the start: one JSON object per message.
    let tail = run(
        &server,
        &[
            "tail", "hires", "--from", "earliest", "--count", "1", "--json",
        ],
    );
    assert_eq!(tail.status, 0, "{}", tail.stderr);
    let line: Value = serde_json::from_str(tail.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["key"], "e-1");
    assert_eq!(line["payload"], r#"{"id":"e-1"}"#);
    // Its own group is gone afterwards.
    assert_eq!(
        json(&server, &["groups", "ls", "hires"]),
        Value::Array(vec![])
    );

    // A running member shows up with its lag.
    let client = library(&server).await;
    let consumer = client
        .consumer("hires", "payroll", ConsumerOptions::default())
        .await
        .unwrap();
    consumer.next().await.unwrap().unwrap().ack().unwrap();
    let mut lag = None;
    for _ in 0..50 {
        let groups = json(&server, &["groups", "ls", "hires"]);
        if groups[0]["lag"] == 0
            && groups[0]["members"]
                .as_array()
                .is_some_and(|m| m.len() == 1)
        {
            lag = Some(0);
            break;
        }
        // Poll interval while the commit and the announcement land; 50 rounds bound the wait.
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval; 50 rounds bound the wait
    }
    assert_eq!(lag, Some(0), "the group's lag never fell to 0");
    let group = json(&server, &["groups", "show", "hires", "payroll"]);
    assert_eq!(group["partitions"].as_array().unwrap().len(), 2);
    consumer.close().await.unwrap();

    let bench = json(&server, &["bench", "--messages", "2000", "--size", "64"]);
    assert!(
        bench["produce_per_second"].as_f64().unwrap() > 0.0,
        "{bench}"
    );
    assert!(
        bench["consume_per_second"].as_f64().unwrap() > 0.0,
        "{bench}"
    );
    // Its station is gone afterwards.
    assert_eq!(
        json(&server, &["stations", "ls"]).as_array().unwrap().len(),
        1
    );

    let deleted = run(&server, &["stations", "delete", "hires"]);
    assert!(deleted.stdout.contains("deleted"), "{}", deleted.stdout);
}

#[tokio::test]
async fn dead_letters_are_listed_shown_and_replayed() {
    let server = NatsServer::start();
    let client = library(&server).await;
    client
        .create_station("poison", StationConfig::default().max_deliveries(1))
        .await
        .unwrap();
    let producer = client.producer("poison", Default::default()).await.unwrap();
    producer.send(Message::new("bad").key("k")).await.unwrap();
    let consumer = client
        .consumer("poison", "g", ConsumerOptions::default())
        .await
        .unwrap();
    consumer
        .next()
        .await
        .unwrap()
        .unwrap()
        .nack_with_reason("no such account", None)
        .unwrap();
    let mut letters = Value::Null;
    for _ in 0..50 {
        letters = json(&server, &["dead-letters", "ls", "poison"]);
        if letters.as_array().is_some_and(|l| l.len() == 1) {
            break;
        }
        // Poll interval while the dead letter is written; 50 rounds bound the wait.
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval; 50 rounds bound the wait
    }
    assert_eq!(letters[0]["last_error"], "no such account");
    let sequence = letters[0]["sequence"].as_u64().unwrap().to_string();
    let shown = json(&server, &["dead-letters", "show", "poison", &sequence]);
    assert_eq!(shown["payload"], "bad");
    let replayed = json(&server, &["dead-letters", "replay-all", "poison"]);
    assert_eq!(replayed["replayed"], 1);
    assert_eq!(
        json(&server, &["dead-letters", "ls", "poison"]),
        Value::Array(vec![])
    );
    let again = consumer.next().await.unwrap().unwrap();
    assert_eq!(again.payload.as_ref(), b"bad");
    again.nack_with_reason("still no account", None).unwrap();
    for _ in 0..50 {
        if json(&server, &["dead-letters", "ls", "poison"])
            .as_array()
            .is_some_and(|l| l.len() == 1)
        {
            break;
        }
        // Poll interval while the dead letter is written; 50 rounds bound the wait.
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval; 50 rounds bound the wait
    }
    let purged = json(&server, &["dead-letters", "purge", "poison"]);
    assert_eq!(purged["purged"], 1);
    assert_eq!(
        json(&server, &["dead-letters", "ls", "poison"]),
        Value::Array(vec![])
    );
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn schemas_and_errors() {
    let server = NatsServer::start();
    let client = library(&server).await;
    client
        .register_schema(
            "employee",
            SchemaDefinition::json_schema(r#"{"type":"object","required":["id"]}"#),
        )
        .await
        .unwrap();
    let schemas = json(&server, &["schemas", "ls"]);
    assert_eq!(schemas[0]["name"], "employee");
    assert_eq!(schemas[0]["format"], "json_schema");
    let shown = json(&server, &["schemas", "show", "employee"]);
    assert_eq!(shown["version"], 1);
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2.json");
    std::fs::write(
        &v2,
        r#"{"type":"object","required":["id"],"properties":{"name":{"type":"string"}}}"#,
    )
    .unwrap();
    let registered = json(
        &server,
        &["schemas", "register", "employee", v2.to_str().unwrap()],
    );
    assert_eq!(registered["version"], 2);
    // JSON sources are compared pretty-printed: the diff names the field.
    let diff = json(&server, &["schemas", "diff", "employee", "1", "2"]);
    assert!(
        diff["diff"]
            .as_str()
            .unwrap()
            .contains("+  \"properties\": {"),
        "{diff}"
    );
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"id":"e-1","name":"Ada"}"#).unwrap();
    assert_eq!(
        json(
            &server,
            &["schemas", "check", "employee", good.to_str().unwrap()]
        )["valid"],
        true
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name":"no id"}"#).unwrap();
    let refused = run(
        &server,
        &["schemas", "check", "employee", bad.to_str().unwrap()],
    );
    assert_eq!(refused.status, 1);
    assert!(
        refused.stderr.contains("error (schema_validation)"),
        "{}",
        refused.stderr
    );

    let missing = run(&server, &["stations", "show", "nowhere"]);
    assert_eq!(missing.status, 1);
    assert!(
        missing.stderr.contains("error (not_found)"),
        "{}",
        missing.stderr
    );
    let bad = run(&server, &["stations", "create", "x", "--storage", "tape"]);
    assert_eq!(bad.status, 1);
    assert!(
        bad.stderr.contains("error (invalid_argument)"),
        "{}",
        bad.stderr
    );
    let unreachable = Command::new(env!("CARGO_BIN_EXE_jetstation"))
        .args(["--url", "nats://127.0.0.1:1", "stations", "ls"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("error (connection)"));
}
