//! Schemaverse against a real nats-server: registry, compatibility, local
//! validation before send, consumer-side validation and dead letters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jetstation::{
    Client, Compatibility, ConsumerOptions, ErrorKind, Message, ProducerOptions, SchemaDefinition,
    SchemaFormat, StationConfig,
};
use serde_json::{Value, json};

const EMPLOYEE_JSON: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "salary": {"type": "number", "minimum": 0}
  },
  "required": ["name"]
}"#;

const EMPLOYEE_PROTO: &str = r#"
syntax = "proto3";
package hr;
message Employee {
  string name = 1;
  int64 salary = 2;
}
"#;

const EMPLOYEE_AVRO: &str = r#"{
  "type": "record", "name": "Employee", "namespace": "hr",
  "fields": [
    {"name": "name", "type": "string"},
    {"name": "salary", "type": "long"}
  ]
}"#;

fn definition(format: SchemaFormat) -> SchemaDefinition {
    match format {
        SchemaFormat::JsonSchema => SchemaDefinition::json_schema(EMPLOYEE_JSON),
        SchemaFormat::Protobuf => SchemaDefinition::protobuf(EMPLOYEE_PROTO, "hr.Employee"),
        SchemaFormat::Avro => SchemaDefinition::avro(EMPLOYEE_AVRO),
    }
}

/// An invalid payload for each format.
fn invalid_payload(format: SchemaFormat) -> Vec<u8> {
    match format {
        SchemaFormat::JsonSchema => br#"{"name": "Ada", "salary": "lots"}"#.to_vec(),
        // Field 2 announced as a length-delimited string of 100 bytes, then nothing.
        SchemaFormat::Protobuf => vec![0x12, 0x64, 0x41],
        // A string length, then too few bytes.
        SchemaFormat::Avro => vec![0x08, 0x41],
    }
}

async fn next_payload(consumer: &jetstation::Consumer) -> jetstation::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn each_format_flows_end_to_end_and_invalid_payloads_are_refused_before_sending() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    for format in [
        SchemaFormat::JsonSchema,
        SchemaFormat::Protobuf,
        SchemaFormat::Avro,
    ] {
        let name = format!("employee-{}", format.as_str().replace('_', "-"));
        let v1 = client
            .register_schema(&name, definition(format))
            .await
            .unwrap();
        assert_eq!(v1.version, 1);
        let station = format!("st-{name}");
        client
            .create_station(&station, StationConfig::default().schema(&name))
            .await
            .unwrap();
        let producer = client
            .producer(&station, ProducerOptions::default())
            .await
            .unwrap();
        let value = json!({"name": "Ada", "salary": 5200});
        let payload = client
            .encode_with_schema(&name, None, &value)
            .await
            .unwrap();
        producer
            .send(Message::new(payload.clone()).key("emp-1"))
            .await
            .unwrap();

        let err = producer
            .send(Message::new(invalid_payload(format)).key("emp-1"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SchemaValidation, "{format}: {err}");
        assert!(err.message().contains(&name), "{err}");
        if format == SchemaFormat::JsonSchema {
            assert!(err.message().contains("/salary"), "names the path: {err}");
            assert!(
                err.message().contains("rule: type"),
                "names the rule: {err}"
            );
        }
        assert_eq!(
            client.station(&station).await.unwrap().messages,
            1,
            "{format}: nothing sent"
        );

        let consumer = client
            .consumer(&station, "g", ConsumerOptions::default())
            .await
            .unwrap();
        let d = next_payload(&consumer).await;
        assert_eq!(d.payload.as_ref(), payload.as_slice());
        assert_eq!(d.header("Jst-Schema"), Some(name.as_str()));
        assert_eq!(d.header("Jst-Schema-Version"), Some("1"));
        let decoded = client
            .decode_with_schema(&name, Some(1), &d.payload)
            .await
            .unwrap();
        let salary = decoded["salary"]
            .as_f64()
            .or_else(|| decoded["salary"].as_str().and_then(|s| s.parse().ok()));
        assert_eq!(decoded["name"], "Ada", "{format}: {decoded}");
        assert_eq!(salary, Some(5200.0), "{format}: {decoded}");
        d.ack().unwrap();
        consumer.close().await.unwrap();
    }
}

