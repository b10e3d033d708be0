//! What jetstation measures for OpenTelemetry, measured once here for every
//! language.
//!
//! The core times each send from `enqueue` to the broker's confirmation (or
//! failure) and counts the messages handed to the application. Where the
//! OpenTelemetry SDK lives in another language (Python, Node), the binding
//! turns on recording with [`Client::enable_telemetry`] and drains the
//! measurements into its own instruments ([`Client::drain_telemetry`]); the
//! samples wait in a bounded buffer meanwhile. With the cargo feature `otel`
//! the core records into the `opentelemetry` crate's global meter itself
//! (see [`otel`]).
//!
//! Names follow the OpenTelemetry messaging semantic conventions; they are
//! declared once here and in `contract/jetstation.json`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{client::Client, error::ErrorKind};

#[cfg(feature = "otel")]
pub mod otel;

/// `messaging.system`.
pub const SYSTEM: &str = "nats";
/// W3C trace context headers carried by messages.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Metric names.
pub const SENT_MESSAGES: &str = "messaging.client.sent.messages";
pub const CONSUMED_MESSAGES: &str = "messaging.client.consumed.messages";
pub const OPERATION_DURATION: &str = "messaging.client.operation.duration";
pub const PROCESS_DURATION: &str = "messaging.process.duration";
/// Not in the conventions: messages of a member's partitions that the
/// broker has not delivered yet.
pub const CONSUMER_LAG: &str = "jetstation.consumer.lag";

/// Attribute names.
pub const ATTR_SYSTEM: &str = "messaging.system";
pub const ATTR_DESTINATION: &str = "messaging.destination.name";
pub const ATTR_PARTITION: &str = "messaging.destination.partition.id";
pub const ATTR_GROUP: &str = "messaging.consumer.group.name";
pub const ATTR_OPERATION_NAME: &str = "messaging.operation.name";
pub const ATTR_OPERATION_TYPE: &str = "messaging.operation.type";
pub const ATTR_MESSAGE_ID: &str = "messaging.message.id";
pub const ATTR_DELIVERY_COUNT: &str = "messaging.message.delivery_count";
pub const ATTR_ERROR_TYPE: &str = "error.type";

/// Every metric, as `contract/jetstation.json` declares them.
pub const METRICS: [&str; 5] = [
    SENT_MESSAGES,
    CONSUMED_MESSAGES,
    OPERATION_DURATION,
    PROCESS_DURATION,
    CONSUMER_LAG,
];

/// Every span attribute, as `contract/jetstation.json` declares them.
pub const ATTRIBUTES: [&str; 9] = [
    ATTR_SYSTEM,
    ATTR_DESTINATION,
    ATTR_PARTITION,
    ATTR_GROUP,
    ATTR_OPERATION_NAME,
    ATTR_OPERATION_TYPE,
    ATTR_MESSAGE_ID,
    ATTR_DELIVERY_COUNT,
    ATTR_ERROR_TYPE,
];

/// Send samples kept between two drains; beyond it the oldest are dropped
/// and counted in [`Drained::dropped`] (16 bytes each plus the station).
const MAX_SEND_SAMPLES: usize = 1 << 20;

/// One send, from `enqueue` to the broker's answer.
#[derive(Debug, Clone)]
pub struct SendSample {
    pub station: Arc<str>,
    pub partition: u32,
    pub seconds: f64,
    /// The error kind when the send failed.
    pub error: Option<ErrorKind>,
}

/// Messages handed to the application since the last drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedCount {
    pub station: String,
    pub group: String,
    pub partition: u32,
    pub count: u64,
}

/// What [`Client::drain_telemetry`] returns.
#[derive(Debug, Clone, Default)]
pub struct Drained {
    pub sends: Vec<SendSample>,
    pub consumed: Vec<ConsumedCount>,
    /// Send samples dropped because nobody drained them in time.
    pub dropped: u64,
}

/// Station, group and partition of a consumed count.
type ConsumedKey = (Arc<str>, Arc<str>, u32);

/// The client's measurements.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    enabled: AtomicBool,
    sends: Mutex<VecDeque<SendSample>>,
    consumed: Mutex<HashMap<ConsumedKey, u64>>,
    dropped: AtomicU64,
}

impl Recorder {
    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    fn buffering(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub(crate) fn sent(
        &self,
        station: &Arc<str>,
        partition: u32,
        took: Duration,
        error: Option<ErrorKind>,
    ) {
        #[cfg(feature = "otel")]
        otel::sent(station, partition, took, error);
        if !self.buffering() {
            return;
        }
        let mut sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        if sends.len() >= MAX_SEND_SAMPLES {
            sends.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sends.push_back(SendSample {
            station: station.clone(),
            partition,
            seconds: took.as_secs_f64(),
            error,
        });
    }

    pub(crate) fn consumed(&self, station: &Arc<str>, group: &Arc<str>, partition: u32) {
        #[cfg(feature = "otel")]
        otel::consumed(station, group, partition);
        if !self.buffering() {
            return;
        }
        let mut consumed = self.consumed.lock().unwrap_or_else(|e| e.into_inner());
        *consumed
            .entry((station.clone(), group.clone(), partition))
            .or_default() += 1;
    }

    fn drain(&self) -> Drained {
        let sends =
            std::mem::take(&mut *self.sends.lock().unwrap_or_else(|e| e.into_inner())).into();
        let consumed =
            std::mem::take(&mut *self.consumed.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|((station, group, partition), count)| ConsumedCount {
                    station: station.to_string(),
                    group: group.to_string(),
                    partition,
                    count,
                })
                .collect();
        Drained {
            sends,
            consumed,
            dropped: self.dropped.swap(0, Ordering::Relaxed),
        }
    }
}

/// The broker's undelivered count per partition of one member, for the lag
/// gauge: updated with every message and every answer of the broker.
#[derive(Debug)]
pub(crate) struct Lag(Box<[AtomicU64]>);

impl Lag {
    pub(crate) fn new(partitions: usize) -> Lag {
        Lag((0..partitions).map(|_| AtomicU64::new(0)).collect())
    }

    pub(crate) fn set(&self, partition: u32, undelivered: u64) {
        if let Some(slot) = self.0.get(partition as usize) {
            slot.store(undelivered, Ordering::Relaxed);
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

impl Client {
    /// Starts keeping send durations and consumed counts for
    /// [`Client::drain_telemetry`] (a binding exporting to OpenTelemetry in
    /// its own language calls this once).
    pub fn enable_telemetry(&self) {
        self.inner.telemetry.enable();
    }

    /// The measurements kept since the last call.
    pub fn drain_telemetry(&self) -> Drained {
        self.inner.telemetry.drain()
    }
}
