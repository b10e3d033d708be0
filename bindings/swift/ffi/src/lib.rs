//! Swift (uniffi) glue over the jetstation core: conversion and error
//! mapping only. Durations are seconds (`TimeInterval` in Swift).
// uniffi's generated scaffolding needs `pub` items and unsafe FFI code.
#![allow(unsafe_code, unreachable_pub, missing_debug_implementations)]

use std::{sync::Arc, time::Duration};

use futures::FutureExt;
use tokio::sync::Notify;

uniffi::setup_scaffolding!();

/// Errors with the stable kinds shared by every language.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum JetstationError {
    #[error("{message}")]
    Connection { message: String },
    #[error("{message}")]
    Timeout { message: String },
    #[error("{message}")]
    Auth { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    AlreadyExists { message: String },
    #[error("{message}")]
    InvalidArgument { message: String },
    #[error("{message}")]
    PayloadTooLarge { message: String },
    #[error("{message}")]
    ServerTooOld { message: String },
    #[error("{message}")]
    Closed { message: String },
    #[error("{message}")]
    BufferFull { message: String },
    #[error("{message}")]
    SchemaValidation { message: String },
    #[error("{message}")]
    IncompatibleSchema { message: String },
    #[error("{message}")]
    Broker { message: String },
}

impl From<jetstation::Error> for JetstationError {
    fn from(e: jetstation::Error) -> Self {
        use jetstation::ErrorKind as K;
        let message = e.message().to_string();
        match e.kind() {
            K::Connection => Self::Connection { message },
            K::Timeout => Self::Timeout { message },
            K::Auth => Self::Auth { message },
            K::NotFound => Self::NotFound { message },
            K::AlreadyExists => Self::AlreadyExists { message },
            K::InvalidArgument => Self::InvalidArgument { message },
            K::PayloadTooLarge => Self::PayloadTooLarge { message },
            K::ServerTooOld => Self::ServerTooOld { message },
            K::Closed => Self::Closed { message },
            K::BufferFull => Self::BufferFull { message },
            K::SchemaValidation => Self::SchemaValidation { message },
            K::IncompatibleSchema => Self::IncompatibleSchema { message },
            _ => Self::Broker { message },
        }
    }
}

type Result<T> = std::result::Result<T, JetstationError>;

fn invalid(message: impl Into<String>) -> JetstationError {
    JetstationError::InvalidArgument {
        message: message.into(),
    }
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| invalid(format!("{what} must be >= 0 seconds, got {s}")))
}

#[derive(uniffi::Record, Default)]
pub struct ConnectOptions {
    #[uniffi(default = None)]
    pub token: Option<String>,
    #[uniffi(default = None)]
    pub user: Option<String>,
    #[uniffi(default = None)]
    pub password: Option<String>,
    #[uniffi(default = None)]
    pub nkey_seed: Option<String>,
    #[uniffi(default = None)]
    pub namespace: Option<String>,
    #[uniffi(default = None)]
    pub request_timeout: Option<f64>,
}

#[derive(uniffi::Record, Default)]
pub struct StationConfig {
    #[uniffi(default = None)]
    pub partitions: Option<u32>,
    #[uniffi(default = None)]
    pub max_deliveries: Option<u32>,
    #[uniffi(default = None)]
    pub memory: Option<bool>,
    #[uniffi(default = None)]
    pub max_age: Option<f64>,
    #[uniffi(default = None)]
    pub schema: Option<String>,
    #[uniffi(default = None)]
    pub replicas: Option<u32>,
}

#[derive(uniffi::Record, Default)]
pub struct ProducerOptions {
    #[uniffi(default = None)]
    pub buffer_bytes: Option<u32>,
    /// Fail at once with `BufferFull` instead of waiting when the buffer is full.
    #[uniffi(default = None)]
    pub fail_when_full: Option<bool>,
    /// Seconds a message may take, retries included.
    #[uniffi(default = None)]
    pub delivery_timeout: Option<f64>,
}

#[derive(uniffi::Record)]
pub struct Station {
    pub name: String,
    pub partitions: u32,
    pub max_deliveries: u32,
    pub messages: u64,
    pub dead_letters: u64,
}

#[derive(uniffi::Record)]
pub struct Receipt {
    pub station: String,
    pub partition: u32,
    pub sequence: u64,
    pub duplicate: bool,
    pub msg_id: String,
}

