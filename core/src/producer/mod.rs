//! Producers: ordered, batched, pipelined, retried and idempotent sends.
//!
//! `send` resolves once the broker has stored the message and returns a
//! [`Receipt`]; `enqueue` queues it and returns a [`SendHandle`] to await
//! later; `flush` waits for everything queued; `close` flushes and refuses
//! further sends.
//!
//! # How order survives retries
//! Each partition of a station is its own stream, and each partition has one
//! pipeline in the producer ([`partition`]). Every message carries its id
//! (`Nats-Msg-Id`, given or `<producer id>-<sequence>`), so a retry inside
//! the station's dedup window is answered as a duplicate with its original
//! sequence instead of being stored twice. The one exception: in a fast
//! batch a generated id travels as `Jst-Id`, which the broker keeps no
//! record of; there the sequence each message expects keeps a second copy
//! out, and after an answer that proves nothing the pipeline reads what the
//! batch stored before it sends any of it again.
//!
//! A pipeline has one *unit* in flight at a time: one message, or all the
//! messages that queued up while the previous unit was on its way, sent as
//! one batch; and the next unit leaves only once the broker confirmed the
//! previous one, so nothing of ours can be missing before it. A batch is a
//! fast-ingest batch where the server has them (2.14+, see [`fast`]):
//! pipelined, stopped by the server at the first lost or refused message,
//! every message stored only right after the sequence it names. A fast
//! batch needs the partition's last sequence: while the pipeline does not
//! know it (its first unit, or after a failure), the unit's first message
//! goes alone and its acknowledgement tells. Otherwise, and whenever a fast
//! batch's answer does not prove where its messages went (once what it
//! stored is read back), it is an atomic batch (2.12+, `Nats-Batch-Id`),
//! stored whole, contiguously, or not at all. Per-key order and "nothing stored after a
//! gap" therefore hold by construction, whoever else writes the partition,
//! on one node or on a replicated cluster, and receipts are exact.
//!
//! On a failure the unit is sent again, after an exponential backoff with
//! jitter (the `backoff` crate) when the failure is transient. A batch the
//! broker refuses as a whole is sent again one message at a time, so that a
//! permanent failure is pinned on the message that caused it. If the first
//! unconfirmed message fails for good (permanent error, or its delivery
//! timeout passed) it fails, and so does every message of the partition
//! queued behind it, with an error that names the first failure: nothing is
//! stored after a gap.
//!
//! Guards considered and not used, because a replicated stream cannot check
//! them safely or they are not exact with several producers:
//! `Nats-Expected-Last-Msg-Id` is checked again when each replica applies
//! the entry, against a last id that a restarted replica does not share
//! with the leader, which fails the apply and stalls the partition;
//! `Nats-Expected-Last-Sequence` with predicted sequences lets a message
//! pass after its refused predecessor whenever another producer's message
//! fills exactly that place.

mod fast;
mod partition;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_nats::{HeaderMap, HeaderName};
use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    headers,
    names::{partition_of, validate_key},
    schema::{SCHEMA_HEADER, SCHEMA_VERSION_HEADER, SchemaBinding, schema_refusal},
    station::unknown_station,
};

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub payload: Bytes,
    /// Routing and ordering key: messages of one key go to one partition and
    /// keep their order.
    pub key: Option<String>,
    /// Application headers (names starting with `Nats-` or `Jst-` are reserved).
    pub headers: Vec<(String, String)>,
    /// Idempotency id; derived from the producer id and a sequence when absent.
    pub msg_id: Option<String>,
}

impl Message {
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            ..Default::default()
        }
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn msg_id(mut self, id: impl Into<String>) -> Self {
        self.msg_id = Some(id.into());
        self
    }
}

/// Proof that the broker stored a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub station: String,
    pub partition: u32,
    /// Sequence of the message in its partition.
    pub sequence: u64,
    /// The broker already had a message with this id (inside the dedup
    /// window); `sequence` is the one it was stored at.
    pub duplicate: bool,
    pub msg_id: String,
}

/// What `send` does when the producer's buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Wait until space frees up.
    #[default]
    Wait,
    /// Fail at once with a `BufferFull` error.
    FailFast,
}

