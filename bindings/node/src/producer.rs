//! The `Producer` class.

use napi::{
    Env,
    bindgen_prelude::{BufferSlice, Float64Array, PromiseRaw, Uint8Array, Uint32Array},
};
use napi_derive::napi;

use crate::{
    error::{IntoJs, invalid},
    external::{Borrowed, Owned, Tagged},
    handle::{Slot, new_handle},
    types::Receipt,
};

/// Producer settings. Durations are milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct ProducerOptions {
    pub max_batch_messages: Option<u32>,
    pub max_batch_bytes: Option<u32>,
    pub linger_ms: Option<f64>,
    pub max_in_flight: Option<u32>,
    pub buffer_bytes: Option<u32>,
    /// "wait" (default) or "fail".
    pub when_full: Option<String>,
    pub delivery_timeout_ms: Option<f64>,
    pub producer_id: Option<String>,
}

pub(crate) fn producer_options(o: ProducerOptions) -> napi::Result<jetstation::ProducerOptions> {
    let millis = |what: &str, ms: f64| jetstation::convert::millis(what, ms).js();
    let mut p = jetstation::ProducerOptions::default();
    if let Some(n) = o.max_batch_messages {
        p.max_batch_messages = n as usize;
    }
    if let Some(n) = o.max_batch_bytes {
        p.max_batch_bytes = n as usize;
    }
    if let Some(ms) = o.linger_ms {
        p.linger = millis("lingerMs", ms)?;
    }
    if let Some(n) = o.max_in_flight {
        p.max_in_flight = n as usize;
    }
    if let Some(n) = o.buffer_bytes {
        p.buffer_bytes = n as usize;
    }
    if let Some(w) = o.when_full {
        p.when_full = w.parse().js()?;
    }
    if let Some(ms) = o.delivery_timeout_ms {
        p.delivery_timeout = millis("deliveryTimeoutMs", ms)?;
    }
    p.producer_id = o.producer_id;
    Ok(p)
}

fn message(
    payload: &[u8],
    key: Option<String>,
    headers: Option<Vec<Vec<String>>>,
    msg_id: Option<String>,
) -> napi::Result<jetstation::Message> {
    let headers = headers
        .unwrap_or_default()
        .into_iter()
        .map(|pair| match <[String; 2]>::try_from(pair) {
            Ok([k, v]) => Ok((k, v)),
            Err(_) => Err(invalid("headers must be [name, value] pairs")),
        })
        .collect::<napi::Result<_>>()?;
    Ok(jetstation::Message {
        payload: payload.to_vec().into(),
        key,
        headers,
        msg_id,
    })
}

#[napi]
pub struct Producer {
    inner: jetstation::Producer,
}

impl Producer {
    pub(crate) fn new(inner: jetstation::Producer) -> Self {
        Self { inner }
    }
}

#[napi]
impl Producer {
    #[napi(getter)]
    pub fn station(&self) -> String {
        self.inner.station().to_string()
    }

    #[napi(getter)]
    pub fn producer_id(&self) -> String {
        self.inner.producer_id().to_string()
    }

    /// Sends and resolves once the broker stored the message. The message
    /// is made here, on the JavaScript thread: an argument of an `async`
    /// method is a `Buffer`, for which napi-rs keeps a reference (a global
    /// handle, deleted later from the JavaScript thread) until the future
    /// drops it; a copy of the bytes costs less.
    #[napi(ts_return_type = "Promise<Receipt>")]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        payload: BufferSlice,
        key: Option<String>,
        headers: Option<Vec<Vec<String>>>,
        msg_id: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, Receipt>> {
        let m = message(&payload, key, headers, msg_id)?;
        let producer = self.inner.clone();
        env.spawn_future(async move { Ok(producer.send(m).await.js()?.into()) })
    }

