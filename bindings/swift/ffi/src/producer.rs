//! The `Producer` and the `SendHandle` of a queued message.

use std::sync::Arc;

use bytes::Bytes;

use crate::{
    error::{Result, invalid},
    payload::Payload,
    receipts,
    types::{Header, OutgoingMessage, Receipt},
};

/// Takes what a slot holds the first time; `already` is the error after.
async fn take_once<T>(slot: &tokio::sync::Mutex<Option<T>>, already: &str) -> Result<T> {
    slot.lock().await.take().ok_or_else(|| invalid(already))
}

#[derive(uniffi::Object)]
pub struct Producer {
    pub(crate) inner: jetstation::Producer,
    /// The runtime the async calls run on, entered by the synchronous
    /// `tryEnqueue` in case the enqueue has to start a task (a schema
    /// look-up).
    pub(crate) runtime: tokio::runtime::Handle,
}

#[uniffi::export(async_runtime = "tokio")]
impl Producer {
    /// Sends and returns once the broker stored the message.
    pub async fn send(&self, payload: Payload, key: Option<String>) -> Result<Receipt> {
        let mut m = jetstation::Message::new(payload);
        m.key = key;
        Ok(self.inner.send(m).await?.into())
    }

    /// Queues a message without waiting for its receipt (fails at once with
    /// `BufferFull` when the buffer is full and the producer fails fast).
    pub async fn enqueue(&self, payload: Payload, key: Option<String>) -> Result<()> {
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
            held: std::sync::Mutex::new(None),
        }))
    }

    /// Queues the message a `tryEnqueue` handle holds (see `isQueued()`),
    /// waiting for room; the handle then resolves as any other.
    pub async fn enqueue_held(&self, handle: Arc<SendHandle>) -> Result<()> {
        let message = handle
            .held
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| invalid("this message is already queued"))?;
        let queued = self.inner.enqueue(message).await?;
        *handle.inner.lock().await = Some(queued);
        Ok(())
    }

    /// Queues one chunk of the Swift `sendBatch` in order, waiting for room
    /// as `enqueue` does, and returns once all of it is queued, with a handle
    /// to the chunk's receipts. `sendBatch` stages the next chunk and queues
    /// it after this one returned, so chunks keep their order and no call
    /// carries the whole batch across the boundary in one buffer. The chunk
    /// holds messages `first..` of a batch of `total`; a refused message
    /// throws, nothing of its chunk queued.
    pub async fn enqueue_batch(
        &self,
        chunk: Arc<StagedBatch>,
        first: u64,
        total: u64,
    ) -> Result<Arc<BatchHandle>> {
        let messages = take_once(&chunk.messages, "this chunk was already queued").await?;
        let handles = self
            .inner
            .enqueue_chunk(messages, first as usize, total as usize)
            .await?;
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
    /// loaded) and returns the handle. When it would have to wait, the
    /// handle holds the message unqueued (`isQueued()` is false): queue it
    /// with `enqueueHeld`, which waits for room. The Swift `enqueue(_:)`
    /// does both: an async call per message costs far more than the enqueue
    /// itself. The payload is borrowed for the call (a `Data` is not
    /// serialised into a buffer byte by byte) and copied once here.
    pub fn try_enqueue(
        &self,
        payload: &[u8],
        key: Option<String>,
        headers: Vec<Header>,
        msg_id: Option<String>,
    ) -> Result<Arc<SendHandle>> {
        self.try_queue(jetstation::Message {
            payload: Bytes::copy_from_slice(payload),
            key,
            headers: headers.into_iter().map(|h| (h.name, h.value)).collect(),
            msg_id,
        })
    }

    /// `tryEnqueue` for a message without headers or id, its key (when
    /// `keyed`) lent as UTF-8 bytes: the Swift `enqueue(_:)` takes it for
    /// such messages, because an optional text and a list are serialised
    /// into buffers the library allocates, three per call.
    pub fn try_enqueue_keyed(
        &self,
        payload: &[u8],
        key: &[u8],
        keyed: bool,
    ) -> Result<Arc<SendHandle>> {
        let key = if keyed {
            Some(String::from_utf8(key.to_vec()).map_err(|_| invalid("a key must be UTF-8 text"))?)
        } else {
            None
        };
        self.try_queue(jetstation::Message {
            payload: Bytes::copy_from_slice(payload),
            key,
            headers: Vec::new(),
            msg_id: None,
        })
    }

    /// Copies one chunk of the Swift `sendBatch` into the core: the payloads
    /// one after another in `payloads` (borrowed for the call), `lengths[i]`
    /// bytes each, with `keys[i]` (see `split_chunk`). Queue it with
    /// `enqueueBatch`.
    pub fn stage_batch(
        &self,
        payloads: &[u8],
        lengths: Vec<u32>,
        keys: Vec<Option<String>>,
    ) -> Result<Arc<StagedBatch>> {
        let messages = split_chunk(payloads, lengths, keys)?;
        Ok(Arc::new(StagedBatch {
            messages: tokio::sync::Mutex::new(Some(messages)),
        }))
    }
}