crate::vocabulary::vocabulary!(WhenFull, "when_full policy", {
    Wait => "wait",
    FailFast => "fail" | "fail_fast" | "failfast",
});

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Most messages sent together as one unit (default 16,384). A
    /// fast-ingest batch takes any number, pipelined under the server's flow
    /// control; the atomic path sends a longer unit as several batches of
    /// at most 1,000 messages (the server's largest). The pipeline waits for
    /// each unit's confirmation before the next leaves, so a longer unit
    /// means fewer of those waits under load.
    pub max_batch_messages: usize,
    /// Most bytes sent together in one unit (default 16 MiB).
    pub max_batch_bytes: usize,
    /// How long a partly filled batch waits for more messages (0: leave at once).
    pub linger: Duration,
    /// Most unconfirmed messages per partition (default 16,384; one unit is
    /// in flight at a time, so this also caps a unit).
    pub max_in_flight: usize,
    /// Bytes of queued and unconfirmed messages, all partitions together:
    /// each counts its payload, headers and subject, plus 512 bytes for
    /// the producer's own bookkeeping of it.
    pub buffer_bytes: usize,
    pub when_full: WhenFull,
    /// How long a message may take, retries included, before it fails.
    pub delivery_timeout: Duration,
    /// First and longest wait between retries.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Prefix of derived message ids; random when absent. Give a stable id to
    /// a producer that must dedup across restarts with explicit sequences.
    pub producer_id: Option<String>,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            max_batch_messages: 16 << 10,
            max_batch_bytes: 16 << 20,
            linger: Duration::ZERO,
            max_in_flight: 16 << 10,
            buffer_bytes: 64 << 20,
            when_full: WhenFull::Wait,
            delivery_timeout: Duration::from_secs(60),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            producer_id: None,
        }
    }
}

impl ProducerOptions {
    pub fn max_batch_messages(mut self, n: usize) -> Self {
        self.max_batch_messages = n;
        self
    }
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.max_batch_bytes = n;
        self
    }
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }
    pub fn buffer_bytes(mut self, n: usize) -> Self {
        self.buffer_bytes = n;
        self
    }
    pub fn when_full(mut self, w: WhenFull) -> Self {
        self.when_full = w;
        self
    }
    pub fn delivery_timeout(mut self, d: Duration) -> Self {
        self.delivery_timeout = d;
        self
    }
    pub fn producer_id(mut self, id: impl Into<String>) -> Self {
        self.producer_id = Some(id.into());
        self
    }

    fn validate(&self) -> Result<()> {
        if self.max_batch_messages == 0 || self.max_in_flight == 0 {
            return Err(Error::invalid(
                "max_batch_messages and max_in_flight must be at least 1",
            ));
        }
        if self.buffer_bytes < 1024 || self.buffer_bytes > u32::MAX as usize {
            return Err(Error::invalid(
                "buffer_bytes must be between 1 KiB and 4 GiB",
            ));
        }
        if self.delivery_timeout.is_zero() {
            return Err(Error::invalid("delivery_timeout must be positive"));
        }
        // Every derived message id starts with it, and ids travel as header
        // values.
        if let Some(id) = &self.producer_id
            && (id.is_empty() || id.contains(['\r', '\n']))
        {
            return Err(Error::invalid(
                "producer_id must not be empty or contain a line break",
            ));
        }
        Ok(())
    }
}

/// A message accepted by the pipeline, waiting to be stored.
///
/// Its headers are kept as their parts and the header map is built for each
/// send ([`Pending::header_map`]): async-nats takes the map by value, so a map
/// built at enqueue would be built once and then copied for every send.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) subject: async_nats::Subject,
    pub(crate) payload: Bytes,
    pub(crate) msg_id: String,
    /// The producer made `msg_id` up (the application gave none): no one
    /// but this producer can send it, so a fast batch may carry it as
    /// `Jst-Id` instead of a deduplication id.
    pub(crate) generated_id: bool,
    pub(crate) key: Option<String>,
    /// Application headers, then jetstation's optional ones (schema,
    /// tombstone, trace context); names and values already checked.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<Result<Receipt>>,
    /// Released when the message is resolved, either way.
    pub(crate) _ticket: Ticket,
}

