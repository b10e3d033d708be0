//! One trace followed across three languages and two stations, against a
//! real nats-server: a Python shop sends orders (each inside a `checkout`
//! span), a Rust service handles them and sends an invoice for each from its
//! handler, and a Node service books the invoices. Every hop must continue
//! the trace: Python `create orders` → Rust `process orders` → Rust `create
//! invoices` → Node `process invoices` → Node's own `book invoice`, each
//! `process` span linked to the `create` span it continues.
//!
//! Needs `JETSTATION_PYTHON` (a python with jetstation and opentelemetry-sdk)
//! and `JETSTATION_NODE_DIR` (bindings/node, built, with its dev
//! dependencies): `make test-telemetry` provides both.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};
use jetstation_harness::NatsServer;
use jetstation_telemetry_tests::{Otel, Span};

const ORDERS: usize = 20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run make test-telemetry"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_python_through_rust_to_node() {
    let otel = Otel::install();
    let (python, node_dir) = (env("JETSTATION_PYTHON"), env("JETSTATION_NODE_DIR"));
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = tempdir();
    let server = NatsServer::start();
    let client = Client::connect(ConnectOptions::new(server.url()))
        .await
        .unwrap();
    for station in ["orders", "invoices"] {
        client
            .create_station(station, StationConfig::default().partitions(2))
            .await
            .unwrap();
    }

    // Node: books invoices until it has ORDERS of them.
    let node_spans = out.join("node.json");
    let mut node = tokio::process::Command::new("node")
        .arg(here.join("consumer.js"))
        .args([&server.url(), "invoices", "billing", &ORDERS.to_string()])
        .arg(&node_spans)
        .env("JETSTATION_NODE_DIR", &node_dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut ready = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(node.stdout.take().unwrap()).read_line(&mut ready),
    )
    .await
    .expect("the Node consumer joins within 30 s")
    .unwrap();
    assert_eq!(ready.trim(), "ready");

    // Rust: handles each order and sends its invoice from the handler.
    let invoices = client
        .producer("invoices", Default::default())
        .await
        .unwrap();
    let consumer = client
        .consumer("orders", "invoicing", ConsumerOptions::default())
        .await
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let service = {
        let (consumer, handled) = (consumer.clone(), handled.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |order| {
                    let (invoices, handled) = (invoices.clone(), handled.clone());
                    async move {
                        let key = order.key.clone().unwrap_or_default();
                        invoices
                            .send(Message::new(order.payload).key(key))
                            .await
                            .map_err(|e| e.to_string())?;
                        handled.fetch_add(1, Ordering::SeqCst);
                        Ok::<(), String>(())
                    }
                })
                .await
        })
    };

    // Python: the shop sends the orders.
    let python_spans = out.join("python.json");
    let status = Command::new(&python)
        .arg(here.join("producer.py"))
        .args([&server.url(), "orders", &ORDERS.to_string()])
        .arg(&python_spans)
        .status()
        .expect("python starts");
    assert!(status.success(), "the Python producer failed");

    let node_status = tokio::time::timeout(Duration::from_secs(60), node.wait())
        .await
        .expect("Node books every invoice within 60 s")
        .unwrap();
    assert!(node_status.success(), "the Node consumer failed");
    assert_eq!(handled.load(Ordering::SeqCst), ORDERS);
    consumer.close().await.unwrap();
    service.await.unwrap().unwrap();

    let python = Span::read_all(&python_spans);
    let rust = otel.spans();
    let node = Span::read_all(&node_spans);
    let mut hops = [0usize; 5];
    for i in 0..ORDERS {
        let checkout = find(&python, |s| s.name == format!("checkout {i}"), "checkout");
        let trace = &checkout.trace_id;
        let in_trace = |spans: &[Span], name: &str| -> Vec<Span> {
            spans
                .iter()
                .filter(|s| &s.trace_id == trace && s.name == name)
                .cloned()
                .collect()
        };
        let create_order = one(
            in_trace(&python, "create orders"),
            "Python create orders",
            i,
        );
        assert_eq!(create_order.parent, checkout.span_id);
        assert_eq!(create_order.kind, "producer");
        hops[0] += 1;
        let process_order = one(in_trace(&rust, "process orders"), "Rust process orders", i);
        assert_eq!(process_order.parent, create_order.span_id);
        assert_eq!(process_order.links, vec![create_order.span_id.clone()]);
        assert_eq!(process_order.kind, "consumer");
        hops[1] += 1;
        let create_invoice = one(
            in_trace(&rust, "create invoices"),
            "Rust create invoices",
            i,
        );
        assert_eq!(create_invoice.parent, process_order.span_id);
        hops[2] += 1;
        let process_invoice = one(
            in_trace(&node, "process invoices"),
            "Node process invoices",
            i,
        );
        assert_eq!(process_invoice.parent, create_invoice.span_id);
        assert_eq!(process_invoice.links, vec![create_invoice.span_id.clone()]);
        assert_eq!(process_invoice.kind, "consumer");
        hops[3] += 1;
        let booked = one(in_trace(&node, "book invoice"), "Node book invoice", i);
        assert_eq!(booked.parent, process_invoice.span_id);
        hops[4] += 1;
        for span in [
            &create_order,
            &process_order,
            &create_invoice,
            &process_invoice,
        ] {
            assert_eq!(
                span.attribute("messaging.system"),
                Some("nats"),
                "{}",
                span.name
            );
        }
    }
    println!(
        "traces followed: {ORDERS} orders; hops continued: python create {}, rust process {}, \
         rust create {}, node process {}, node handler span {}",
        hops[0], hops[1], hops[2], hops[3], hops[4]
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn find<'a>(spans: &'a [Span], pred: impl Fn(&Span) -> bool, what: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| pred(s))
        .unwrap_or_else(|| panic!("no {what} span"))
}

fn one(mut spans: Vec<Span>, what: &str, order: usize) -> Span {
    assert_eq!(
        spans.len(),
        1,
        "{what} spans in the trace of order {order}: {spans:?}"
    );
    spans.remove(0)
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jetstation-otel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