impl Producer {
    fn try_queue(&self, message: jetstation::Message) -> Result<Arc<SendHandle>> {
        let _context = self.runtime.enter();
        let tried = self.inner.try_enqueue(message)?;
        let (queued, held) = match tried {
            jetstation::TryEnqueued::Queued(handle) => (Some(handle), None),
            jetstation::TryEnqueued::WouldWait(message) => (None, Some(message)),
        };
        Ok(Arc::new(SendHandle {
            inner: tokio::sync::Mutex::new(queued),
            held: std::sync::Mutex::new(held),
        }))
    }
}

/// The messages of a staged chunk, each payload copied on its own (see
/// `convert::split_payloads`).
fn split_chunk(
    payloads: &[u8],
    lengths: Vec<u32>,
    keys: Vec<Option<String>>,
) -> Result<Vec<jetstation::Message>> {
    if lengths.len() != keys.len() {
        return Err(invalid("payloads and keys must have the same length"));
    }
    let payloads = jetstation::convert::split_payloads(payloads, &lengths)?;
    Ok(payloads
        .into_iter()
        .zip(keys)
        .map(|(payload, key)| jetstation::Message {
            payload,
            key,
            ..Default::default()
        })
        .collect())
}

/// One chunk of `sendBatch`, copied into the core and not queued yet.
#[derive(uniffi::Object)]
pub struct StagedBatch {
    messages: tokio::sync::Mutex<Option<Vec<jetstation::Message>>>,
}

/// A queued message; `receipt()` waits until the broker stored it.
#[derive(uniffi::Object)]
pub struct SendHandle {
    inner: tokio::sync::Mutex<Option<jetstation::SendHandle>>,
    /// The message `tryEnqueue` could not queue without waiting, until
    /// `enqueueHeld` queues it.
    held: std::sync::Mutex<Option<jetstation::Message>>,
}

#[uniffi::export(async_runtime = "tokio")]
impl SendHandle {
    /// Waits for the receipt, as text (`receipts.rs`; the Swift `receipt()`
    /// tries `tryReceipt()` first, which needs no async call).
    pub async fn wait_receipt_text(&self) -> Result<String> {
        self.check_queued()?;
        let handle = take_once(
            &self.inner,
            "receipt() was already awaited for this message",
        )
        .await?;
        Ok(receipts::text(&handle.await?))
    }
}

#[uniffi::export]
impl SendHandle {
    /// False while the handle holds a message `tryEnqueue` could not queue
    /// without waiting (queue it with `Producer.enqueueHeld`).
    pub fn is_queued(&self) -> bool {
        self.held.lock().unwrap().is_none()
    }

    /// The receipt, as text (`receipts.rs`), if the message is already
    /// resolved; empty while it is pending; throws the message's error if it
    /// failed. The Swift `tryReceipt()` decodes it.
    pub fn try_receipt_text(&self) -> Result<String> {
        self.check_queued()?;
        let Ok(mut slot) = self.inner.try_lock() else {
            return Ok(String::new());
        };
        let Some(handle) = slot.as_mut() else {
            return Err(invalid("receipt() was already awaited for this message"));
        };
        match handle.try_receipt() {
            None => Ok(String::new()),
            Some(result) => {
                *slot = None;
                Ok(receipts::text(&result?))
            }
        }
    }
}

impl SendHandle {
    /// A handle that holds its message has no receipt to wait for.
    fn check_queued(&self) -> Result<()> {
        if self.is_queued() {
            return Ok(());
        }
        Err(invalid(
            "this message was not queued (tryEnqueue found no room): queue it with enqueueHeld, \
             or send it with enqueue",
        ))
    }
}

/// The queued messages of one `enqueueBatch` chunk.
#[derive(uniffi::Object)]
pub struct BatchHandle {
    handles: tokio::sync::Mutex<Option<Vec<jetstation::Result<jetstation::SendHandle>>>>,
}

#[uniffi::export(async_runtime = "tokio")]
impl BatchHandle {
    /// The chunk's receipts in order, packed (`receipts.rs`), or the first
    /// failed message's error.
    pub async fn wait_receipts_packed(&self) -> Result<Payload> {
        let handles = take_once(
            &self.handles,
            "the receipts of this batch were already awaited",
        )
        .await?;
        let mut receipts = Vec::with_capacity(handles.len());
        for handle in handles {
            receipts.push(handle?.await?);
        }
        Ok(receipts::pack(&receipts).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::JetstationError;

    #[test]
    fn a_staged_chunk_pairs_each_payload_with_its_key() {
        let keys = vec![Some("a".to_string()), None, Some("b".to_string())];
        let messages = split_chunk(b"onetwothree", vec![3, 3, 5], keys).unwrap();
        let payloads: Vec<_> = messages.iter().map(|m| &m.payload[..]).collect();
        assert_eq!(payloads, [&b"one"[..], b"two", b"three"]);
        assert_eq!(messages[0].key.as_deref(), Some("a"));
        assert_eq!(messages[1].key, None);
    }

    #[test]
    fn a_chunk_whose_lengths_disagree_is_refused() {
        let wrong_total = split_chunk(b"abc", vec![1, 1], vec![None, None]);
        assert!(matches!(
            wrong_total,
            Err(JetstationError::InvalidArgument { .. })
        ));
        let wrong_keys = split_chunk(b"ab", vec![1, 1], vec![None]);
        assert!(matches!(
            wrong_keys,
            Err(JetstationError::InvalidArgument { .. })
        ));
    }
}
