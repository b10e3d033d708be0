//! The `Producer` and the `SendHandle` of a queued message.

use std::sync::Arc;

use crate::{
    error::{Result, invalid},
    types::{OutgoingMessage, Receipt},
};

#[derive(uniffi::Object)]
pub struct Producer {
    pub(crate) inner: jetstation::Producer,
}

#[uniffi::export(async_runtime = "tokio")]
impl Producer {
    /// Sends and returns once the broker stored the message.
    pub async fn send(&self, payload: Vec<u8>, key: Option<String>) -> Result<Receipt> {
        let mut m = jetstation::Message::new(payload);
        m.key = key;
        Ok(self.inner.send(m).await?.into())
    }

    /// Queues a message without waiting for its receipt (fails at once with
    /// `BufferFull` when the buffer is full and the producer fails fast).
    pub async fn enqueue(&self, payload: Vec<u8>, key: Option<String>) -> Result<()> {
        let mut m = jetstation::Message::new(payload);
        m.key = key;
        self.inner.enqueue(m).await?;
        Ok(())
    }

    /// Sends a message with headers and an id; returns once it is stored.
    pub async fn send_message(&self, message: OutgoingMessage) -> Result<Receipt> {
        Ok(self.inner.send(message.into()).await?.into())
    }

    /// Queues a message; await the handle's `receipt()` for its receipt.
    pub async fn enqueue_message(&self, message: OutgoingMessage) -> Result<Arc<SendHandle>> {
        let handle = self.inner.enqueue(message.into()).await?;
        Ok(Arc::new(SendHandle {
            inner: tokio::sync::Mutex::new(Some(handle)),
        }))
    }

    /// Queues one chunk of the Swift `sendBatch` in order, waiting for room
    /// as `enqueue` does, and returns once all of it is queued, with a handle
    /// to the chunk's receipts. `sendBatch` queues the next chunk after this
    /// one returned, so chunks keep their order and no call carries the
    /// whole batch across the boundary in one buffer.
    pub async fn enqueue_batch(
        &self,
        payloads: Vec<Vec<u8>>,
        keys: Vec<Option<String>>,
    ) -> Result<Arc<BatchHandle>> {
        if payloads.len() != keys.len() {
            return Err(invalid("payloads and keys must have the same length"));
        }
        let messages = payloads
            .into_iter()
            .zip(keys)
            .map(|(payload, key)| jetstation::Message {
                payload: payload.into(),
                key,
                ..Default::default()
            })
            .collect();
        let handles = self.inner.enqueue_batch(messages).await;
        Ok(Arc::new(BatchHandle {
            handles: tokio::sync::Mutex::new(Some(handles)),
        }))
    }

    /// Deletes `key` from a compacted station (a tombstone, in the key's order).
    pub async fn delete(&self, key: String) -> Result<Receipt> {
        Ok(self.inner.delete(key).await?.into())
    }

    pub async fn flush(&self) -> Result<()> {
        Ok(self.inner.flush().await?)
    }

    pub async fn close(&self) -> Result<()> {
        Ok(self.inner.close().await?)
    }
}

#[uniffi::export]
impl Producer {
    /// Queues at once when the producer has room (buffer space free, schema
    /// loaded) and returns the handle; `nil` when it would have to wait
    /// (then use `enqueueMessage`). The Swift `enqueue(_:)` does both: an
    /// async call per message costs far more than the enqueue itself.
    pub fn try_enqueue(&self, message: OutgoingMessage) -> Result<Option<Arc<SendHandle>>> {
        // Polled inside the runtime the async calls use, in case the enqueue
        // has to start a task (a schema look-up).
        let message: jetstation::Message = message.into();
        let in_runtime = async_compat::Compat::new(async { self.inner.try_enqueue(&message) });
        let handle = futures::FutureExt::now_or_never(in_runtime).unwrap_or(Ok(None))?;
        Ok(handle.map(|h| {
            Arc::new(SendHandle {
                inner: tokio::sync::Mutex::new(Some(h)),
            })
        }))
    }
}

/// A queued message; `receipt()` waits until the broker stored it.
#[derive(uniffi::Object)]
pub struct SendHandle {
    inner: tokio::sync::Mutex<Option<jetstation::SendHandle>>,
}

#[uniffi::export(async_runtime = "tokio")]
impl SendHandle {
    /// Waits for the receipt (the Swift `receipt()` tries `tryReceipt()`
    /// first, which needs no async call).
    pub async fn wait_receipt(&self) -> Result<Receipt> {
        let handle = self
            .inner
            .lock()
            .await
            .take()
            .ok_or_else(|| invalid("receipt() was already awaited for this message"))?;
        Ok(handle.await?.into())
    }
}

#[uniffi::export]
impl SendHandle {
    /// The receipt if the message is already resolved, `nil` while it is
    /// pending; throws the message's error if it failed.
    pub fn try_receipt(&self) -> Result<Option<Receipt>> {
        let Ok(mut slot) = self.inner.try_lock() else {
            return Ok(None);
        };
        let Some(handle) = slot.as_mut() else {
            return Err(invalid("receipt() was already awaited for this message"));
        };
        match handle.try_receipt() {
            None => Ok(None),
            Some(result) => {
                *slot = None;
                Ok(Some(result?.into()))
            }
        }
    }
}

/// The queued messages of one `enqueueBatch` chunk.
#[derive(uniffi::Object)]
pub struct BatchHandle {
    handles: tokio::sync::Mutex<Option<Vec<jetstation::Result<jetstation::SendHandle>>>>,
}

#[uniffi::export(async_runtime = "tokio")]
impl BatchHandle {
    /// The chunk's receipts in order, or the first failed message's error.
    pub async fn wait_receipts(&self) -> Result<Vec<Receipt>> {
        let handles = self
            .handles
            .lock()
            .await
            .take()
            .ok_or_else(|| invalid("the receipts of this batch were already awaited"))?;
        let mut receipts = Vec::with_capacity(handles.len());
        for handle in handles {
            receipts.push(handle?.await?.into());
        }
        Ok(receipts)
    }
}
