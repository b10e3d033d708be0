//! Consumer groups: shared, per-key ordered processing with ordered
//! acknowledgements and dead letters.
//!
//! A group is a durable pull consumer on every partition stream of a station.
//! Members (any number of [`Consumer`]s, in any processes, with the same group
//! name) share the partitions: each partition consumer uses JetStream's
//! *pinned client* priority policy, so the server delivers a partition to one
//! member at a time and moves it to another when that member stops pulling for
//! [`ConsumerOptions::handover_timeout`] (or closes, which hands over at once).
//!
//! Inside a member, [`scheduler`] hands messages to the application:
//! - at most [`ConsumerOptions::concurrency`] at once, never two of one key,
//!   each key in stream order (a key's next message waits until the previous
//!   one is acknowledged or dead-lettered);
//! - acknowledgements are committed in stream order per partition: the
//!   consumer uses `AckPolicy::All` and acknowledges only the last message of
//!   the contiguous prefix of finished messages, so the broker's ack floor never
//!   passes an unfinished message and a crash redelivers a contiguous tail;
//! - a failed message is redelivered by the broker after a growing delay; after
//!   `max_deliveries` (a station setting) it is copied to the station's
//!   dead-letter stream with headers naming its origin, then committed like an
//!   acknowledged message (never terminated: under `AckPolicy::All` a `Term`
//!   acknowledges every earlier message too, finished or not);
//! - the broker ignores an acknowledgement whose delivery sequence is not above
//!   the last acknowledged one, so a redelivered message is never committed
//!   ahead of messages fetched before its redelivery (see the scheduler).
//!
//! Two styles: `next()` (an async iterator of [`Delivery`], settled with
//! `ack`, `nack`, `term`, `in_progress`) and [`Consumer::consume`] (a handler
//! whose `Ok` acks and whose `Err` nacks).

mod book;
mod committer;
mod delivery;
mod exactly_once;
mod fence;
mod fetch;
mod handover;
mod inbox;
pub(crate) mod membership;
mod progress;
mod reset;
pub(crate) mod scheduler;
mod snapshot;
mod sync;

pub use delivery::{
    DEFAULT_NACK_REASON, DEFAULT_TERM_REASON, Delivery, DeliveryId, ReceivedMessage, Settlement,
};
pub(crate) use delivery::{Ledger, Outcome};
pub use scheduler::PartitionHealth;

use std::{fmt, future::Future, panic::AssertUnwindSafe, sync::Arc, task::Poll, time::Duration};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PriorityPolicy, pull};
use futures::Stream;
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument;

use crate::{
    client::Client,
    error::{Error, Result},
    names::validate_name,
    station::unknown_station,
};

/// Name of the priority group every member pulls with.
pub(crate) const PIN_GROUP: &str = "jst";

/// The id of the pull the broker pins a group's partition to, as a consumer
/// info answer tells (`None`: no pull is pinned).
pub(crate) fn pinned(info: &async_nats::jetstream::consumer::Info) -> Option<&str> {
    info.priority_groups
        .iter()
        .find(|g| g.group == PIN_GROUP)
        .and_then(|g| g.pinned_client_id.as_deref())
}

/// Where a new group starts. An existing group continues where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// From the first stored message (replays the whole history).
    #[default]
    Earliest,
    /// Only messages stored from now on.
    Latest,
    /// From this sequence in every partition.
    Sequence(u64),
    /// From the first message stored at or after this time.
    Time(OffsetDateTime),
    /// The latest message of every key first (the station's state view),
    /// then the history from where that snapshot ended, per partition, with
    /// no gap and no duplicate. Needs a station with compaction.
    Snapshot,
}

impl StartPosition {
    /// The named positions (`StartPosition::from_str` also takes a sequence
    /// number and an RFC 3339 time).
    pub const NAMES: &'static [&'static str] = &["earliest", "latest", "snapshot"];
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::Snapshot => f.write_str("snapshot"),
            Self::Sequence(s) => write!(f, "{s}"),
            Self::Time(t) => f.write_str(
                &t.format(&time::format_description::well_known::Rfc3339)
                    .map_err(|_| fmt::Error)?,
            ),
        }
    }
}

