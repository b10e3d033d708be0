//! The `Consumer` class and received messages.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tokio::sync::Notify;

use crate::error::{IntoJs, invalid, millis};

/// Consumer settings. Durations are milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct ConsumerOptions {
    pub concurrency: Option<u32>,
    /// "earliest" (default for a new group) or "latest".
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
}

pub(crate) fn consumer_options(o: ConsumerOptions) -> napi::Result<jetstation::ConsumerOptions> {
    let mut c = jetstation::ConsumerOptions::default();
    if let Some(n) = o.concurrency {
        c.concurrency = n as usize;
    }
    c.start = match (o.start.as_deref(), o.start_sequence, o.start_time_ms) {
        (_, Some(seq), _) => jetstation::StartPosition::Sequence(seq.max(0) as u64),
        (_, _, Some(ms)) => jetstation::StartPosition::Time(
            time::OffsetDateTime::from_unix_timestamp_nanos((ms * 1e6) as i128)
                .map_err(|e| invalid(format!("startTimeMs out of range: {e}")))?,
        ),
        (None | Some("earliest"), _, _) => jetstation::StartPosition::Earliest,
        (Some("latest"), _, _) => jetstation::StartPosition::Latest,
        (Some(other), _, _) => {
            return Err(invalid(format!(
                "start must be \"earliest\" or \"latest\", got {other:?}"
            )));
        }
    };
    if let Some(ms) = o.ack_wait_ms {
        c.ack_wait = millis(ms, "ackWaitMs")?;
    }
    if let Some(n) = o.max_ack_pending {
        c.max_ack_pending = n as usize;
    }
    if let Some(ms) = o.redelivery_delay_ms {
        c.redelivery_delay = millis(ms, "redeliveryDelayMs")?;
    }
    if let Some(ms) = o.max_redelivery_delay_ms {
        c.max_redelivery_delay = millis(ms, "maxRedeliveryDelayMs")?;
    }
    if let Some(n) = o.fetch_batch {
        c.fetch_batch = n as usize;
    }
    if let Some(ms) = o.handover_timeout_ms {
        c.handover_timeout = millis(ms, "handoverTimeoutMs")?;
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

/// A received message; settle it with ack, nack or term.
#[napi]
pub struct Message {
    message: jetstation::ReceivedMessage,
    delivery: Mutex<Option<jetstation::Delivery>>,
}

impl Message {
    fn new(d: jetstation::Delivery) -> Self {
        Self {
            message: d.message().clone(),
            delivery: Mutex::new(Some(d)),
        }
    }

    fn take(&self) -> napi::Result<jetstation::Delivery> {
        self.delivery
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| invalid("this message was already acked, nacked or terminated"))
    }
}

#[napi]
impl Message {
    #[napi(getter)]
    pub fn payload(&self) -> Buffer {
        self.message.payload.to_vec().into()
    }
    #[napi(getter)]
    pub fn key(&self) -> Option<String> {
        self.message.key.clone()
    }
    #[napi(getter)]
    pub fn headers(&self) -> Vec<Vec<String>> {
        self.message
            .headers
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect()
    }
    #[napi(getter)]
    pub fn station(&self) -> String {
        self.message.station.clone()
    }
    #[napi(getter)]
    pub fn partition(&self) -> u32 {
        self.message.partition
    }
    #[napi(getter)]
    pub fn sequence(&self) -> i64 {
        self.message.sequence as i64
    }
    #[napi(getter)]
    pub fn deliveries(&self) -> i64 {
        self.message.deliveries as i64
    }
    #[napi(getter)]
    pub fn msg_id(&self) -> Option<String> {
        self.message.msg_id.clone()
    }
    #[napi]
    pub fn header(&self, name: String) -> Option<String> {
        self.message.header(&name).map(String::from)
    }
    #[napi]
    pub fn ack(&self) -> napi::Result<()> {
        self.take()?.ack().js()
    }
    #[napi]
    pub fn nack(&self, delay_ms: Option<f64>, reason: Option<String>) -> napi::Result<()> {
        let delay = delay_ms.map(|ms| millis(ms, "delayMs")).transpose()?;
        let reason = reason.unwrap_or_else(|| "nacked by the application".into());
        self.take()?.nack_with_reason(reason, delay).js()
    }
    #[napi]
    pub fn term(&self, reason: Option<String>) -> napi::Result<()> {
        let reason = reason.unwrap_or_else(|| "terminated by the application".into());
        self.take()?.term(reason).js()
    }
    #[napi]
    pub async fn in_progress(&self) -> napi::Result<()> {
        let fut = {
            let d = self.delivery.lock().unwrap();
            let Some(d) = d.as_ref() else {
                return Err(invalid("this message was already settled"));
            };
            d.in_progress_future()
        };
        fut.await.js()
    }
}
