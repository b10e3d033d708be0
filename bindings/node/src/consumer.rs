//! The `Consumer` class and received messages.

use std::sync::Arc;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tokio::sync::Notify;

use crate::error::{IntoJs, invalid};

/// Consumer settings. Durations are milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct ConsumerOptions {
    pub concurrency: Option<u32>,
    /// "earliest" (default for a new group), "latest" or "snapshot" (the
    /// latest message of every key, then the history after it; compacted
    /// stations).
    pub start: Option<String>,
    pub start_sequence: Option<i64>,
    /// Milliseconds since the epoch.
    pub start_time_ms: Option<f64>,
    pub ack_wait_ms: Option<f64>,
    pub max_ack_pending: Option<u32>,
    pub redelivery_delay_ms: Option<f64>,
    pub max_redelivery_delay_ms: Option<f64>,
    pub fetch_batch: Option<u32>,
    pub handover_timeout_ms: Option<f64>,
    /// Record every handled message before its acknowledgement and skip a
    /// redelivered one found in the record.
    pub exactly_once: Option<bool>,
    /// How long the record keeps a handled message (default one day).
    pub exactly_once_retention_ms: Option<f64>,
}

pub(crate) fn consumer_options(o: ConsumerOptions) -> napi::Result<jetstation::ConsumerOptions> {
    use jetstation::{StartPosition, convert};
    let mut c = jetstation::ConsumerOptions::default();
    if let Some(n) = o.concurrency {
        c.concurrency = n as usize;
    }
    c.start = match (o.start, o.start_sequence, o.start_time_ms) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(invalid(
                "give one of start, startSequence and startTimeMs, not several",
            ));
        }
        (_, Some(seq), _) => {
            StartPosition::sequence(convert::count("startSequence", seq).js()?).js()?
        }
        (_, _, Some(ms)) => StartPosition::unix_seconds(ms / 1000.0).js()?,
        (Some(name), _, _) => name.parse().js()?,
        (None, None, None) => c.start,
    };
    let millis = |what: &str, ms: f64| convert::millis(what, ms).js();
    if let Some(ms) = o.ack_wait_ms {
        c.ack_wait = millis("ackWaitMs", ms)?;
    }
    if let Some(n) = o.max_ack_pending {
        c.max_ack_pending = n as usize;
    }
    if let Some(ms) = o.redelivery_delay_ms {
        c.redelivery_delay = millis("redeliveryDelayMs", ms)?;
    }
    if let Some(ms) = o.max_redelivery_delay_ms {
        c.max_redelivery_delay = millis("maxRedeliveryDelayMs", ms)?;
    }
    if let Some(n) = o.fetch_batch {
        c.fetch_batch = n as usize;
    }
    if let Some(ms) = o.handover_timeout_ms {
        c.handover_timeout = millis("handoverTimeoutMs", ms)?;
    }
    if let Some(on) = o.exactly_once {
        c.exactly_once = on;
    }
    if let Some(ms) = o.exactly_once_retention_ms {
        c.exactly_once_retention = millis("exactlyOnceRetentionMs", ms)?;
    }
    Ok(c)
}

#[napi]
pub struct Consumer {
    inner: jetstation::Consumer,
    interrupt: Arc<Notify>,
}

impl Consumer {
    pub(crate) fn new(inner: jetstation::Consumer) -> Self {
        Self {
            inner,
            interrupt: Arc::new(Notify::new()),
        }
    }
}

#[napi]
impl Consumer {
    #[napi(getter)]
    pub fn station(&self) -> String {
        self.inner.station().to_string()
    }

    #[napi(getter)]
    pub fn group(&self) -> String {
        self.inner.group().to_string()
    }

    /// Messages of this member's partitions the broker has not delivered yet.
    #[napi(getter)]
    pub fn lag(&self) -> f64 {
        self.inner.lag() as f64
    }

    /// The next message; null once closed or when `interrupt()` was called.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Message>> {
        tokio::select! {
            next = self.inner.next() => match next {
                Some(d) => Ok(Some(Message::new(d.js()?))),
                None => Ok(None),
            },
            _ = self.interrupt.notified() => Ok(None),
        }
    }

    /// Ends the waits of `next()` in progress (used for AbortSignal).
    #[napi]
    pub fn interrupt(&self) {
        self.interrupt.notify_waiters();
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.interrupt.notify_waiters();
        self.inner.close().await.js()
    }

    /// How each partition of this member is doing.
    #[napi]
    pub async fn health(&self) -> napi::Result<Vec<crate::types::PartitionHealth>> {
        let parts = self.inner.health().await.js()?;
        Ok(parts.into_iter().map(Into::into).collect())
    }
}

/// A received message; settle it once with ack, nack, term or release.
#[napi]
pub struct Message {
    inner: jetstation::Delivery,
}

impl Message {
    fn new(inner: jetstation::Delivery) -> Self {
        Self { inner }
    }
}

#[napi]
impl Message {
    #[napi(getter)]
    pub fn payload(&self) -> Buffer {
        self.inner.payload.to_vec().into()
    }
    #[napi(getter)]
    pub fn key(&self) -> Option<String> {
        self.inner.key.clone()
    }
    #[napi(getter)]
    pub fn headers(&self) -> Vec<Vec<String>> {
        self.inner
            .headers
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect()
    }
    #[napi(getter)]
    pub fn station(&self) -> String {
        self.inner.station.clone()
    }
    #[napi(getter)]
    pub fn partition(&self) -> u32 {
        self.inner.partition
    }
    #[napi(getter)]
    pub fn sequence(&self) -> i64 {
        self.inner.sequence as i64
    }
    #[napi(getter)]
    pub fn deliveries(&self) -> i64 {
        self.inner.deliveries as i64
    }
    #[napi(getter)]
    pub fn msg_id(&self) -> Option<String> {
        self.inner.msg_id.clone()
    }
    #[napi]
    pub fn header(&self, name: String) -> Option<String> {
        self.inner.header(&name).map(String::from)
    }
    /// A tombstone: its key was deleted.
    #[napi(getter)]
    pub fn is_delete(&self) -> bool {
        self.inner.is_delete()
    }
    #[napi]
    pub fn ack(&self) -> napi::Result<()> {
        self.inner.ack().js()
    }
    #[napi]
    pub fn nack(&self, delay_ms: Option<f64>, reason: Option<String>) -> napi::Result<()> {
        let delay = delay_ms
            .map(|ms| jetstation::convert::millis("delayMs", ms))
            .transpose()
            .js()?;
        self.inner
            .settle(jetstation::Settlement::Nack { delay, reason })
            .js()
    }
    #[napi]
    pub fn term(&self, reason: Option<String>) -> napi::Result<()> {
        self.inner
            .settle(jetstation::Settlement::Term { reason })
            .js()
    }
    /// Gives the message back unprocessed, without counting a delivery.
    #[napi]
    pub fn release(&self) -> napi::Result<()> {
        self.inner.release().js()
    }
    /// Whether the message is still this member's to run, if known at once
    /// (null while the member asks the broker after a stop of its process:
    /// then `claim()` waits for the answer).
    #[napi]
    pub fn claim_now(&self) -> Option<bool> {
        self.inner.claim_now()
    }
    /// Whether the message is still this member's to run, once the member
    /// knows.
    #[napi]
    pub async fn claim(&self) -> bool {
        self.inner.claim_future().await
    }
    #[napi]
    pub async fn in_progress(&self) -> napi::Result<()> {
        let fut = self.inner.in_progress_future().js()?;
        fut.await.js()
    }
}