impl std::str::FromStr for StartPosition {
    type Err = Error;
    /// `"earliest"`, `"latest"`, `"snapshot"`, a sequence (`"42"`) or an RFC 3339 time
    /// (`"2026-11-30T09:00:00Z"`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "earliest" => return Ok(Self::Earliest),
            "latest" => return Ok(Self::Latest),
            "snapshot" => return Ok(Self::Snapshot),
            _ => {}
        }
        if let Ok(seq) = s.parse::<u64>() {
            return Self::sequence(seq);
        }
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(Self::Time)
            .map_err(|_| {
                Error::invalid(format!(
                    "unknown start {s:?}; use earliest, latest, snapshot, a sequence (1 or more) or an \
                     RFC 3339 time such as 2026-11-30T09:00:00Z"
                ))
            })
    }
}

impl StartPosition {
    /// From sequence `seq` (1 is the first message ever stored).
    pub fn sequence(seq: u64) -> Result<Self> {
        if seq == 0 {
            return Err(Error::invalid("a start sequence is 1 or more"));
        }
        Ok(Self::Sequence(seq))
    }

    /// From a POSIX time in seconds (what bindings hold).
    pub fn unix_seconds(seconds: f64) -> Result<Self> {
        if !seconds.is_finite() {
            return Err(Error::invalid(format!(
                "start time {seconds} is not a time"
            )));
        }
        OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128)
            .map(Self::Time)
            .map_err(|e| Error::invalid(format!("start time out of range: {e}")))
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Messages processed at once by this member (never two of one key).
    pub concurrency: usize,
    pub start: StartPosition,
    /// A message not settled within this time is redelivered.
    pub ack_wait: Duration,
    /// Delivered but uncommitted messages per partition before the broker
    /// pauses delivery (bounds the member's memory).
    pub max_ack_pending: usize,
    /// Delay before the first redelivery of a nacked message; doubles with
    /// every further delivery up to `max_redelivery_delay`.
    pub redelivery_delay: Duration,
    pub max_redelivery_delay: Duration,
    /// Messages asked for in one pull.
    pub fetch_batch: usize,
    /// A member that stops pulling for this long loses its partitions.
    pub handover_timeout: Duration,
    /// Record every handled message in the group's record before its
    /// acknowledgement, and skip a redelivered message found there (see
    /// [`exactly_once`](self::exactly_once) for what is promised).
    pub exactly_once: bool,
    /// How long the record of a partition outlives its last write (a
    /// redelivery later than this after the partition's last handled message
    /// runs the handler again).
    pub exactly_once_retention: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            start: StartPosition::Earliest,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4096,
            redelivery_delay: Duration::from_secs(1),
            max_redelivery_delay: Duration::from_secs(60),
            fetch_batch: 256,
            handover_timeout: Duration::from_secs(10),
            exactly_once: false,
            exactly_once_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl ConsumerOptions {
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    pub fn start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }
    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d;
        self
    }
    pub fn max_ack_pending(mut self, n: usize) -> Self {
        self.max_ack_pending = n;
        self
    }
    pub fn redelivery_delay(mut self, first: Duration, max: Duration) -> Self {
        self.redelivery_delay = first;
        self.max_redelivery_delay = max;
        self
    }
    pub fn fetch_batch(mut self, n: usize) -> Self {
        self.fetch_batch = n;
        self
    }
    pub fn handover_timeout(mut self, d: Duration) -> Self {
        self.handover_timeout = d;
        self
    }

    pub fn exactly_once(mut self, on: bool) -> Self {
        self.exactly_once = on;
        self
    }
    pub fn exactly_once_retention(mut self, d: Duration) -> Self {
        self.exactly_once_retention = d;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.concurrency == 0 || self.fetch_batch == 0 || self.max_ack_pending == 0 {
            return Err(Error::invalid(
                "concurrency, fetch_batch and max_ack_pending must be at least 1",
            ));
        }
        if self.ack_wait < Duration::from_millis(500) {
            return Err(Error::invalid("ack_wait must be at least 500 ms"));
        }
        if self.handover_timeout < Duration::from_secs(1) {
            return Err(Error::invalid("handover_timeout must be at least 1 s"));
        }
        if self.exactly_once_retention < self.ack_wait {
            return Err(Error::invalid(
                "exactly_once_retention must be at least ack_wait (a record must outlive a \
                 redelivery)",
            ));
        }
        Ok(())
    }
}