/// (description, v2 source, expected verdicts for none, backward, forward, full)
type Evolution = (&'static str, SchemaDefinition, [bool; 4]);

fn json_evolutions() -> (SchemaDefinition, Vec<Evolution>) {
    let j = |props: Value, required: Value, extra: Option<bool>| {
        let mut s = json!({"type": "object", "properties": props, "required": required});
        if let Some(e) = extra {
            s["additionalProperties"] = json!(e);
        }
        SchemaDefinition::json_schema(s.to_string())
    };
    let base_props = json!({"name": {"type": "string"}, "salary": {"type": "integer"}});
    let v1 = j(base_props.clone(), json!(["name"]), None);
    let evolutions = vec![
        (
            "add an optional property",
            j(
                json!({"name": {"type": "string"}, "salary": {"type": "integer"}, "email": {"type": "string"}}),
                json!(["name"]),
                None,
            ),
            [true, true, true, true],
        ),
        (
            "add a required property",
            j(
                json!({"name": {"type": "string"}, "salary": {"type": "integer"}, "email": {"type": "string"}}),
                json!(["name", "email"]),
                None,
            ),
            [true, false, true, false],
        ),
        (
            "make a required property optional",
            j(base_props.clone(), json!([]), None),
            [true, true, false, false],
        ),
        (
            "change a property's type",
            j(
                json!({"name": {"type": "string"}, "salary": {"type": "string"}}),
                json!(["name"]),
                None,
            ),
            [true, false, false, false],
        ),
        (
            "widen integer to number",
            j(
                json!({"name": {"type": "string"}, "salary": {"type": "number"}}),
                json!(["name"]),
                None,
            ),
            [true, true, false, false],
        ),
        (
            "forbid additional properties",
            j(base_props.clone(), json!(["name"]), Some(false)),
            [true, false, true, false],
        ),
    ];
    (v1, evolutions)
}

fn protobuf_evolutions() -> (SchemaDefinition, Vec<Evolution>) {
    let p3 = |body: &str| {
        SchemaDefinition::protobuf(
            format!("syntax = \"proto3\";\npackage hr;\n{body}"),
            "hr.Employee",
        )
    };
    let v1 = p3("message Employee { string name = 1; int64 salary = 2; }");
    let evolutions = vec![
        (
            "add a field",
            p3("message Employee { string name = 1; int64 salary = 2; string email = 3; }"),
            [true, true, true, true],
        ),
        (
            "remove a field without reserving its number",
            p3("message Employee { string name = 1; }"),
            [true, false, false, false],
        ),
        (
            "remove a field and reserve its number",
            p3("message Employee { reserved 2; string name = 1; }"),
            [true, true, true, true],
        ),
        (
            "reuse a field number",
            p3("message Employee { string name = 1; string title = 2; }"),
            [true, false, false, false],
        ),
        (
            "change a field's type",
            p3("message Employee { string name = 1; string salary = 2; }"),
            [true, false, false, false],
        ),
        (
            "change the message type",
            SchemaDefinition::protobuf(
                "syntax = \"proto3\";\npackage hr;\nmessage Person { string name = 1; int64 salary = 2; }",
                "hr.Person",
            ),
            [true, false, false, false],
        ),
    ];
    (v1, evolutions)
}

fn protobuf2_evolutions() -> (SchemaDefinition, Vec<Evolution>) {
    let p2 = |body: &str| {
        SchemaDefinition::protobuf(
            format!("syntax = \"proto2\";\npackage hr;\n{body}"),
            "hr.Employee",
        )
    };
    let v1 = p2("message Employee { optional string name = 1; }");
    let evolutions = vec![(
        "add a required field (proto2)",
        p2("message Employee { optional string name = 1; required string email = 2; }"),
        [true, false, true, false],
    )];
    (v1, evolutions)
}

fn avro_evolutions() -> (SchemaDefinition, Vec<Evolution>) {
    let a = |fields: Value| {
        SchemaDefinition::avro(
            json!({"type": "record", "name": "Employee", "fields": fields}).to_string(),
        )
    };
    let name = json!({"name": "name", "type": "string"});
    let salary = json!({"name": "salary", "type": "long"});
    let bonus = json!({"name": "bonus", "type": "long", "default": 0});
    let v1 = a(json!([name, salary, bonus]));
    let evolutions = vec![
        (
            "add a field with a default",
            a(
                json!([name, salary, bonus, {"name": "email", "type": ["null", "string"], "default": null}]),
            ),
            [true, true, true, true],
        ),
        (
            "add a field without a default",
            a(json!([name, salary, bonus, {"name": "email", "type": "string"}])),
            [true, false, true, false],
        ),
        (
            "remove a field without a default",
            a(json!([name, bonus])),
            [true, true, false, false],
        ),
        (
            "remove a field with a default",
            a(json!([name, salary])),
            [true, true, true, true],
        ),
        (
            "promote long to double",
            a(json!([name, {"name": "salary", "type": "double"}, bonus])),
            [true, true, false, false],
        ),
        (
            "change string to int",
            a(json!([{"name": "name", "type": "int"}, salary, bonus])),
            [true, false, false, false],
        ),
    ];
    (v1, evolutions)
}

#[tokio::test]
async fn compatibility_table_per_format_and_mode() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let modes = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::Forward,
        Compatibility::Full,
    ];
    let mut table = Vec::new();
    let mut n = 0;
    for (format, (v1, evolutions)) in [
        ("json", json_evolutions()),
        ("proto3", protobuf_evolutions()),
        ("proto2", protobuf2_evolutions()),
        ("avro", avro_evolutions()),
    ] {
        for (what, v2, expected) in evolutions {
            for (mode, ok) in modes.iter().zip(expected) {
                n += 1;
                let name = format!("compat-{n}");
                client
                    .register_schema_with(&name, v1.clone(), *mode)
                    .await
                    .unwrap();
                let result = client.register_schema(&name, v2.clone()).await;
                match (&result, ok) {
                    (Ok(v), true) => assert_eq!(v.version, 2),
                    (Err(e), false) => {
                        assert_eq!(
                            e.kind(),
                            ErrorKind::IncompatibleSchema,
                            "{format} {what} {mode}: {e}"
                        );
                    }
                    _ => panic!("{format}: {what} under {mode}: expected ok={ok}, got {result:?}"),
                }
                table.push(format!(
                    "{format:6} {what:45} {mode:8} {}",
                    if ok { "ok" } else { "refused" }
                ));
            }
        }
    }
    assert!(table.len() >= 3 * 5 * 4);
    println!("{}", table.join("\n"));
}