static MSG_ID_HEADER: HeaderName = HeaderName::from_static(headers::MSG_ID);
static PRODUCER_ID_HEADER: HeaderName = HeaderName::from_static(headers::PRODUCER_ID);

impl Pending {
    /// The headers to publish the message with, before the transport ones
    /// of a batch.
    pub(crate) fn header_map(&self) -> HeaderMap {
        self.header_map_with_id(&MSG_ID_HEADER)
    }

    /// The headers of the message in a fast batch: a generated id travels
    /// as `Jst-Id`, which the broker does not record (see `fast`).
    pub(crate) fn fast_header_map(&self) -> HeaderMap {
        if self.generated_id {
            self.header_map_with_id(&PRODUCER_ID_HEADER)
        } else {
            self.header_map()
        }
    }

    fn header_map_with_id(&self, id: &HeaderName) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(id.clone(), self.msg_id.as_str());
        if let Some(key) = &self.key {
            map.insert(headers::KEY_NAME.clone(), key.as_str());
        }
        for (name, value) in &self.headers {
            // Checked at enqueue (`check_header`): cannot fail.
            if let Ok(name) = name.parse::<HeaderName>() {
                map.append(name, value.as_str());
            }
        }
        map
    }
}

/// Holds buffer space and counts the message as outstanding until dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    _permit: OwnedSemaphorePermit,
    outstanding: Arc<Outstanding>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outstanding.done();
    }
}

/// Messages queued or in flight. A counter that wakes `flush` only when it
/// drops to zero: a `watch` would notify on every message.
#[derive(Debug, Default)]
struct Outstanding {
    count: AtomicUsize,
    idle: Notify,
}

impl Outstanding {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a drop to zero in between
            // is not missed.
            notified.as_mut().enable();
            if self.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// What [`Producer::try_enqueue`] did with a message.
#[derive(Debug)]
pub enum TryEnqueued {
    /// Queued: the handle resolves once the message is stored.
    Queued(SendHandle),
    /// Not queued, because queueing would have to wait (for buffer space,
    /// or for the station's schema): the message, for
    /// [`Producer::enqueue`]. Unchanged, but that with the `otel` feature a
    /// message turned back for want of room carries the trace context of
    /// the `create` span made for it (`traceparent`), so queueing it makes
    /// no second one.
    WouldWait(Message),
}

/// A message that passed every check, before its buffer space.
struct Vetted {
    partition: u32,
    msg_id: String,
    added: Vec<(String, String)>,
    subject: async_nats::Subject,
    /// What the buffer counts for it.
    size: usize,
}

impl Vetted {
    fn admitted(self, permit: OwnedSemaphorePermit) -> Admitted {
        Admitted {
            partition: self.partition,
            msg_id: self.msg_id,
            added: self.added,
            subject: self.subject,
            permit,
        }
    }
}

/// A message's admission: what [`Producer::admit`] worked out and reserved.
struct Admitted {
    partition: u32,
    msg_id: String,
    /// jetstation's headers for it, after the application's.
    added: Vec<(String, String)>,
    subject: async_nats::Subject,
    permit: OwnedSemaphorePermit,
}

/// Awaitable result of [`Producer::enqueue`].
#[derive(Debug)]
pub struct SendHandle {
    rx: oneshot::Receiver<Result<Receipt>>,
}

impl SendHandle {
    /// The receipt if the message is resolved already, without waiting
    /// (`None`: still on its way). Once it returned `Some`, the handle is spent.
    pub fn try_receipt(&mut self) -> Option<Result<Receipt>> {
        match self.rx.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(Error::new(
                ErrorKind::Closed,
                "the producer stopped before this message was resolved, or its receipt was \
                 already taken",
            ))),
        }
    }
}

impl Future for SendHandle {
    type Output = Result<Receipt>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Closed,
                    "the producer stopped before this message was resolved",
                ))
            })
        })
    }
}

/// Sends messages to one station. Cheap to clone; clones share the pipelines.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    station: String,
    partitions: u32,
    compaction: bool,
    /// How long a tombstone lives (see [`crate::state`]).
    tombstone_ttl: Duration,
    /// The subject of each partition (stations without compaction).
    subjects: Vec<async_nats::Subject>,
    /// The server's limit, read when the producer is created.
    max_payload: usize,
    schema: Option<SchemaBinding>,
    client: Client,
    options: ProducerOptions,
    producer_id: String,
    next_seq: AtomicU64,
    round_robin: AtomicU32,
    buffer: Arc<Semaphore>,
    outstanding: Arc<Outstanding>,
    closed: AtomicBool,
    queues: Vec<mpsc::UnboundedSender<Pending>>,
}