/// One member of a consumer group. Cheap to clone; clones share the member.
#[derive(Debug, Clone)]
pub struct Consumer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    station: String,
    group: Arc<str>,
    ready: Mutex<inbox::Inbox>,
    events: mpsc::UnboundedSender<scheduler::Event>,
    ledger: Arc<Ledger>,
    lag: Arc<crate::telemetry::Lag>,
}

impl Client {
    /// Joins (creating if needed) consumer group `group` of `station`.
    #[tracing::instrument(skip(self, options), fields(station, group))]
    pub async fn consumer(
        &self,
        station: &str,
        group: &str,
        options: ConsumerOptions,
    ) -> Result<Consumer> {
        self.ensure_open()?;
        validate_name("station", station)?;
        validate_name("group", group)?;
        options.validate()?;
        let config = self
            .read_station_config(station)
            .await?
            .ok_or_else(|| unknown_station(station))?;
        if options.start == StartPosition::Snapshot && !config.compaction {
            return Err(Error::invalid(format!(
                "start=snapshot needs a station with compaction; station {station:?} keeps no \
                 state view"
            )));
        }
        let names = &self.inner.names;
        let mut partitions = Vec::new();
        for p in 0..config.partitions {
            let stream_name = names.partition_stream(station, p);
            let stream = self
                .inner
                .js
                .get_stream_no_info(&stream_name)
                .await
                .map_err(|e| Error::from_nats(&format!("opening {stream_name}"), &e))?;
            // `snapshot::open` looks for the group's consumers itself.
            let existing = match options.start {
                StartPosition::Snapshot => None,
                _ => stream.get_consumer::<pull::Config>(group).await.ok(),
            };
            let snapshot = options.start == StartPosition::Snapshot
                || (existing.is_none()
                    && config.compaction
                    && snapshot::in_progress(self, station, p, group).await?);
            if snapshot {
                partitions.push(
                    match snapshot::open(self, station, p, group, &options, &stream).await? {
                        snapshot::Lane::Follow(consumer) => scheduler::PartitionHandle {
                            partition: p,
                            stream,
                            consumer,
                            phase: None,
                        },
                        snapshot::Lane::Snapshot {
                            state_stream,
                            consumer,
                            phase,
                        } => scheduler::PartitionHandle {
                            partition: p,
                            stream: state_stream,
                            consumer,
                            phase: Some(phase),
                        },
                    },
                );
                continue;
            }
            let consumer = match existing {
                Some(c) => c,
                None => stream
                    .create_consumer(group_config(group, &options))
                    .await
                    .map_err(|e| {
                        Error::from_nats(&format!("creating group {group:?} on {stream_name}"), &e)
                    })?,
            };
            partitions.push(scheduler::PartitionHandle {
                partition: p,
                stream,
                consumer,
                phase: None,
            });
        }
        let records = match options.exactly_once {
            true => Some(Arc::new(
                exactly_once::Records::open(
                    self,
                    station,
                    group,
                    config.storage,
                    config.replicas,
                    options.exactly_once_retention,
                )
                .await?,
            )),
            false => None,
        };
        let membership =
            membership::Membership::join(self, station, group, options.handover_timeout).await?;
        let members = membership.live().await?;
        let fence = Arc::new(fence::Fence::new(options.handover_timeout));
        let (outlet, inbox) = inbox::channel(fence.clone());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let ledger = Ledger::new(events_tx.clone(), fence.clone());
        let lag = Arc::new(crate::telemetry::Lag::new(config.partitions as usize));
        #[cfg(feature = "otel")]
        crate::telemetry::otel::observe_lag(&lag, station, group);
        let sched = scheduler::Scheduler::new(
            self.clone(),
            station.to_string(),
            group.to_string(),
            config.max_deliveries,
            config.schema.clone(),
            options,
            partitions,
            outlet,
            events_tx.clone(),
            ledger.clone(),
            membership,
            members,
            records,
            lag.clone(),
            fence,
        );
        tokio::spawn(sched.run(events_rx));
        Ok(Consumer {
            shared: Arc::new(Shared {
                station: station.to_string(),
                group: group.into(),
                ready: Mutex::new(inbox),
                events: events_tx,
                ledger,
                lag,
            }),
        })
    }

