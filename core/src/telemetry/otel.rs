//! The cargo feature `otel`: traces and metrics through the `opentelemetry`
//! crates, for Rust applications.
//!
//! - A message enqueued without a `traceparent` header gets a `create
//!   <station>` span (kind producer), child of the current context: the
//!   current `tracing` span's when `tracing-opentelemetry` is installed,
//!   else OpenTelemetry's current context. Its context travels in the
//!   message's `traceparent`/`tracestate` headers (the global propagator).
//! - [`crate::Consumer::consume`] runs the handler in a `process <station>`
//!   span (kind consumer) whose parent is the producer's context, with a
//!   link to it as well (see [`process_span`]). With the iterator style,
//!   [`context_of`] gives the producer's context to parent your own span.
//! - Metrics go to the global meter `jetstation`; set the meter provider
//!   before the first message is sent or received.

use std::{
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use opentelemetry::{
    Context, KeyValue, global,
    metrics::{Counter, Histogram},
    propagation::{Extractor, Injector},
    trace::{SpanKind, TraceContextExt, Tracer},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::*;
use crate::consumer::ReceivedMessage;

struct Instruments {
    sent: Counter<u64>,
    consumed: Counter<u64>,
    operation: Histogram<f64>,
    process: Histogram<f64>,
}

/// Bucket bounds (seconds) the messaging conventions recommend.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = global::meter("jetstation");
        Instruments {
            sent: meter
                .u64_counter(SENT_MESSAGES)
                .with_unit("{message}")
                .with_description("Messages the broker confirmed or refused")
                .build(),
            consumed: meter
                .u64_counter(CONSUMED_MESSAGES)
                .with_unit("{message}")
                .with_description("Messages handed to the application")
                .build(),
            operation: meter
                .f64_histogram(OPERATION_DURATION)
                .with_unit("s")
                .with_description("From enqueue to the broker's answer")
                .with_boundaries(BOUNDS.to_vec())
                .build(),
            process: meter
                .f64_histogram(PROCESS_DURATION)
                .with_unit("s")
                .with_description("The handler's run")
                .with_boundaries(BOUNDS.to_vec())
                .build(),
        }
    })
}

fn base(
    operation: &'static str,
    kind: &'static str,
    station: &str,
    partition: u32,
) -> Vec<KeyValue> {
    vec![
        KeyValue::new(ATTR_SYSTEM, SYSTEM),
        KeyValue::new(ATTR_OPERATION_NAME, operation),
        KeyValue::new(ATTR_OPERATION_TYPE, kind),
        KeyValue::new(ATTR_DESTINATION, station.to_string()),
        KeyValue::new(ATTR_PARTITION, partition.to_string()),
    ]
}

pub(super) fn sent(station: &str, partition: u32, took: Duration, error: Option<ErrorKind>) {
    let mut attrs = base("send", "send", station, partition);
    if let Some(kind) = error {
        attrs.push(KeyValue::new(ATTR_ERROR_TYPE, kind.as_str()));
    }
    let i = instruments();
    i.sent.add(1, &attrs);
    i.operation.record(took.as_secs_f64(), &attrs);
}

pub(super) fn consumed(station: &str, group: &str, partition: u32) {
    let mut attrs = base("receive", "receive", station, partition);
    attrs.push(KeyValue::new(ATTR_GROUP, group.to_string()));
    instruments().consumed.add(1, &attrs);
}

pub(crate) fn processed(station: &str, partition: u32, group: &str, took: Duration, failed: bool) {
    let mut attrs = base("process", "process", station, partition);
    attrs.push(KeyValue::new(ATTR_GROUP, group.to_string()));
    if failed {
        attrs.push(KeyValue::new(ATTR_ERROR_TYPE, "handler_error"));
    }
    instruments().process.record(took.as_secs_f64(), &attrs);
}

/// Reports a member's lag through an observable gauge for as long as the
/// member lives.
pub(crate) fn observe_lag(lag: &Arc<Lag>, station: &str, group: &str) {
    let lag: Weak<Lag> = Arc::downgrade(lag);
    let attrs = vec![
        KeyValue::new(ATTR_SYSTEM, SYSTEM),
        KeyValue::new(ATTR_DESTINATION, station.to_string()),
        KeyValue::new(ATTR_GROUP, group.to_string()),
    ];
    let _gauge = global::meter("jetstation")
        .u64_observable_gauge(CONSUMER_LAG)
        .with_unit("{message}")
        .with_description("Messages of the member's partitions not delivered yet")
        .with_callback(move |observer| {
            if let Some(lag) = lag.upgrade() {
                observer.observe(lag.total(), &attrs);
            }
        })
        .build();
}

/// A queued message's headers, as the producer keeps them.
struct Headers<'a>(&'a mut Vec<(String, String)>);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(name, _)| !name.eq_ignore_ascii_case(key));
        self.0.push((key.to_string(), value));
    }
}

struct Pairs<'a>(&'a [(String, String)]);

impl Extractor for Pairs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The caller's context: the current `tracing` span's when it carries one,
/// else OpenTelemetry's current context.
fn current() -> Context {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        cx
    } else {
        Context::current()
    }
}

/// Gives a message without trace context (none in the application's
/// `given` headers) a `create` span and carries the span's context in
/// `headers`, the ones jetstation adds.
pub(crate) fn create_span(
    given: &[(String, String)],
    headers: &mut Vec<(String, String)>,
    station: &str,
    partition: u32,
    msg_id: &str,
) {
    if given
        .iter()
        .chain(headers.iter())
        .any(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
    {
        return;
    }
    let parent = current();
    let tracer = global::tracer("jetstation");
    let mut attrs = base("create", "create", station, partition);
    attrs.push(KeyValue::new(ATTR_MESSAGE_ID, msg_id.to_string()));
    let span = tracer
        .span_builder(format!("create {station}"))
        .with_kind(SpanKind::Producer)
        .with_attributes(attrs)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Headers(headers)));
    cx.span().end();
}

/// Whether `name` is a header of the trace context (`traceparent`,
/// `tracestate`).
pub(crate) fn is_trace_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(TRACEPARENT) || name.eq_ignore_ascii_case("tracestate")
}

/// The producer's context carried by a message (empty when it has none).
pub fn context_of(message: &ReceivedMessage) -> Context {
    global::get_text_map_propagator(|p| p.extract(&Pairs(&message.headers)))
}

/// The `process <station>` span a handler runs in: its parent is the
/// producer's context, and it links to it, as the messaging conventions
/// advise for a message processed on its own.
pub(crate) fn process_span(message: &ReceivedMessage, group: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {}", message.station),
        otel.kind = "consumer",
        messaging.system = SYSTEM,
        messaging.operation.name = "process",
        messaging.operation.type = "process",
        messaging.destination.name = %message.station,
        messaging.destination.partition.id = message.partition,
        messaging.consumer.group.name = group,
        messaging.message.id = message.msg_id.as_deref().unwrap_or(""),
        messaging.message.delivery_count = message.deliveries,
    );
    let producer = context_of(message);
    let linked = producer.span().span_context().clone();
    if linked.is_valid() {
        let _ = span.set_parent(producer);
        span.add_link(linked);
    }
    span
}