/// How one partition of a consumer group member is doing.
#[derive(uniffi::Record)]
pub struct PartitionHealth {
    pub partition: u32,
    /// Assigned to this member.
    pub owned: bool,
    /// Knows every message the broker counts as pending (runs and commits).
    pub in_sync: bool,
    /// Delivered, not yet committed messages held here.
    pub held: u64,
    /// Messages the broker had not delivered yet, at its last answer.
    pub undelivered: u64,
    /// Seconds since the epoch of the last delivery.
    pub last_delivery: Option<f64>,
    /// The latest pull failure (repaired by the member itself).
    pub last_error: Option<String>,
}

impl From<jetstation::PartitionHealth> for PartitionHealth {
    fn from(h: jetstation::PartitionHealth) -> Self {
        Self {
            partition: h.partition,
            owned: h.owned,
            in_sync: h.in_sync,
            held: h.held as u64,
            undelivered: h.undelivered,
            last_delivery: h.last_delivery_unix(),
            last_error: h.last_error,
        }
    }
}

#[derive(uniffi::Record)]
pub struct DeadLetter {
    pub sequence: u64,
    pub origin_station: String,
    pub origin_partition: u32,
    pub origin_sequence: u64,
    pub group: String,
    pub deliveries: u64,
    pub last_error: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

#[derive(uniffi::Record, Default)]
pub struct ConsumerOptions {
    #[uniffi(default = None)]
    pub concurrency: Option<u32>,
    #[uniffi(default = None)]
    pub ack_wait: Option<f64>,
    #[uniffi(default = None)]
    pub redelivery_delay: Option<f64>,
    #[uniffi(default = None)]
    pub handover_timeout: Option<f64>,
    #[uniffi(default = None)]
    pub latest: Option<bool>,
    /// A new group starts at this sequence in every partition.
    #[uniffi(default = None)]
    pub start_sequence: Option<u64>,
}

/// One header of a message (a name may appear more than once).
#[derive(uniffi::Record, Clone)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A message to send, with everything a message can carry.
#[derive(uniffi::Record)]
pub struct OutgoingMessage {
    pub payload: Vec<u8>,
    #[uniffi(default = None)]
    pub key: Option<String>,
    #[uniffi(default = [])]
    pub headers: Vec<Header>,
    /// Idempotency id: a resend with the same id is stored once.
    #[uniffi(default = None)]
    pub msg_id: Option<String>,
}

impl From<OutgoingMessage> for jetstation::Message {
    fn from(o: OutgoingMessage) -> Self {
        let mut m = jetstation::Message::new(o.payload);
        m.key = o.key;
        if let Some(id) = o.msg_id {
            m = m.msg_id(id);
        }
        for h in o.headers {
            m = m.header(h.name, h.value);
        }
        m
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
        Ok(receipt(handle.await?))
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
        match handle.now_or_never() {
            None => Ok(None),
            Some(result) => {
                *slot = None;
                Ok(Some(receipt(result?)))
            }
        }
    }
}

#[derive(uniffi::Object)]
pub struct Client {
    inner: jetstation::Client,
}

/// Connects and checks the server (2.12 or newer, JetStream enabled).
#[uniffi::export(async_runtime = "tokio")]
pub async fn connect(urls: Vec<String>, options: ConnectOptions) -> Result<Arc<Client>> {
    let mut c = jetstation::ConnectOptions::with_urls(urls);
    c.auth = jetstation::Auth::from_parts(
        options.token,
        options.user,
        options.password,
        options.nkey_seed,
        None,
    )?;
    c.namespace = options.namespace;
    if let Some(t) = options.request_timeout {
        c.request_timeout = seconds(t, "requestTimeout")?;
    }
    Ok(Arc::new(Client {
        inner: jetstation::Client::connect(c).await?,
    }))
}

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    pub fn server_version(&self) -> String {
        self.inner.server_version()
    }

    pub async fn create_station(&self, name: String, config: StationConfig) -> Result<Station> {
        let mut c = jetstation::StationConfig::default();
        if let Some(p) = config.partitions {
            c.partitions = p;
        }
        if let Some(m) = config.max_deliveries {
            c.max_deliveries = m;
        }
        if config.memory == Some(true) {
            c.storage = jetstation::Storage::Memory;
        }
        if let Some(r) = config.replicas {
            c.replicas = r as usize;
        }
        c.max_age = config.max_age.map(|a| seconds(a, "maxAge")).transpose()?;
        c.schema = config.schema.map(|name| jetstation::SchemaBinding {
            name,
            version: None,
        });
        Ok(station(self.inner.create_station(&name, c).await?))
    }

    pub async fn station(&self, name: String) -> Result<Station> {
        Ok(station(self.inner.station(&name).await?))
    }

    pub async fn delete_station(&self, name: String) -> Result<()> {
        Ok(self.inner.delete_station(&name).await?)
    }