    /// Deletes consumer group `group` of `station` (its position is lost).
    pub async fn delete_group(&self, station: &str, group: &str) -> Result<()> {
        self.ensure_open()?;
        validate_name("group", group)?;
        let config = self
            .read_station_config(station)
            .await?
            .ok_or_else(|| unknown_station(station))?;
        for p in 0..config.partitions {
            let stream = self.inner.names.partition_stream(station, p);
            if let Err(e) = self
                .inner
                .js
                .delete_consumer_from_stream(group, &stream)
                .await
            {
                let err = Error::from_nats(&format!("deleting group {group:?}"), &e);
                if err.kind() != crate::ErrorKind::NotFound {
                    return Err(err);
                }
            }
            if config.compaction {
                // A snapshot lane the group had not finished.
                let state = self.inner.names.state_stream(station, p);
                let _ = self
                    .inner
                    .js
                    .delete_consumer_from_stream(group, &state)
                    .await;
            }
        }
        exactly_once::delete(self, station, group).await;
        Ok(())
    }
}

pub(crate) fn group_config(group: &str, options: &ConsumerOptions) -> pull::Config {
    pull::Config {
        durable_name: Some(group.to_string()),
        description: Some(format!("jetstation consumer group {group:?}")),
        ack_policy: AckPolicy::All,
        ack_wait: options.ack_wait,
        // Redeliveries and dead letters are decided by the scheduler.
        max_deliver: -1,
        max_ack_pending: options.max_ack_pending as i64,
        deliver_policy: match options.start {
            StartPosition::Earliest | StartPosition::Snapshot => DeliverPolicy::All,
            StartPosition::Latest => DeliverPolicy::New,
            StartPosition::Sequence(s) => DeliverPolicy::ByStartSequence { start_sequence: s },
            StartPosition::Time(t) => DeliverPolicy::ByStartTime { start_time: t },
        },
        priority_policy: PriorityPolicy::PinnedClient,
        priority_groups: vec![PIN_GROUP.to_string()],
        priority_timeout: options.handover_timeout,
        ..Default::default()
    }
}

impl Consumer {
    pub fn station(&self) -> &str {
        &self.shared.station
    }

    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// The next message, or `None` once the consumer is closed.
    ///
    /// After a stall of the member's process (longer than a third of the
    /// handover timeout) nothing is handed out until the member has asked
    /// the broker which partitions are still its own, and nothing of a
    /// partition given up meanwhile. Code that runs a delivery later, on
    /// another task, thread or event loop, asks [`Delivery::claim`] right
    /// before: the process may have stopped in between.
    pub async fn next(&self) -> Option<Result<Delivery>> {
        self.shared.ready.lock().await.next().await.map(Ok)
    }