#[tokio::test]
async fn an_incompatible_version_lists_each_breaking_change() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .register_schema_with(
            "emp",
            SchemaDefinition::json_schema(
                r#"{"type":"object","properties":{"name":{"type":"string"},"salary":{"type":"integer"}}}"#,
            ),
            Compatibility::Full,
        )
        .await
        .unwrap();
    let err = client
        .register_schema(
            "emp",
            SchemaDefinition::json_schema(
                r#"{"type":"object","properties":{"name":{"type":"string"},"salary":{"type":"string"},"team":{"type":"string"}},"required":["team"]}"#,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IncompatibleSchema);
    let m = err.message();
    assert!(
        m.contains("at /salary: type changed from integer to string"),
        "{m}"
    );
    assert!(m.contains("required property \"team\" added"), "{m}");
    assert!(m.contains("full compatible"), "{m}");
    // The refused version was not stored.
    assert_eq!(client.schema("emp", None).await.unwrap().version, 1);
}

#[tokio::test]
async fn a_foreign_message_that_violates_the_schema_is_dead_lettered_with_the_reason() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    client
        .register_schema("employee", SchemaDefinition::json_schema(EMPLOYEE_JSON))
        .await
        .unwrap();
    client
        .create_station("hr", StationConfig::default().schema("employee"))
        .await
        .unwrap();
    // A plain NATS client, with no jetstation headers at all.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    for payload in [r#"{"name":"Ada"}"#, r#"{"salary":-5}"#, r#"{"name":"Bob"}"#] {
        js.publish("jst._.hr.0.m", payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let consumer = client
        .consumer("hr", "payroll", ConsumerOptions::default())
        .await
        .unwrap();
    let first = next_payload(&consumer).await;
    assert_eq!(first.payload.as_ref(), br#"{"name":"Ada"}"#);
    first.ack().unwrap();
    let second = next_payload(&consumer).await;
    assert_eq!(
        second.payload.as_ref(),
        br#"{"name":"Bob"}"#,
        "the invalid one is never handed over"
    );
    second.ack().unwrap();
    wait_until(Duration::from_secs(10), "the dead letter", || {
        let client = client.clone();
        async move { client.station("hr").await.unwrap().dead_letters == 1 }
    })
    .await;
    let letter = &client.dead_letters("hr").await.unwrap()[0];
    assert_eq!(letter.payload.as_ref(), br#"{"salary":-5}"#);
    assert!(
        letter.last_error.starts_with("schema validation failed"),
        "{}",
        letter.last_error
    );
    assert!(
        letter
            .last_error
            .contains("\"name\" is a required property"),
        "{}",
        letter.last_error
    );
    assert_eq!(letter.deliveries, 1);
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn a_consumer_written_for_v1_keeps_working_with_a_producer_on_v2() {
    #[derive(serde::Deserialize)]
    struct EmployeeV1 {
        name: String,
    }
    let server = NatsServer::start();
    let client = connect(&server).await;
    let v1 = r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#;
    let v2 = r#"{"type":"object","properties":{"name":{"type":"string"},"email":{"type":"string"}},"required":["name"]}"#;
    client
        .register_schema("person", SchemaDefinition::json_schema(v1))
        .await
        .unwrap();
    client
        .create_station("people", StationConfig::default().schema("person"))
        .await
        .unwrap();
    let consumer = client
        .consumer("people", "v1-readers", ConsumerOptions::default())
        .await
        .unwrap();
    client
        .register_schema("person", SchemaDefinition::json_schema(v2))
        .await
        .unwrap();
    let producer = client
        .producer("people", ProducerOptions::default())
        .await
        .unwrap();
    producer
        .send(Message::new(r#"{"name":"Ada","email":"ada@example.com"}"#))
        .await
        .unwrap();
    let d = next_payload(&consumer).await;
    assert_eq!(d.header("Jst-Schema-Version"), Some("2"));
    let parsed: EmployeeV1 = serde_json::from_slice(&d.payload).unwrap();
    assert_eq!(parsed.name, "Ada");
    d.ack().unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn a_version_registered_by_another_client_is_used_within_a_second() {
    let server = NatsServer::start();
    let a = connect(&server).await;
    let b = connect(&server).await;
    let v = contact_schema;
    a.register_schema_with("contact", v("string"), Compatibility::None)
        .await
        .unwrap();
    b.register_schema("contact", v("integer")).await.unwrap(); // v2
    a.create_station("contacts", StationConfig::default().schema("contact"))
        .await
        .unwrap();
    let producer = a
        .producer("contacts", ProducerOptions::default())
        .await
        .unwrap();
    producer.send(Message::new(r#"{"email":7}"#)).await.unwrap();
    // Client b registers v3; a's producer must validate with it within 1 s.
    b.register_schema("contact", v("string")).await.unwrap();
    send_until_accepted(
        &producer,
        Duration::from_secs(1),
        Duration::from_millis(10),
        &[ErrorKind::SchemaValidation],
        "v3 not seen within 1 s",
    )
    .await;
    let err = producer
        .send(Message::new(r#"{"email":7}"#))
        .await
        .unwrap_err();
    assert!(err.message().contains("version 3"), "{err}");
}

#[tokio::test]
async fn bad_schema_input_is_a_typed_error() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    for (what, def) in [
        (
            "JSON that does not parse",
            SchemaDefinition::json_schema("{not json"),
        ),
        (
            "an invalid JSON Schema",
            SchemaDefinition::json_schema(r#"{"type": 12}"#),
        ),
        (
            "a .proto syntax error",
            SchemaDefinition::protobuf("message { oops", "x.Y"),
        ),
        (
            "an unknown message type",
            SchemaDefinition::protobuf(EMPLOYEE_PROTO, "hr.Nope"),
        ),
        (
            "an invalid Avro schema",
            SchemaDefinition::avro(r#"{"type": "record"}"#),
        ),
    ] {
        let err = client.register_schema("bad", def).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
    }
    assert!(
        client.schemas().await.unwrap().is_empty(),
        "nothing half-registered"
    );
    let err = "xml".parse::<SchemaFormat>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message().contains("json_schema, protobuf or avro"),
        "{err}"
    );

    let err = client.schema("ghost", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    client
        .register_schema("real", SchemaDefinition::json_schema(EMPLOYEE_JSON))
        .await
        .unwrap();
    let err = client.schema("real", Some(9)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = client
        .create_station("typed", StationConfig::default().schema("ghost"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("register it first"), "{err}");
    let err = client
        .create_station("typed", StationConfig::default().schema_version("real", 4))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        client.stations().await.unwrap().is_empty(),
        "no station half-created"
    );

    // A bound version cannot be deleted; an unbound one can.
    client
        .register_schema(
            "real",
            SchemaDefinition::json_schema(r#"{"type":"object"}"#),
        )
        .await
        .unwrap();
    client
        .create_station("typed", StationConfig::default().schema_version("real", 1))
        .await
        .unwrap();
    let err = client.delete_schema_version("real", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("typed"), "{err}");
    client.delete_schema_version("real", 2).await.unwrap();
    assert_eq!(client.schemas().await.unwrap()[0].versions, vec![1]);
}

#[tokio::test]
async fn protobuf_and_avro_helpers_round_trip_json_values() {
    let server = NatsServer::start();
    let client: Client = connect(&server).await;
    client
        .register_schema("p", definition(SchemaFormat::Protobuf))
        .await
        .unwrap();
    client
        .register_schema("a", definition(SchemaFormat::Avro))
        .await
        .unwrap();
    let value = json!({"name": "Grace", "salary": 7100});
    let bytes = client.encode_with_schema("p", None, &value).await.unwrap();
    let back = client.decode_with_schema("p", None, &bytes).await.unwrap();
    assert_eq!(back["name"], "Grace");
    assert_eq!(
        back["salary"], "7100",
        "proto3 JSON renders int64 as a string"
    );
    let bytes = client.encode_with_schema("a", None, &value).await.unwrap();
    assert_eq!(
        client.decode_with_schema("a", None, &bytes).await.unwrap(),
        value
    );
    let err = client
        .encode_with_schema("a", None, &json!({"name": "Grace"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaValidation, "{err}");
}

/// The registry's watch outlives a server restart: a version registered
/// after the server came back is used by a producer that was running
/// before (the watch ends with the connection and is opened again).
#[tokio::test]
async fn the_schema_watch_resumes_after_a_server_restart() {
    let mut server = NatsServer::start();
    let a = connect(&server).await;
    let v = contact_schema;
    a.register_schema_with("contact", v("integer"), Compatibility::None)
        .await
        .unwrap();
    a.create_station("contacts", StationConfig::default().schema("contact"))
        .await
        .unwrap();
    let producer = a
        .producer("contacts", ProducerOptions::default())
        .await
        .unwrap();
    producer.send(Message::new(r#"{"email":7}"#)).await.unwrap();
    server.restart();
    let b = connect(&server).await;
    b.register_schema("contact", v("string")).await.unwrap(); // v2
    send_until_accepted(
        &producer,
        Duration::from_secs(10),
        Duration::from_millis(50),
        &[
            ErrorKind::SchemaValidation,
            ErrorKind::Timeout,
            ErrorKind::Connection,
        ],
        "v2 not seen within 10 s of the restart",
    )
    .await;
}

/// A contact with an `email` of the given JSON type.
fn contact_schema(email_type: &str) -> SchemaDefinition {
    SchemaDefinition::json_schema(format!(
        r#"{{"type":"object","properties":{{"email":{{"type":"{email_type}"}}}}}}"#
    ))
}

/// Sends a contact with a string email until the producer accepts it (it
/// validates against the newest version it knows), every `every`, failing
/// with `what` after `limit`; every refusal must be one of `allowed`.
async fn send_until_accepted(
    producer: &jetstation::Producer,
    limit: Duration,
    every: Duration,
    allowed: &[ErrorKind],
    what: &str,
) {
    let registered = Instant::now();
    loop {
        match producer
            .send(Message::new(r#"{"email":"ada@example.com"}"#))
            .await
        {
            Ok(_) => return,
            Err(e) => assert!(allowed.contains(&e.kind()), "{e}"),
        }
        assert!(registered.elapsed() < limit, "{what}");
        // Retry interval; the deadline `limit` bounds the loop.
        tokio::time::sleep(every).await;
    }
}