impl Client {
    /// A producer for `station`, which must exist.
    pub async fn producer(&self, station: &str, options: ProducerOptions) -> Result<Producer> {
        self.ensure_open()?;
        crate::names::validate_name("station", station)?;
        options.validate()?;
        let config = self
            .read_station_config(station)
            .await?
            .ok_or_else(|| unknown_station(station))?;
        let producer_id = options
            .producer_id
            .clone()
            .unwrap_or_else(|| nuid::next().to_string());
        let fast_batches = self.has_fast_batches();
        self.inner.elections.subscribe(&self.inner.nats).await;
        let mut queues = Vec::new();
        for p in 0..config.partitions {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.push(tx);
            let worker = partition::Worker::new(
                self.inner.js.clone(),
                station.to_string(),
                self.inner.names.partition_stream(station, p),
                p,
                options.clone(),
                rx,
                self.inner.telemetry.clone(),
            )
            .with_fast_batches(fast_batches)
            .with_liveness(self.inner.liveness.clone())
            .with_election(
                self.inner
                    .elections
                    .stream(&self.inner.names.partition_stream(station, p)),
            );
            tokio::spawn(worker.run());
        }
        Ok(Producer {
            inner: Arc::new(Inner {
                station: station.to_string(),
                partitions: config.partitions,
                compaction: config.compaction,
                tombstone_ttl: crate::state::tombstone_ttl(&config),
                subjects: (0..config.partitions)
                    .map(|p| {
                        self.inner
                            .names
                            .message_subject(station, p, None, false)
                            .into()
                    })
                    .collect(),
                max_payload: self.max_payload(),
                schema: config.schema.clone(),
                client: self.clone(),
                buffer: Arc::new(Semaphore::new(options.buffer_bytes)),
                options,
                producer_id,
                next_seq: AtomicU64::new(1),
                round_robin: AtomicU32::new(0),
                outstanding: Arc::default(),
                closed: AtomicBool::new(false),
                queues,
            }),
        })
    }
}

impl Producer {
    pub fn station(&self) -> &str {
        &self.inner.station
    }

    /// The prefix of message ids this producer derives.
    pub fn producer_id(&self) -> &str {
        &self.inner.producer_id
    }

    /// Sends and waits until the broker stored the message.
    #[tracing::instrument(name = "send", level = "debug", skip_all, fields(station = %self.inner.station))]
    pub async fn send(&self, message: Message) -> Result<Receipt> {
        self.enqueue(message).await?.await
    }

    /// Queues `message` at once if that needs no waiting (buffer space is
    /// free, the station's schema is loaded): [`TryEnqueued::Queued`] with
    /// its handle. When it would have to wait, nothing is queued and the
    /// message comes back as [`TryEnqueued::WouldWait`], to be passed to
    /// [`Producer::enqueue`]. Refusals (bad input, buffer full with
    /// `WhenFull::FailFast`, closed) are errors as with `enqueue`.
    /// Must be called inside a Tokio runtime.
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    pub fn try_enqueue(&self, mut message: Message) -> Result<TryEnqueued> {
        use futures::FutureExt;
        // Admission takes the message by reference and the message is only
        // consumed once admitted: when admission would wait, dropping its
        // future leaves nothing queued (at most a derived id goes unused).
        // Vetting waits only for a schema not loaded yet, before any span.
        let Some(vetted) = self.vet(&message, false).now_or_never() else {
            return Ok(TryEnqueued::WouldWait(message));
        };
        let vetted = vetted?;
        let Some(permit) = self.reserve(vetted.size).now_or_never() else {
            #[cfg(feature = "otel")]
            message.headers.extend(
                vetted
                    .added
                    .into_iter()
                    .filter(|(name, _)| crate::telemetry::otel::is_trace_header(name)),
            );
            return Ok(TryEnqueued::WouldWait(message));
        };
        Ok(TryEnqueued::Queued(
            self.queue(message, vetted.admitted(permit?))?,
        ))
    }