    pub async fn producer(
        &self,
        station: String,
        options: ProducerOptions,
    ) -> Result<Arc<Producer>> {
        let mut o = jetstation::ProducerOptions::default();
        if let Some(b) = options.buffer_bytes {
            o.buffer_bytes = b as usize;
        }
        if options.fail_when_full == Some(true) {
            o.when_full = jetstation::WhenFull::FailFast;
        }
        if let Some(t) = options.delivery_timeout {
            o.delivery_timeout = seconds(t, "deliveryTimeout")?;
        }
        let inner = self.inner.producer(&station, o).await?;
        Ok(Arc::new(Producer { inner }))
    }

    pub async fn consumer(
        &self,
        station: String,
        group: String,
        options: ConsumerOptions,
    ) -> Result<Arc<Consumer>> {
        let mut o = jetstation::ConsumerOptions::default();
        if let Some(c) = options.concurrency {
            o.concurrency = c as usize;
        }
        if let Some(s) = options.ack_wait {
            o.ack_wait = seconds(s, "ackWait")?;
        }
        if let Some(s) = options.redelivery_delay {
            o.redelivery_delay = seconds(s, "redeliveryDelay")?;
        }
        if let Some(s) = options.handover_timeout {
            o.handover_timeout = seconds(s, "handoverTimeout")?;
        }
        if options.latest == Some(true) {
            o.start = jetstation::StartPosition::Latest;
        }
        if let Some(s) = options.start_sequence {
            o.start = jetstation::StartPosition::Sequence(s);
        }
        let inner = self.inner.consumer(&station, &group, o).await?;
        Ok(Arc::new(Consumer {
            inner,
            interrupt: Notify::new(),
        }))
    }

    pub async fn dead_letters(&self, station: String) -> Result<Vec<DeadLetter>> {
        Ok(self
            .inner
            .dead_letters(&station)
            .await?
            .into_iter()
            .map(|d| DeadLetter {
                sequence: d.sequence,
                origin_station: d.origin_station,
                origin_partition: d.origin_partition,
                origin_sequence: d.origin_sequence,
                group: d.group,
                deliveries: d.deliveries,
                last_error: d.last_error,
                key: d.key,
                payload: d.payload.to_vec(),
            })
            .collect())
    }

    pub async fn replay_dead_letter(&self, station: String, sequence: u64) -> Result<Receipt> {
        Ok(receipt(
            self.inner.replay_dead_letter(&station, sequence).await?,
        ))
    }

    /// Registers a schema version; format is "json_schema", "protobuf" or "avro".
    pub async fn register_schema(
        &self,
        name: String,
        format: String,
        source: String,
        message_type: Option<String>,
    ) -> Result<u32> {
        let definition = jetstation::SchemaDefinition {
            format: format.parse()?,
            source,
            message_type,
        };
        Ok(self.inner.register_schema(&name, definition).await?.version)
    }

    /// Encodes a JSON value (text) with a schema version (`nil`: latest).
    pub async fn encode_with_schema(
        &self,
        name: String,
        json: String,
        version: Option<u32>,
    ) -> Result<Vec<u8>> {
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| invalid(format!("not JSON: {e}")))?;
        Ok(self
            .inner
            .encode_with_schema(&name, version, &value)
            .await?)
    }

    /// Closes the connection after flushing what was sent.
    pub async fn close(&self) -> Result<()> {
        Ok(self.inner.clone().close().await?)
    }

    /// Decodes a payload written with a schema version (`nil`: latest) into
    /// JSON text.
    pub async fn decode_with_schema(
        &self,
        name: String,
        payload: Vec<u8>,
        version: Option<u32>,
    ) -> Result<String> {
        let value = self
            .inner
            .decode_with_schema(&name, version, &payload)
            .await?;
        Ok(value.to_string())
    }
}

fn station(s: jetstation::Station) -> Station {
    Station {
        name: s.name,
        partitions: s.config.partitions,
        max_deliveries: s.config.max_deliveries,
        messages: s.messages,
        dead_letters: s.dead_letters,
    }
}

fn receipt(r: jetstation::Receipt) -> Receipt {
    Receipt {
        station: r.station,
        partition: r.partition,
        sequence: r.sequence,
        duplicate: r.duplicate,
        msg_id: r.msg_id,
    }
}

#[derive(uniffi::Object)]
pub struct Producer {
    inner: jetstation::Producer,
}

