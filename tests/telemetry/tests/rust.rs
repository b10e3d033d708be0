//! The core's `otel` feature against a real nats-server: a message sent
//! inside a `tracing` span carries a `create` span's context; `consume` runs
//! the handler in a `process` span that is the child of that `create` span
//! and links to it; the application's own spans nest under `process`; the
//! messaging metrics count what happened.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};
use jetstation_harness::NatsServer;
use jetstation_telemetry_tests::Otel;
use tracing::Instrument;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_link_across_the_broker_and_metrics_count() {
    let otel = Otel::install();
    let server = NatsServer::start();
    let client = Client::connect(ConnectOptions::new(server.url()))
        .await
        .unwrap();
    client
        .create_station("payroll", StationConfig::default().partitions(2))
        .await
        .unwrap();
    let producer = client
        .producer("payroll", Default::default())
        .await
        .unwrap();
    async {
        for i in 0..4 {
            producer
                .send(Message::new(format!("salary {i}")).key(format!("emp-{i}")))
                .await
                .unwrap();
        }
    }
    .instrument(tracing::info_span!("request"))
    .await;
    // A message that brings its own trace context keeps it.
    let foreign = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    producer
        .send(
            Message::new("from elsewhere")
                .key("emp-9")
                .header("traceparent", foreign),
        )
        .await
        .unwrap();

    let consumer = client
        .consumer("payroll", "ledger", ConsumerOptions::default())
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let run = {
        let (consumer, seen) = (consumer.clone(), seen.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |m| {
                    let seen = seen.clone();
                    async move {
                        async {}.instrument(tracing::info_span!("apply")).await;
                        seen.lock()
                            .unwrap()
                            .push(m.header("traceparent").map(String::from));
                        Ok::<(), String>(())
                    }
                })
                .await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "5 messages handled");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll until the handler saw every message; the deadline bounds it
    }
    consumer.close().await.unwrap();
    run.await.unwrap().unwrap();

    let spans = otel.spans();
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("request span");
    let creates: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "create payroll")
        .collect();
    assert_eq!(
        creates.len(),
        4,
        "one create span per message without a context"
    );
    for c in &creates {
        assert_eq!(c.kind, "producer");
        assert_eq!(c.parent, request.span_id);
        assert_eq!(c.attribute("messaging.system"), Some("nats"));
        assert_eq!(c.attribute("messaging.operation.type"), Some("create"));
        assert_eq!(c.attribute("messaging.destination.name"), Some("payroll"));
    }
    let processes: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "process payroll")
        .collect();
    assert_eq!(processes.len(), 5);
    for p in &processes {
        assert_eq!(p.kind, "consumer");
        assert_eq!(p.links, vec![p.parent.clone()], "linked to its parent");
        assert_eq!(p.attribute("messaging.consumer.group.name"), Some("ledger"));
        assert_eq!(p.attribute("messaging.system"), Some("nats"));
    }
    let from_creates = processes
        .iter()
        .filter(|p| {
            creates
                .iter()
                .any(|c| c.span_id == p.parent && c.trace_id == p.trace_id)
        })
        .count();
    assert_eq!(from_creates, 4, "each create span has its process span");
    assert!(
        processes
            .iter()
            .any(|p| p.trace_id == "0af7651916cd43dd8448eb211c80319c"
                && p.parent == "b7ad6b7169203331"),
        "the foreign context is the parent of its process span"
    );
    for apply in spans.iter().filter(|s| s.name == "apply") {
        assert!(
            processes.iter().any(|p| p.span_id == apply.parent),
            "the handler's own span is a child of its process span"
        );
    }
    assert!(seen.lock().unwrap().iter().all(Option::is_some));

    assert_eq!(
        otel.metric_total(
            "messaging.client.sent.messages",
            &[("messaging.destination.name", "payroll")]
        ),
        5.0
    );
    assert_eq!(
        otel.metric_total("messaging.client.operation.duration", &[]),
        5.0
    );
    assert_eq!(
        otel.metric_total(
            "messaging.client.consumed.messages",
            &[("messaging.consumer.group.name", "ledger")]
        ),
        5.0
    );
    assert_eq!(otel.metric_total("messaging.process.duration", &[]), 5.0);
}

/// A message `try_enqueue` turns back for want of room carries the context
/// of the `create` span made for it, so queueing it later makes no second
/// one: one `create` span per message sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_turned_back_for_want_of_room_keeps_its_create_span() {
    let otel = Otel::install();
    let server = NatsServer::start();
    let client = Client::connect(ConnectOptions::new(server.url()))
        .await
        .unwrap();
    client
        .create_station("payroll", StationConfig::default())
        .await
        .unwrap();
    let options = jetstation::ProducerOptions {
        buffer_bytes: 4096,
        ..Default::default()
    };
    let producer = client.producer("payroll", options).await.unwrap();
    // Frozen, the broker confirms nothing: the buffer stays full.
    server.freeze();
    let mut handles = Vec::new();
    let back = loop {
        let message = Message::new(vec![b'x'; 1000]).key("emp-7");
        match producer.try_enqueue(message).unwrap() {
            jetstation::TryEnqueued::Queued(handle) => handles.push(handle),
            jetstation::TryEnqueued::WouldWait(m) => break m,
        }
        assert!(
            handles.len() < 10,
            "a 4 KiB buffer took 10 messages of 1 KB"
        );
    };
    let context = back
        .headers
        .iter()
        .find(|(name, _)| name == "traceparent")
        .map(|(_, value)| value.clone())
        .expect("the turned-back message carries its create span's context");
    server.thaw();
    handles.push(producer.enqueue(back).await.unwrap());
    for handle in handles.iter_mut() {
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("confirmed after the broker resumed")
            .unwrap();
    }
    let creates: Vec<_> = otel
        .spans()
        .into_iter()
        .filter(|s| s.name == "create payroll")
        .collect();
    assert_eq!(creates.len(), handles.len(), "one create span per message");
    assert!(
        creates
            .iter()
            .any(|c| context == format!("00-{}-{}-01", c.trace_id, c.span_id)),
        "{context} names one of the create spans"
    );
}