    /// Queues every message in order (keys keep their order across the
    /// batch), then waits for all: one receipt or error per message, in order.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Vec<Result<Receipt>> {
        let handles = self.enqueue_batch(messages).await;
        let mut receipts = Vec::with_capacity(handles.len());
        for handle in handles {
            receipts.push(match handle {
                Ok(handle) => handle.await,
                Err(e) => Err(e),
            });
        }
        receipts
    }

    /// Queues messages in order, as `enqueue` each (waiting for buffer space,
    /// or failing fast), and returns their handles, or each one's error.
    ///
    /// Every message is checked first, as `enqueue` checks it (key, headers,
    /// id, schema, size): if one is refused, nothing of the batch is queued
    /// and every result is that refusal, its message naming the refused
    /// message's index. Waiting for room (or failing fast) comes after.
    pub async fn enqueue_batch(&self, messages: Vec<Message>) -> Vec<Result<SendHandle>> {
        let total = messages.len();
        match self.enqueue_chunk(messages, 0, total).await {
            Ok(handles) => handles,
            Err(refusal) => (0..total).map(|_| Err(refusal.clone())).collect(),
        }
    }

    /// [`Producer::enqueue_batch`] for messages `first..` of a batch of
    /// `total` that is queued in chunks, each after the one before (how the
    /// bindings queue a large batch without converting all of it first). A
    /// refusal is the error, nothing of the chunk queued; its message names
    /// the refused message's index in the whole batch and what was queued
    /// before its chunk.
    pub async fn enqueue_chunk(
        &self,
        messages: Vec<Message>,
        first: usize,
        total: usize,
    ) -> Result<Vec<Result<SendHandle>>> {
        let count = messages.len();
        let mut vetted = Vec::with_capacity(count);
        for (index, message) in messages.iter().enumerate() {
            match self.vet(message, false).await {
                Ok(v) => vetted.push(v),
                Err(e) => {
                    let index = first + index;
                    let e = match first {
                        0 => e.context(format_args!(
                            "message {index} of the batch of {total} was refused, so nothing \
                             of it was queued"
                        )),
                        _ => e.context(format_args!(
                            "message {index} of the batch of {total} was refused: messages 0 \
                             to {} were queued before it (they are sent), none from {first} on",
                            first - 1
                        )),
                    };
                    return Err(e);
                }
            }
        }
        let mut handles = Vec::with_capacity(count);
        for (message, vetted) in messages.into_iter().zip(vetted) {
            handles.push(match self.reserve(vetted.size).await {
                Ok(permit) => self.queue(message, vetted.admitted(permit)),
                Err(e) => Err(e),
            });
        }
        Ok(handles)
    }

    /// Queues a message (waiting for buffer space, or failing fast) and
    /// returns a handle that resolves once it is stored. Messages of one key
    /// are stored in the order `enqueue` was called.
    pub async fn enqueue(&self, message: Message) -> Result<SendHandle> {
        self.enqueue_as(message, false).await
    }

    /// Deletes `key` from a compacted station: sends a tombstone (an empty
    /// message with `Jst-Op: delete`), in order with the key's other
    /// messages. Consumers of the history receive it as a delete; the key
    /// leaves the state view at once (see [`crate::state`]).
    pub async fn delete(&self, key: impl Into<String>) -> Result<Receipt> {
        if !self.inner.compaction {
            return Err(Error::invalid(format!(
                "station {:?} has no state view to delete a key from: create it with compaction",
                self.inner.station
            )));
        }
        self.enqueue_as(Message::new(Bytes::new()).key(key), true)
            .await?
            .await
    }

    async fn enqueue_as(&self, message: Message, tombstone: bool) -> Result<SendHandle> {
        let admitted = self.admit(&message, tombstone).await?;
        self.queue(message, admitted)
    }

    /// Everything queueing `message` needs that may wait or refuse it: its
    /// partition, id and subject, jetstation's headers (schema, tombstone,
    /// trace context; the payload is validated against the schema), size
    /// checks and buffer space. The message is only borrowed, so a caller
    /// that cannot wait still has it.
    async fn admit(&self, message: &Message, tombstone: bool) -> Result<Admitted> {
        let vetted = self.vet(message, tombstone).await?;
        let permit = self.reserve(vetted.size).await?;
        Ok(vetted.admitted(permit))
    }

    /// Everything of admission but the buffer space: what may refuse the
    /// message (nothing here waits for room).
    async fn vet(&self, message: &Message, tombstone: bool) -> Result<Vetted> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::closed("producer"));
        }
        let (partition, msg_id) = self.prepare(message)?;
        let mut added: Vec<(String, String)> = Vec::new();
        if tombstone {
            added.push((headers::OP.into(), "delete".into()));
            added.push((
                headers::TTL.into(),
                format!("{}s", inner.tombstone_ttl.as_secs().max(1)),
            ));
        } else if let Some(binding) = &inner.schema {
            // Validated before anything is queued: a refused message costs
            // nothing and reaches nobody.
            let (compiled, version) = inner
                .client
                .compiled_schema(&binding.name, binding.version)
                .await?;
            compiled
                .validate(&message.payload)
                .map_err(|detail| schema_refusal(&binding.name, version, &detail))?;
            added.push((SCHEMA_HEADER.into(), binding.name.clone()));
            added.push((SCHEMA_VERSION_HEADER.into(), version.to_string()));
        }
        #[cfg(feature = "otel")]
        crate::telemetry::otel::create_span(
            &message.headers,
            &mut added,
            &inner.station,
            partition,
            &msg_id,
        );
        let key = message.key.as_deref();
        // Without compaction a partition has one subject: built once.
        let subject = match (key, inner.compaction) {
            (Some(key), true) => {
                async_nats::Subject::from(inner.client.inner.names.message_subject(
                    &inner.station,
                    partition,
                    Some(key),
                    true,
                ))
            }
            _ => inner.subjects[partition as usize].clone(),
        };
        let message_bytes = message.payload.len()
            + header_bytes(&msg_id, key, message.headers.iter().chain(&added));
        let size = message_bytes + subject.len() + BOOKKEEPING_BYTES;
        let max_payload = inner.max_payload;
        if message_bytes > max_payload {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "message of {message_bytes} bytes (with headers) exceeds the server's \
                     max_payload of {max_payload} bytes; split it, or store the data elsewhere \
                     and send a reference"
                ),
            ));
        }
        if size > inner.options.buffer_bytes {
            return Err(Error::invalid(format!(
                "message of {size} bytes is larger than the producer buffer ({} bytes); raise \
                 buffer_bytes",
                inner.options.buffer_bytes
            )));
        }
        Ok(Vetted {
            partition,
            msg_id,
            added,
            subject,
            size,
        })
    }

    /// Buffer space for a message of `size` bytes: waits for it, or fails
    /// fast, as the producer's `when_full` says.
    async fn reserve(&self, size: usize) -> Result<OwnedSemaphorePermit> {
        let inner = &self.inner;
        match inner.options.when_full {
            WhenFull::Wait => inner
                .buffer
                .clone()
                .acquire_many_owned(size as u32)
                .await
                .map_err(|_| Error::closed("producer")),
            WhenFull::FailFast => inner
                .buffer
                .clone()
                .try_acquire_many_owned(size as u32)
                .map_err(|_| {
                    Error::new(
                        ErrorKind::BufferFull,
                        format!(
                            "the producer buffer ({} bytes) is full: the broker is slow or \
                             unreachable; retry later, or use WhenFull::Wait to wait instead",
                            inner.options.buffer_bytes
                        ),
                    )
                }),
        }
    }

    /// Queues an admitted message: nothing here waits or refuses it, but for
    /// a producer stopped in between.
    fn queue(&self, message: Message, admitted: Admitted) -> Result<SendHandle> {
        let inner = &self.inner;
        let Message {
            payload,
            key,
            mut headers,
            msg_id: given_id,
        } = message;
        headers.extend(admitted.added);
        inner.outstanding.add();
        let ticket = Ticket {
            _permit: admitted.permit,
            outstanding: inner.outstanding.clone(),
        };
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            subject: admitted.subject,
            payload,
            msg_id: admitted.msg_id,
            generated_id: given_id.is_none(),
            key,
            headers,
            deadline: Instant::now() + inner.options.delivery_timeout,
            reply,
            _ticket: ticket,
        };
        inner.queues[admitted.partition as usize]
            .send(pending)
            .map_err(|_| Error::closed("producer"))?;
        Ok(SendHandle { rx })
    }

    /// The message's partition and id, once its key and headers are checked.
    fn prepare(&self, message: &Message) -> Result<(u32, String)> {
        let inner = &self.inner;
        let partition = match (&message.key, &message.msg_id) {
            (Some(key), _) => {
                validate_key(key)?;
                partition_of(key, inner.partitions)
            }
            // Dedup works per partition: a keyless message with its own id
            // goes where a retry of the same id will go.
            (None, Some(id)) => partition_of(id, inner.partitions),
            (None, None) => inner.round_robin.fetch_add(1, Ordering::Relaxed) % inner.partitions,
        };
        for (name, value) in &message.headers {
            check_header(name, value)?;
        }
        let msg_id = match &message.msg_id {
            Some(id) if id.is_empty() => {
                return Err(Error::invalid("msg_id must not be empty when given"));
            }
            // It travels as a header value: a line break would end the header.
            Some(id) if id.contains(['\r', '\n']) => {
                return Err(Error::invalid("msg_id must not contain a line break"));
            }
            Some(id) => id.clone(),
            None => {
                // `<producer id>-<n>`, built without the formatting machinery
                // (a measurable share of a message's cost in the bindings).
                let n = inner.next_seq.fetch_add(1, Ordering::Relaxed);
                let mut digits = itoa::Buffer::new();
                let n = digits.format(n);
                let mut id = String::with_capacity(inner.producer_id.len() + 1 + n.len());
                id.push_str(&inner.producer_id);
                id.push('-');
                id.push_str(n);
                id
            }
        };
        Ok((partition, msg_id))
    }

    /// Waits until every message queued so far is stored or has failed.
    pub async fn flush(&self) -> Result<()> {
        self.inner.outstanding.wait_idle().await;
        Ok(())
    }

    /// Flushes, then refuses further sends.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        self.flush().await
    }

    /// Messages queued or in flight right now.
    pub fn outstanding(&self) -> usize {
        self.inner.outstanding.get()
    }

    /// Buffer bytes held right now by queued and in-flight messages: each
    /// counts its payload, headers and subject, plus [`BOOKKEEPING_BYTES`].
    pub fn buffered_bytes(&self) -> usize {
        self.inner.options.buffer_bytes - self.inner.buffer.available_permits()
    }
}