#[uniffi::export(async_runtime = "tokio")]
impl Producer {
    /// Sends and returns once the broker stored the message.
    pub async fn send(&self, payload: Vec<u8>, key: Option<String>) -> Result<Receipt> {
        let mut m = jetstation::Message::new(payload);
        m.key = key;
        Ok(receipt(self.inner.send(m).await?))
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
        Ok(receipt(self.inner.send(message.into()).await?))
    }

    /// Queues a message; await the handle's `receipt()` for its receipt.
    pub async fn enqueue_message(&self, message: OutgoingMessage) -> Result<Arc<SendHandle>> {
        let handle = self.inner.enqueue(message.into()).await?;
        Ok(Arc::new(SendHandle {
            inner: tokio::sync::Mutex::new(Some(handle)),
        }))
    }

    /// Sends many (payload, key) messages in one call; receipts in order.
    pub async fn send_batch(
        &self,
        payloads: Vec<Vec<u8>>,
        keys: Vec<Option<String>>,
    ) -> Result<Vec<Receipt>> {
        if payloads.len() != keys.len() {
            return Err(invalid("payloads and keys must have the same length"));
        }
        let mut handles = Vec::with_capacity(payloads.len());
        for (payload, key) in payloads.into_iter().zip(keys) {
            let mut m = jetstation::Message::new(payload);
            m.key = key;
            handles.push(self.inner.enqueue(m).await?);
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(receipt(h.await?));
        }
        Ok(out)
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
    pub fn try_enqueue_message(&self, message: OutgoingMessage) -> Result<Option<Arc<SendHandle>>> {
        // Polled inside the runtime the async calls use, in case the enqueue
        // has to start a task (a schema look-up).
        match async_compat::Compat::new(self.inner.enqueue(message.into())).now_or_never() {
            None => Ok(None),
            Some(handle) => Ok(Some(Arc::new(SendHandle {
                inner: tokio::sync::Mutex::new(Some(handle?)),
            }))),
        }
    }
}

#[derive(uniffi::Object)]
pub struct Consumer {
    inner: jetstation::Consumer,
    interrupt: Notify,
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

#[derive(uniffi::Object)]
pub struct Message {
    message: jetstation::ReceivedMessage,
    delivery: std::sync::Mutex<Option<jetstation::Delivery>>,
}

impl Message {
    fn new(d: jetstation::Delivery) -> Self {
        Self {
            message: d.message().clone(),
            delivery: std::sync::Mutex::new(Some(d)),
        }
    }

    fn take(&self) -> Result<jetstation::Delivery> {
        self.delivery
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| invalid("this message was already acked, nacked or terminated"))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Message {
    /// Still working: postpones the redelivery of this message by ackWait.
    pub async fn in_progress(&self) -> Result<()> {
        let fut = {
            let d = self.delivery.lock().unwrap();
            let Some(d) = d.as_ref() else {
                return Err(invalid("this message was already settled"));
            };
            d.in_progress_future()
        };
        Ok(fut.await?)
    }
}

#[uniffi::export]
impl Message {
    pub fn payload(&self) -> Vec<u8> {
        self.message.payload.to_vec()
    }
    pub fn key(&self) -> Option<String> {
        self.message.key.clone()
    }
    pub fn sequence(&self) -> u64 {
        self.message.sequence
    }
    pub fn partition(&self) -> u32 {
        self.message.partition
    }
    pub fn deliveries(&self) -> u64 {
        self.message.deliveries
    }
    pub fn header(&self, name: String) -> Option<String> {
        self.message.header(&name).map(String::from)
    }
    /// Every header stored with the message, sorted by name.
    pub fn headers(&self) -> Vec<Header> {
        self.message
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }
    pub fn msg_id(&self) -> Option<String> {
        self.message.msg_id.clone()
    }
    pub fn ack(&self) -> Result<()> {
        Ok(self.take()?.ack()?)
    }
    /// Failed: redelivered later, or dead-lettered after max deliveries.
    pub fn nack(&self, reason: String, delay: Option<f64>) -> Result<()> {
        let delay = delay.map(|d| seconds(d, "delay")).transpose()?;
        Ok(self.take()?.nack_with_reason(reason, delay)?)
    }
    pub fn term(&self, reason: String) -> Result<()> {
        Ok(self.take()?.term(reason)?)
    }
}

#[cfg(test)]
mod tests {
    use super::JetstationError;

    #[test]
    fn every_core_kind_maps_to_the_case_of_the_same_name() {
        for kind in jetstation::ErrorKind::ALL {
            let mapped = JetstationError::from(jetstation::Error::new(kind, "m"));
            let case = format!("{mapped:?}");
            let expected: String = kind
                .as_str()
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert!(
                case.starts_with(&format!("{expected} {{")),
                "{kind}: {case}"
            );
        }
    }
}