    /// The messages as a `Stream` (ends when the consumer is closed).
    pub fn messages(&self) -> impl Stream<Item = Result<Delivery>> + Send + 'static {
        let this = self.clone();
        futures::stream::unfold(this, |c| async move { c.next().await.map(|d| (d, c)) })
    }

    /// Runs `handler` on every message until the consumer is closed, up to
    /// `concurrency` at once: `Ok` acks, `Err` nacks (redelivery with a
    /// growing delay, then dead letter), a panic counts as an `Err`.
    ///
    /// A handler runs on this call's task until it first waits; from there
    /// it goes on as a task of its own. Work that computes for long without
    /// awaiting belongs in `tokio::task::spawn_blocking`, as anywhere in async
    /// code.
    pub async fn consume<F, Fut, E>(&self, handler: F) -> Result<()>
    where
        F: Fn(ReceivedMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        let handler = Arc::new(handler);
        let mut tasks = tokio::task::JoinSet::new();
        // Taken once for the whole run: this call is the application's reader.
        let mut inbox = self.shared.ready.lock().await;
        while let Some(delivery) = inbox.next().await {
            let mut work = Box::pin(handle(handler.clone(), delivery, self.shared.group.clone()));
            // The handler runs here up to its first pending await: one that
            // finishes without waiting (most do little more than a write to
            // memory) costs no task and no thread hand-over. What waits goes
            // on as a task of its own, so up to `concurrency` handlers wait
            // at once. A panic counts as an `Err` either way: dropping the
            // unfinished work drops its delivery, which nacks it.
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| {
                    work.as_mut().poll(cx)
                })))
            })
            .await;
            if let Ok(Poll::Pending) = first {
                tasks.spawn(work);
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Settles a delivery by its id (see [`Delivery::detach`]); a second
    /// settle of one id is refused with `InvalidArgument`.
    pub fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<()> {
        self.shared.ledger.settle(id, settlement.into())
    }

    /// [`Delivery::in_progress`] by id.
    pub async fn in_progress(&self, id: DeliveryId) -> Result<()> {
        self.shared.ledger.in_progress(id)?.await
    }

    /// How each partition of this member is doing: owned or not, in sync,
    /// messages held, the broker's undelivered count, the last delivery and
    /// the last pull failure. A member repairs a failed pull by itself; this
    /// shows it happening.
    pub async fn health(&self) -> Result<Vec<PartitionHealth>> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .events
            .send(scheduler::Event::Health { reply })
            .map_err(|_| Error::closed("consumer"))?;
        answer.await.map_err(|_| Error::closed("consumer"))
    }

    /// Messages of this member's partitions that the broker has not
    /// delivered yet, as of its last message or answer (the lag gauge).
    pub fn lag(&self) -> u64 {
        self.shared.lag.total()
    }

    /// Stops fetching, waits for the application to settle what it holds,
    /// commits, and hands the partitions over to the other members.
    pub async fn close(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        if self
            .shared
            .events
            .send(scheduler::Event::Close { done })
            .is_err()
        {
            return Ok(());
        }
        // Deliveries queued for an application that stopped reading go back
        // to the group (dropping one while closing releases it, no penalty).
        if let Ok(mut ready) = self.shared.ready.try_lock() {
            ready.clear();
        }
        wait.await.unwrap_or(Ok(()))
    }
}

/// Runs `handler` on one delivery and settles it by the outcome.
async fn handle<F, Fut, E>(handler: Arc<F>, mut delivery: Delivery, group: Arc<str>)
where
    F: Fn(ReceivedMessage) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>>,
    E: fmt::Display,
{
    #[cfg(feature = "otel")]
    let (span, started) = (
        crate::telemetry::otel::process_span(&delivery, &group),
        std::time::Instant::now(),
    );
    #[cfg(not(feature = "otel"))]
    let span = tracing::debug_span!(
        "process",
        station = %delivery.station,
        group = %group,
        partition = delivery.partition,
        sequence = delivery.sequence,
        deliveries = delivery.deliveries
    );
    #[cfg(feature = "otel")]
    let (station, partition) = (delivery.station.clone(), delivery.partition);
    let outcome = handler(delivery.take_message()).instrument(span).await;
    #[cfg(feature = "otel")]
    crate::telemetry::otel::processed(
        &station,
        partition,
        &group,
        started.elapsed(),
        outcome.is_err(),
    );
    // An error here means the delivery is settled already (by its id, from
    // inside the handler, or by closing): the first settlement stands.
    let _ = match outcome {
        Ok(()) => delivery.ack(),
        Err(e) => delivery.nack_with_reason(e.to_string(), None),
    };
}