/// What a queued message holds beyond its bytes on the wire, counted in the
/// buffer: its id, key and header list, reply channel, place in the partition
/// queue, and while in flight the header map and request. Measured with
/// payloads sharing one allocation (`make bench-consume`, 1,000,000 sends of
/// 256 B): about 0.85 KiB per queued message when each held a header map,
/// of which the wire bytes were about 340; since the headers are kept as
/// parts the producer peaks at 41 MiB with its 64 MiB buffer full, so this
/// count errs on the safe side.
pub const BOOKKEEPING_BYTES: usize = 512;

/// An application header: not reserved, and a name and value the wire
/// format can carry (a name of visible ASCII without ':', a value without
/// line breaks).
fn check_header(name: &str, value: &str) -> Result<()> {
    if headers::is_reserved(name) {
        return Err(Error::invalid(format!(
            "header {name:?} is reserved (names starting with Nats- or Jst- belong to the \
             broker and jetstation); rename it"
        )));
    }
    if name.is_empty()
        || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        || value.contains(['\r', '\n'])
    {
        return Err(Error::invalid(format!(
            "header {name:?} is malformed: names need visible ASCII characters without ':' or \
             spaces, values cannot contain line breaks"
        )));
    }
    Ok(())
}

/// The message's headers on the wire.
fn header_bytes<'a>(
    msg_id: &str,
    key: Option<&str>,
    others: impl Iterator<Item = &'a (String, String)>,
) -> usize {
    // "NATS/1.0\r\n" + "name: value\r\n" per header + "\r\n".
    let line = |name: &str, value: &str| name.len() + value.len() + 4;
    12 + line(headers::MSG_ID, msg_id)
        + key.map_or(0, |k| line(headers::KEY, k))
        + others.map(|(n, v)| line(n, v)).sum::<usize>()
}
