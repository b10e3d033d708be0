//! The `Consumer` (a member of a group) and received messages.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    error::Result,
    payload::Payload,
    types::{Header, PartitionHealth, headers},
};

#[derive(uniffi::Object)]
pub struct Consumer {
    inner: jetstation::Consumer,
    interrupt: Notify,
}

impl Consumer {
    pub(crate) fn new(inner: jetstation::Consumer) -> Self {
        Self {
            inner,
            interrupt: Notify::new(),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Consumer {
    /// The next message; `nil` once closed or interrupted.
    pub async fn next(&self) -> Result<Option<Arc<Message>>> {
        tokio::select! {
            next = self.inner.next() => match next {
                Some(d) => Ok(Some(Arc::new(Message::new(d?)))),
                None => Ok(None),
            },
            _ = self.interrupt.notified() => Ok(None),
        }
    }

    /// Ends waits of `next()` in progress (used on task cancellation).
    pub fn interrupt(&self) {
        self.interrupt.notify_waiters();
    }

    pub async fn close(&self) -> Result<()> {
        self.interrupt.notify_waiters();
        Ok(self.inner.close().await?)
    }

    /// How each partition of this member is doing.
    pub async fn health(&self) -> Result<Vec<PartitionHealth>> {
        Ok(self
            .inner
            .health()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// A received message; settle it once with ack, nack, term or release.
#[derive(uniffi::Object)]
pub struct Message {
    inner: jetstation::Delivery,
}

impl Message {
    fn new(inner: jetstation::Delivery) -> Self {
        Self { inner }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Message {
    /// Whether the message is still this member's to run, once the member
    /// knows (see `claim()`).
    pub async fn claim_when_known(&self) -> bool {
        self.inner.claim_future().await
    }

    /// Still working: postpones the redelivery of this message by ackWait.
    pub async fn in_progress(&self) -> Result<()> {
        Ok(self.inner.in_progress_future()?.await?)
    }
}

#[uniffi::export]
impl Message {
    /// Whether the message is still this member's to run, if known at once
    /// (`nil` while the member asks the broker after a stop of its process;
    /// see `claim()`).
    pub fn claim_now(&self) -> Option<bool> {
        self.inner.claim_now()
    }
    pub fn payload(&self) -> Payload {
        self.inner.payload.clone().into()
    }
    pub fn key(&self) -> Option<String> {
        self.inner.key.clone()
    }
    pub fn station(&self) -> String {
        self.inner.station.clone()
    }
    pub fn sequence(&self) -> u64 {
        self.inner.sequence
    }
    pub fn partition(&self) -> u32 {
        self.inner.partition
    }
    pub fn deliveries(&self) -> u64 {
        self.inner.deliveries
    }
    pub fn header(&self, name: String) -> Option<String> {
        self.inner.header(&name).map(String::from)
    }
    /// Every header stored with the message, sorted by name.
    pub fn headers(&self) -> Vec<Header> {
        headers(self.inner.headers.clone())
    }
    pub fn msg_id(&self) -> Option<String> {
        self.inner.msg_id.clone()
    }
    /// A tombstone: its key was deleted.
    pub fn is_delete(&self) -> bool {
        self.inner.is_delete()
    }
    pub fn ack(&self) -> Result<()> {
        Ok(self.inner.ack()?)
    }
    /// Failed: redelivered later, or dead-lettered after max deliveries.
    pub fn nack(&self, reason: Option<String>, delay: Option<f64>) -> Result<()> {
        let delay = delay
            .map(|d| jetstation::convert::seconds("delay", d))
            .transpose()?;
        Ok(self
            .inner
            .settle(jetstation::Settlement::Nack { delay, reason })?)
    }
    pub fn term(&self, reason: Option<String>) -> Result<()> {
        Ok(self.inner.settle(jetstation::Settlement::Term { reason })?)
    }
    /// Gives the message back unprocessed, without counting a delivery.
    pub fn release(&self) -> Result<()> {
        Ok(self.inner.release()?)
    }
}