    /// Queues a chunk of `sendBatch` in order, waiting for room as `enqueue`
    /// does, and resolves once all of it is queued, with a handle to the
    /// chunk's receipts. The caller queues the next chunk after this one
    /// resolved, so chunks keep their order while the JavaScript thread
    /// converts the next chunk and earlier ones are on their way. The chunk
    /// holds messages `first..` of a batch of `total`, by column: payloads,
    /// keys and (when telemetry is on) headers, one entry per message. Each
    /// message is made here, on the JavaScript thread, from its payload's
    /// bytes (no reference to the buffer outlives the call) and elements of
    /// arrays (no property looked up by name). A refused message rejects,
    /// nothing of its chunk queued.
    #[napi(
        ts_args_type = "payloads: Array<Buffer>, keys: Array<string | undefined | null>, headers: Array<Array<Array<string>> | undefined | null> | undefined | null, first: number, total: number",
        ts_return_type = "Promise<BatchHandle>"
    )]
    pub fn enqueue_batch<'env>(
        &self,
        env: &'env Env,
        payloads: Vec<BufferSlice>,
        keys: Vec<Option<String>>,
        headers: Option<Vec<Option<Vec<Vec<String>>>>>,
        first: u32,
        total: u32,
    ) -> napi::Result<PromiseRaw<'env, BatchHandle>> {
        if keys.len() != payloads.len()
            || headers.as_ref().is_some_and(|h| h.len() != payloads.len())
        {
            return Err(invalid(
                "enqueueBatch needs one key and one header list per payload",
            ));
        }
        let mut headers = headers.map(Vec::into_iter);
        let messages = payloads
            .iter()
            .zip(keys)
            .map(|(payload, key)| {
                let h = headers.as_mut().and_then(|h| h.next().flatten());
                message(payload, key, h, None)
            })
            .collect::<napi::Result<Vec<_>>>()?;
        let producer = self.inner.clone();
        env.spawn_future(async move {
            let handles = producer
                .enqueue_chunk(messages, first as usize, total as usize)
                .await
                .js()?;
            Ok(BatchHandle {
                handles: std::sync::Mutex::new(Some(handles)),
            })
        })
    }

    /// The producer as an external, for `tryEnqueue` (called per message:
    /// a free function taking an external costs less than a class method).
    #[napi(ts_return_type = "ExternalObject<'Producer'>")]
    pub fn sender(&self) -> Owned<jetstation::Producer> {
        Owned(self.inner.clone())
    }

    /// Queues a message, waiting for room if the buffer is full; resolves
    /// with its handle (not its receipt).
    #[napi(ts_return_type = "Promise<ExternalObject<'SendHandle'>>")]
    pub fn enqueue<'env>(
        &self,
        env: &'env Env,
        payload: BufferSlice,
        key: Option<String>,
        headers: Option<Vec<Vec<String>>>,
        msg_id: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, Owned<Slot>>> {
        let m = message(&payload, key, headers, msg_id)?;
        let producer = self.inner.clone();
        env.spawn_future(async move { Ok(new_handle(producer.enqueue(m).await.js()?)) })
    }

    /// Deletes `key` from a compacted station (a tombstone, in the key's order).
    #[napi]
    pub async fn delete(&self, key: String) -> napi::Result<Receipt> {
        Ok(self.inner.delete(key).await.js()?.into())
    }

    #[napi]
    pub async fn flush(&self) -> napi::Result<()> {
        self.inner.flush().await.js()
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.close().await.js()
    }
}

impl Tagged for jetstation::Producer {
    const TAG: napi::sys::napi_type_tag = napi::sys::napi_type_tag {
        lower: 0x6a73_7470_726f_6475,
        upper: 0x41c7_9e02_d5b8_6f13,
    };
    const WHAT: &'static str = "a producer";
}

/// Queues without waiting when the producer (from `Producer.sender()`) has
/// room; returns a handle (see `tryReceipt`, `waitReceipt`), or null when it
/// would have to wait (then use `Producer.enqueue`).
#[napi(
    ts_args_type = "producer: ExternalObject<'Producer'>, payload: Buffer, key?: string | undefined | null, headers?: Array<Array<string>> | undefined | null, msgId?: string | undefined | null",
    ts_return_type = "ExternalObject<'SendHandle'> | null"
)]
pub fn try_enqueue(
    producer: Borrowed<jetstation::Producer>,
    payload: BufferSlice,
    key: Option<String>,
    headers: Option<Vec<Vec<String>>>,
    msg_id: Option<String>,
) -> napi::Result<Option<Owned<Slot>>> {
    let m = message(&payload, key, headers, msg_id)?;
    Ok(match producer.try_enqueue(m).js()? {
        jetstation::TryEnqueued::Queued(handle) => Some(new_handle(handle)),
        jetstation::TryEnqueued::WouldWait(_) => None,
    })
}

/// The queued messages of one `enqueueBatch` chunk; `wait()` resolves with
/// their receipts in order, or fails with the first message's error.
#[napi]
pub struct BatchHandle {
    handles: std::sync::Mutex<Option<Vec<jetstation::Result<jetstation::SendHandle>>>>,
}

#[napi]
impl BatchHandle {
    /// The chunk's receipts, by column (see `BatchReceipts`); fails with the
    /// first failed message's error.
    #[napi]
    pub async fn wait(&self) -> napi::Result<BatchReceipts> {
        let handles = self
            .handles
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| invalid("this batch handle was already awaited"))?;
        let n = handles.len();
        let (mut partitions, mut sequences) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut duplicates, mut msg_ids) = (Vec::with_capacity(n), String::new());
        for (i, handle) in handles.into_iter().enumerate() {
            let r = handle.js()?.await.js()?;
            partitions.push(r.partition);
            sequences.push(r.sequence as f64);
            duplicates.push(u8::from(r.duplicate));
            if i > 0 {
                msg_ids.push('\n');
            }
            msg_ids.push_str(&r.msg_id);
        }
        Ok(BatchReceipts {
            partitions: partitions.into(),
            sequences: sequences.into(),
            duplicates: duplicates.into(),
            msg_ids,
        })
    }
}

/// The receipts of one `enqueueBatch` chunk, one column per field: the
/// TypeScript `sendBatch` makes the receipt objects, which costs less than
/// a native object with named properties per message. Message ids are
/// joined by newlines (a header value, which an id travels as, has none).
#[napi(object)]
pub struct BatchReceipts {
    pub partitions: Uint32Array,
    pub sequences: Float64Array,
    /// 1 for a duplicate, else 0.
    pub duplicates: Uint8Array,
    pub msg_ids: String,
}
