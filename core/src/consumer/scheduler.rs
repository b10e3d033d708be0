//! The heart of a consumer group member: one task that owns every piece of
//! state, driven by events (messages fetched, deliveries settled, dead
//! letters stored, broker info, close). No locks; nothing else mutates it.
//!
//! Per partition it keeps the delivered but uncommitted messages in stream
//! order (`entries`), and per key the queue of its messages (`keys`): only a
//! key's first message can run, so one key never runs twice at once and keys
//! keep stream order. A message finished (acked or dead-lettered) lets the
//! next one of its key run, and moves the commit point over the contiguous
//! prefix of finished messages (one `AckAll` for the last of them).
//!
//! # Committing only what this member knows
//! `AckAll` on sequence `s` acknowledges every pending message up to `s`, also
//! messages this member never saw (delivered to a member that died, or lost in
//! transit during a reconnect). So a partition only commits while it is *in
//! sync*: the broker's last delivery sequence equals the last one this member
//! received, and the broker's pending count equals this member's uncommitted
//! messages. That is checked with a consumer-info request when the member
//! starts a partition and whenever delivery sequences jump; until it holds,
//! nothing is committed (the broker redelivers what it is waiting for after
//! `ack_wait`, and the check is repeated).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use async_nats::{
    HeaderMap,
    jetstream::{self, AckKind, consumer::pull, message::PublishMessage},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    ConsumerOptions, Delivery, Ledger, Outcome, PIN_GROUP, ReceivedMessage,
    committer::Committer,
    membership::{Membership, assignment},
};
use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    headers,
    schema::{SCHEMA_HEADER, SCHEMA_VERSION_HEADER, SchemaBinding},
};

/// Identifies a delivery handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Token {
    partition: u32,
    sequence: u64,
}

// Events move once through a channel; boxing the common `Fetched` variant
// would add an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Event {
    Fetched {
        partition: u32,
        message: jetstream::Message,
        /// Why the message does not match its schema, if it does not.
        invalid: Option<String>,
    },
    Settled {
        token: Token,
        outcome: Outcome,
    },
    DeadLettered {
        token: Token,
        result: Result<()>,
    },
    RetryDeadLetter {
        token: Token,
    },
    Synced {
        partition: u32,
        info: Box<Result<jetstream::consumer::Info>>,
    },
    Members(Vec<String>),
    /// A partition's pull failed (and is being opened again).
    FetchFailed {
        partition: u32,
        error: String,
    },
    Health {
        reply: oneshot::Sender<Vec<PartitionHealth>>,
    },
    Close {
        done: oneshot::Sender<Result<()>>,
    },
}

pub(crate) struct PartitionHandle {
    pub(crate) partition: u32,
    pub(crate) stream: jetstream::stream::Stream<()>,
    pub(crate) consumer: jetstream::consumer::Consumer<pull::Config>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Behind an earlier message of its key.
    Waiting,
    /// May run; queued for the application.
    Runnable,
    /// Held by the application.
    InApp,
    /// Failed; the broker redelivers it after a delay.
    Nacked,
    /// Being copied to the dead-letter station.
    DeadLettering,
    /// Acked or dead-lettered; committed with the prefix.
    Done,
}

struct Entry {
    /// Shared with the delivery handed to the application and with commits.
    raw: Arc<jetstream::Message>,
    key: Option<String>,
    state: State,
    deliveries: u64,
    /// The broker's delivery (consumer) sequence of its latest delivery.
    delivery: u64,
    last_error: Option<String>,
    /// Schema mismatch: dead-lettered in its turn, never handed over.
    invalid: Option<String>,
}

struct Partition {
    handle: PartitionHandle,
    entries: BTreeMap<u64, Entry>,
    /// Held entries delivered again after later ones were fetched: only
    /// while there are some can a commit point fall short of the prefix.
    redelivered: BTreeSet<u64>,
    keys: HashMap<String, VecDeque<u64>>,
    /// Highest committed stream sequence.
    committed: u64,
    /// The same, for the pull loop (where a recreated durable starts).
    committed_shared: Arc<std::sync::atomic::AtomicU64>,
    last_delivery: u64,
    in_sync: bool,
    syncing: bool,
    last_sync: Option<Instant>,
    /// The broker's view from the last consumer-info answer, checked
    /// against what this member holds once it received that far.
    sync_point: Option<SyncPoint>,
    /// Delivery sequence of the latest gap in the deliveries received
    /// (something before it may be lost or held by another member).
    gap_at: u64,
    fetch: Option<JoinHandle<()>>,
    /// Assigned to this member: pulling it.
    owned: bool,
    /// No longer assigned: draining before handing it over.
    revoking: bool,
    /// Messages that may run, in the order they became runnable.
    runnable: VecDeque<u64>,
    /// When a message last arrived (or the partition was taken).
    last_activity: Instant,
    last_delivery_at: Option<SystemTime>,
    last_error: Option<String>,
    /// Messages the broker had not delivered yet at the last answer.
    broker_undelivered: u64,
    /// A silence already warned about (reset by the next message).
    warned_silent: bool,
}

/// How one partition of a member is doing (see [`super::Consumer::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionHealth {
    pub partition: u32,
    /// Assigned to this member.
    pub owned: bool,
    /// This member knows every message the broker counts as pending, so it
    /// runs and commits; false for a moment after a takeover or a pull
    /// failure.
    pub in_sync: bool,
    /// Delivered, not yet committed messages held here.
    pub held: usize,
    /// Messages the broker had not delivered yet, at its last answer.
    pub undelivered: u64,
    pub last_delivery: Option<SystemTime>,
    /// The latest pull failure, repaired since or not.
    pub last_error: Option<String>,
}

impl PartitionHealth {
    /// `last_delivery` as seconds since the Unix epoch (what bindings show).
    pub fn last_delivery_unix(&self) -> Option<f64> {
        self.last_delivery
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    }
}

pub(crate) struct Scheduler {
    client: Client,
    station: String,
    group: String,
    max_deliveries: u32,
    schema: Option<SchemaBinding>,
    options: ConsumerOptions,
    parts: Vec<Partition>,
    /// Partition to look at first next time (round robin).
    next_partition: usize,
    in_app: HashSet<Token>,
    ready: Option<mpsc::UnboundedSender<Delivery>>,
    events: mpsc::UnboundedSender<Event>,
    ledger: Arc<Ledger>,
    closing: Option<(oneshot::Sender<Result<()>>, Instant)>,
    membership: Membership,
    members: Vec<String>,
    committer: Committer,
}

const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for one consumer-info answer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);
/// How often, and how far apart, a release re-checks that the broker applied
/// every settlement before committing.
const RELEASE_SYNC_ATTEMPTS: u32 = 5;
const RELEASE_SYNC_PAUSE: Duration = Duration::from_millis(50);

impl Scheduler {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: Client,
        station: String,
        group: String,
        max_deliveries: u32,
        schema: Option<SchemaBinding>,
        options: ConsumerOptions,
        handles: Vec<PartitionHandle>,
        ready: mpsc::UnboundedSender<Delivery>,
        events: mpsc::UnboundedSender<Event>,
        ledger: Arc<Ledger>,
        membership: Membership,
        members: Vec<String>,
    ) -> Self {
        let parts = handles
            .into_iter()
            .map(|handle| Partition {
                handle,
                entries: BTreeMap::new(),
                redelivered: BTreeSet::new(),
                keys: HashMap::new(),
                committed: 0,
                committed_shared: Arc::default(),
                last_delivery: 0,
                in_sync: false,
                syncing: false,
                last_sync: None,
                sync_point: None,
                gap_at: 0,
                fetch: None,
                owned: false,
                revoking: false,
                runnable: VecDeque::new(),
                last_activity: Instant::now(),
                last_delivery_at: None,
                last_error: None,
                broker_undelivered: 0,
                warned_silent: false,
            })
            .collect();
        let committer = Committer::start(client.inner.js.client());
        Self {
            client,
            station,
            group,
            max_deliveries,
            schema,
            options,
            parts,
            next_partition: 0,
            in_app: HashSet::new(),
            ready: Some(ready),
            events,
            ledger,
            closing: None,
            membership,
            members,
            committer,
        }
    }

    pub(crate) async fn run(mut self, events: mpsc::UnboundedReceiver<Event>) {
        self.apply_members(self.members.clone());
        let heartbeat = {
            let membership = self.membership.clone();
            let events = self.events.clone();
            let every = self.options.handover_timeout / 4;
            tokio::spawn(async move {
                // Announcements in a row that reached the broker. While the
                // bucket is unavailable (its leader died) nobody can
                // announce; right after, the others' announcements look old
                // although they are alive. So the live set is only trusted
                // again once this member has announced three times in a row.
                let mut in_a_row = 1u32;
                loop {
                    // The heartbeat period: a member announces itself every handover_timeout / 4.
                    tokio::time::sleep(every).await;
                    if let Err(e) = membership.announce().await {
                        tracing::warn!(error = %e, "cannot announce group membership");
                        in_a_row = 0;
                        continue;
                    }
                    in_a_row += 1;
                    if in_a_row < 3 {
                        continue;
                    }
                    match membership.live().await {
                        Ok(members) => {
                            if events.send(Event::Members(members)).is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot read group members"),
                    }
                }
            })
        };
        self.serve(events).await;
        heartbeat.abort();
    }

    async fn serve(&mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let abandoned = async {
                match &self.ready {
                    Some(r) => r.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(e) => self.on_event(e),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
                _ = abandoned => {
                    // Every handle was dropped without close: stop like a
                    // crashed process would, committing nothing more.
                    tracing::debug!(station = %self.station, group = %self.group, "consumer dropped");
                    self.stop_fetching();
                    return;
                }
            }
            if self.close_ready() {
                self.finish_close().await;
                return;
            }
        }
    }

    fn start_fetch(&mut self, index: usize) {
        let part = &self.parts[index];
        // Pulls must be renewed well within the handover timeout, or the pin
        // (the partition) is lost between two pulls.
        let expires = (self.options.handover_timeout / 3)
            .clamp(Duration::from_millis(500), Duration::from_secs(30));
        let fetch = super::fetch::Fetch {
            partition: part.handle.partition,
            stream: part.handle.stream.clone(),
            consumer: part.handle.consumer.clone(),
            config: super::group_config(&self.group, &self.options),
            committed: part.committed_shared.clone(),
            batch: self.options.fetch_batch,
            expires,
            heartbeat: (expires / 4).max(Duration::from_millis(100)),
            validation: self.schema.clone().map(|b| (self.client.clone(), b)),
            events: self.events.clone(),
        };
        let part = &mut self.parts[index];
        part.last_activity = Instant::now();
        part.warned_silent = false;
        part.fetch = Some(tokio::spawn(fetch.run()));
    }

    /// Opens a partition's pull again (after a silence with messages waiting).
    fn restart_fetch(&mut self, index: usize) {
        if let Some(task) = self.parts[index].fetch.take() {
            task.abort();
        }
        self.parts[index].in_sync = false;
        self.start_fetch(index);
    }

    fn stop_fetching(&mut self) {
        for part in &mut self.parts {
            if let Some(task) = part.fetch.take() {
                task.abort();
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Fetched {
                partition,
                message,
                invalid,
            } => {
                self.on_fetched(partition, message, invalid);
                self.try_sync(partition as usize);
            }
            Event::Settled { token, outcome } => self.on_settled(token, outcome),
            Event::DeadLettered { token, result } => match result {
                Ok(()) => self.finish(token),
                Err(err) => {
                    tracing::warn!(
                        station = %self.station, partition = token.partition,
                        sequence = token.sequence, error = %err,
                        "cannot store dead letter; retrying in 1 s"
                    );
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        // Retry delay for a dead letter the broker did not store yet.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = events.send(Event::RetryDeadLetter { token });
                    });
                }
            },
            Event::RetryDeadLetter { token } => {
                let reason = self
                    .entry(token)
                    .and_then(|e| e.last_error.clone())
                    .unwrap_or_default();
                self.dead_letter(token, reason);
            }
            Event::Synced { partition, info } => self.on_synced(partition, *info),
            Event::FetchFailed { partition, error } => self.on_fetch_failed(partition, error),
            Event::Health { reply } => {
                let _ = reply.send(self.health());
            }
            Event::Members(members) => {
                if self.closing.is_none() {
                    self.apply_members(members);
                }
            }
            Event::Close { done } => {
                let deadline = Instant::now() + self.options.ack_wait;
                self.closing = Some((done, deadline));
                self.stop_fetching();
                // Closing the channel ends the application's iteration once it
                // has taken what is already queued for it.
                self.ready = None;
                for part in &mut self.parts {
                    part.runnable.clear();
                }
            }
        }
        for i in 0..self.parts.len() {
            if self.parts[i].revoking {
                self.check_revoked(i);
            }
        }
        self.dispatch();
    }

    fn entry(&mut self, token: Token) -> Option<&mut Entry> {
        self.parts
            .get_mut(token.partition as usize)?
            .entries
            .get_mut(&token.sequence)
    }

    fn on_fetched(&mut self, partition: u32, message: jetstream::Message, invalid: Option<String>) {
        if self.closing.is_some() {
            return;
        }
        let Ok(info) = message.info() else {
            return;
        };
        let (sequence, delivery, deliveries) = (
            info.stream_sequence,
            info.consumer_sequence,
            info.delivered.max(1) as u64,
        );
        let part = &mut self.parts[partition as usize];
        part.last_activity = Instant::now();
        part.last_delivery_at = Some(SystemTime::now());
        part.warned_silent = false;
        if !part.owned {
            // A late message of a partition being handed over: give it back.
            tokio::spawn(async move {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            });
            return;
        }
        if delivery != part.last_delivery + 1 {
            part.in_sync = false;
            part.gap_at = delivery;
        }
        part.last_delivery = part.last_delivery.max(delivery);
        if let Some(entry) = part.entries.get_mut(&sequence) {
            // A redelivery: the one awaited after a nack, or an ack-wait
            // expiry of a message that is waiting, running or finished here.
            entry.raw = Arc::new(message);
            entry.deliveries = deliveries;
            entry.delivery = delivery;
            part.redelivered.insert(sequence);
            if entry.state == State::Nacked {
                entry.state = State::Runnable;
                part.runnable.push_back(sequence);
            }
            return;
        }
        if sequence <= part.committed {
            // Committed here, but the broker forgot (a new consumer leader
            // that had not applied the commit): acknowledge it again, or it
            // would stay pending forever and keep the partition out of sync.
            // Not through the committer, whose latest-per-partition rule
            // would let this older commit replace a newer one.
            tokio::spawn(async move {
                let _ = message.ack_with(AckKind::Ack).await;
            });
            return;
        }
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::KEY))
            .map(|v| v.to_string());
        let mut state = State::Runnable;
        if let Some(k) = &key {
            // A key's queue is in stream order, whatever the arrival order
            // (redeliveries after a handover can arrive out of order).
            let queue = part.keys.entry(k.clone()).or_default();
            let mut pos = queue.partition_point(|s| *s < sequence);
            let head = queue.front().copied();
            if pos == 0
                && let Some(head) = head
            {
                match part.entries.get_mut(&head) {
                    Some(e) if e.state == State::Runnable => e.state = State::Waiting,
                    // The head already runs: never run two of a key at once.
                    Some(_) => pos = 1,
                    None => {}
                }
            }
            queue.insert(pos, sequence);
            if pos > 0 {
                state = State::Waiting;
            }
        }
        part.entries.insert(
            sequence,
            Entry {
                raw: Arc::new(message),
                key,
                state,
                deliveries,
                delivery,
                last_error: None,
                invalid,
            },
        );
        if state == State::Runnable {
            part.runnable.push_back(sequence);
        }
    }

    /// The next message that may run: round robin over the partitions this
    /// member owns and is in sync with (see the module doc: a partition
    /// whose pending messages are not all known here runs nothing, or a key
    /// could overtake its own message still held by a previous owner).
    fn next_runnable(&mut self) -> Option<Token> {
        let n = self.parts.len();
        for offset in 0..n {
            let index = (self.next_partition + offset) % n;
            let part = &mut self.parts[index];
            if !part.owned || !part.in_sync {
                continue;
            }
            while let Some(sequence) = part.runnable.pop_front() {
                if part
                    .entries
                    .get(&sequence)
                    .is_some_and(|e| e.state == State::Runnable)
                {
                    self.next_partition = (index + 1) % n;
                    return Some(Token {
                        partition: part.handle.partition,
                        sequence,
                    });
                }
            }
        }
        None
    }

    /// Hands runnable messages to the application, up to `concurrency`.
    fn dispatch(&mut self) {
        while self.in_app.len() < self.options.concurrency && self.closing.is_none() {
            let Some(token) = self.next_runnable() else {
                return;
            };
            let max = u64::from(self.max_deliveries);
            let Some(entry) = self
                .parts
                .get_mut(token.partition as usize)
                .and_then(|p| p.entries.get_mut(&token.sequence))
            else {
                continue;
            };
            if let Some(reason) = entry.invalid.clone() {
                self.dead_letter(token, reason);
                continue;
            }
            if entry.deliveries > max {
                // Delivered too often without being settled (ack-wait
                // expiries, crashes): do not run it again.
                let reason = entry.last_error.clone().unwrap_or_else(|| {
                    format!(
                        "not acknowledged after {} deliveries (ack_wait expired)",
                        entry.deliveries - 1
                    )
                });
                self.dead_letter(token, reason);
                continue;
            }
            entry.state = State::InApp;
            let delivery: Delivery = self.ledger.hand_out(
                token,
                entry.raw.clone(),
                received(&self.station, token, entry),
            );
            self.in_app.insert(token);
            if let Some(ready) = &self.ready {
                // If the application is gone, the delivery's drop reports it back.
                let _ = ready.send(delivery);
            }
        }
    }

    fn on_settled(&mut self, token: Token, outcome: Outcome) {
        if !self.in_app.remove(&token) {
            return;
        }
        let max = u64::from(self.max_deliveries);
        let options = self.options.clone();
        let closing = self.closing.is_some();
        let Some(entry) = self.entry(token) else {
            return;
        };
        match outcome {
            Outcome::Ack => self.finish(token),
            Outcome::Release if !closing => {
                // Handed out again first thing, still first in its key's line,
                // with its delivery count unchanged.
                entry.state = State::Runnable;
                self.parts[token.partition as usize]
                    .runnable
                    .push_front(token.sequence);
            }
            Outcome::Release => {
                entry.state = State::Nacked;
                let raw = entry.raw.clone();
                tokio::spawn(async move {
                    if let Err(e) = raw.ack_with(AckKind::Nak(Some(Duration::ZERO))).await {
                        tracing::debug!(error = %e, "nak not sent; ack_wait will redeliver");
                    }
                });
            }
            Outcome::Term { reason } => self.dead_letter(token, reason),
            Outcome::Nack { delay, reason } => {
                entry.last_error = Some(reason.clone());
                if entry.deliveries >= max && !closing {
                    self.dead_letter(token, reason);
                } else {
                    let delay = if closing {
                        Duration::ZERO
                    } else {
                        delay.unwrap_or_else(|| options.redelivery_after(entry.deliveries))
                    };
                    entry.state = State::Nacked;
                    let raw = entry.raw.clone();
                    tokio::spawn(async move {
                        if let Err(e) = raw.ack_with(AckKind::Nak(Some(delay))).await {
                            tracing::debug!(error = %e, "nak not sent; ack_wait will redeliver");
                        }
                    });
                }
            }
        }
    }

    /// The message is acked or dead-lettered: let its key move on and commit.
    fn finish(&mut self, token: Token) {
        let part = &mut self.parts[token.partition as usize];
        let Some(entry) = part.entries.get_mut(&token.sequence) else {
            return;
        };
        entry.state = State::Done;
        if let Some(key) = entry.key.clone()
            && let Some(queue) = part.keys.get_mut(&key)
        {
            queue.retain(|s| *s != token.sequence);
            match queue.front().copied() {
                Some(next) => {
                    if let Some(e) = part.entries.get_mut(&next)
                        && e.state == State::Waiting
                    {
                        e.state = State::Runnable;
                        part.runnable.push_back(next);
                    }
                }
                None => {
                    part.keys.remove(&key);
                }
            }
        }
        self.commit(token.partition as usize);
    }

    /// Acknowledges the contiguous prefix of finished messages, if in sync.
    fn commit(&mut self, index: usize) {
        let part = &mut self.parts[index];
        if !part.in_sync {
            self.request_sync(index);
            return;
        }
        let Some((sequence, last)) =
            pop_commit_prefix(&mut part.entries, Some(&mut part.redelivered))
        else {
            return;
        };
        part.committed = sequence;
        part.committed_shared
            .store(sequence, std::sync::atomic::Ordering::Release);
        self.committer.commit(part.handle.partition, last);
    }

    /// A partition that has been silent for `ack_wait` is asked where it
    /// stands; if the broker holds messages it did not deliver, the pull is
    /// dead in a way the pull loop did not notice (or `max_ack_pending` is
    /// full of messages held here): warn and pull again.
    fn watch_silences(&mut self) {
        let silence = self.options.ack_wait;
        for i in 0..self.parts.len() {
            let part = &self.parts[i];
            if !part.owned || part.revoking || part.last_activity.elapsed() < silence {
                continue;
            }
            // Only what the broker has not delivered counts: messages held
            // here may be silent for good reasons (a slow handler, a nacked
            // message waiting for its redelivery delay).
            if part.broker_undelivered > 0 {
                let partition = part.handle.partition;
                if !part.warned_silent {
                    tracing::warn!(
                        station = %self.station, group = %self.group, partition,
                        silent = ?part.last_activity.elapsed(),
                        undelivered = part.broker_undelivered,
                        held = part.entries.len(),
                        in_sync = part.in_sync,
                        "partition silent for longer than ack_wait with messages pending; pulling again"
                    );
                }
                self.parts[i].warned_silent = true;
                self.parts[i].broker_undelivered = 0;
                self.restart_fetch(i);
                self.force_sync(i);
            } else if self.parts[i]
                .last_sync
                .is_none_or(|t| t.elapsed() >= silence)
            {
                self.force_sync(i);
            }
        }
    }

    fn request_sync(&mut self, index: usize) {
        if self.parts[index].entries.is_empty() {
            return;
        }
        self.force_sync(index);
    }

    /// Asks the broker where the partition stands (at most every
    /// `SYNC_INTERVAL`), even when nothing is held here.
    fn force_sync(&mut self, index: usize) {
        let part = &mut self.parts[index];
        let due = part.last_sync.is_none_or(|t| t.elapsed() >= SYNC_INTERVAL);
        if part.syncing || !due {
            return;
        }
        part.syncing = true;
        part.last_sync = Some(Instant::now());
        let stream = part.handle.stream.clone();
        let group = self.group.clone();
        let partition = part.handle.partition;
        let events = self.events.clone();
        tokio::spawn(async move {
            // Bounded below the request timeout: during a consumer leader
            // election the question is better asked again soon.
            let info = match tokio::time::timeout(SYNC_TIMEOUT, stream.consumer_info(&group)).await
            {
                Ok(info) => info.map_err(|e| Error::from_nats("reading consumer info", &e)),
                Err(_) => Err(Error::new(ErrorKind::Timeout, "consumer info timed out")),
            };
            let _ = events.send(Event::Synced {
                partition,
                info: Box::new(info),
            });
        });
    }

    fn on_synced(&mut self, partition: u32, info: Result<jetstream::consumer::Info>) {
        let index = partition as usize;
        let part = &mut self.parts[index];
        part.syncing = false;
        let info = match info {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(partition, error = %e, "sync failed; retrying");
                return;
            }
        };
        // Another member committed these while this one was not the owner.
        let floor = info.ack_floor.stream_sequence;
        if floor > part.committed {
            let stale: Vec<u64> = part.entries.range(..=floor).map(|(s, _)| *s).collect();
            for s in stale {
                part.redelivered.remove(&s);
                if let Some(e) = part.entries.remove(&s)
                    && let Some(k) = e.key
                    && let Some(q) = part.keys.get_mut(&k)
                {
                    q.retain(|x| *x != s);
                    if q.is_empty() {
                        part.keys.remove(&k);
                    }
                }
            }
            part.committed = floor;
            part.committed_shared
                .store(floor, std::sync::atomic::Ordering::Release);
        }
        part.broker_undelivered = info.num_pending;
        if part.in_sync || part.entries.is_empty() && info.num_ack_pending == 0 {
            if !part.in_sync && part.owned && !part.revoking {
                // Nothing pending anywhere: trivially in sync.
                part.in_sync = true;
                part.last_delivery = info.delivered.consumer_sequence;
                part.gap_at = 0;
            }
            return;
        }
        part.sync_point = Some(SyncPoint {
            delivered: info.delivered.consumer_sequence,
            pending: info.num_ack_pending,
        });
        self.try_sync(index);
    }

    /// Checks the last sync point against what this member holds now; asks
    /// the broker again (at most every `SYNC_INTERVAL`) when it cannot hold.
    fn try_sync(&mut self, index: usize) {
        let part = &mut self.parts[index];
        if part.in_sync || part.revoking || !part.owned {
            return;
        }
        let Some(point) = part.sync_point else {
            self.request_sync(index);
            return;
        };
        let held = part.entries.values().map(|e| e.delivery);
        match sync_verdict(held, part.last_delivery, part.gap_at, point) {
            Verdict::InSync => {
                part.in_sync = true;
                part.sync_point = None;
                self.commit(index);
            }
            // Deliveries the broker counted are still on their way here.
            Verdict::Wait => {}
            Verdict::Stale => {
                tracing::trace!(
                    partition = part.handle.partition,
                    ?point,
                    received = part.last_delivery,
                    held = part.entries.len(),
                    "not in sync yet"
                );
                part.sync_point = None;
                self.request_sync(index);
            }
        }
    }

    fn on_fetch_failed(&mut self, partition: u32, error: String) {
        let index = partition as usize;
        let part = &mut self.parts[index];
        part.last_error = Some(error);
        if !part.owned {
            return;
        }
        // A new pull may come from a new consumer leader, whose delivery
        // sequences need not continue ours: learn where it stands again.
        part.in_sync = false;
        part.sync_point = None;
        part.last_delivery = 0;
        part.gap_at = 0;
        self.request_sync(index);
    }

    fn health(&self) -> Vec<PartitionHealth> {
        self.parts
            .iter()
            .map(|p| PartitionHealth {
                partition: p.handle.partition,
                owned: p.owned,
                in_sync: p.in_sync,
                held: p.entries.len(),
                undelivered: p.broker_undelivered,
                last_delivery: p.last_delivery_at,
                last_error: p.last_error.clone(),
            })
            .collect()
    }

    fn on_tick(&mut self) {
        for i in 0..self.parts.len() {
            let p = &self.parts[i];
            if !p.in_sync && !p.entries.is_empty() {
                self.request_sync(i);
            }
        }
        self.watch_silences();
        if let Some((_, deadline)) = &self.closing
            && Instant::now() >= *deadline
        {
            tracing::warn!(
                station = %self.station, group = %self.group,
                held = self.in_app.len(),
                "closing without waiting further for unsettled messages"
            );
            self.in_app.clear();
        }
    }

    /// Copies the message to the dead-letter station, then terminates it.
    fn dead_letter(&mut self, token: Token, reason: String) {
        let station = self.station.clone();
        let group = self.group.clone();
        let names = &self.client.inner.names;
        let subject = names.dead_letter_subject(&station);
        let origin_stream = names.partition_stream(&station, token.partition);
        let js = self.client.inner.js.clone();
        let events = self.events.clone();
        let Some(entry) = self.entry(token) else {
            return;
        };
        entry.state = State::DeadLettering;
        entry.last_error = Some(reason.clone());
        let raw = entry.raw.clone();
        let deliveries = entry.deliveries;
        tracing::info!(
            station = %station, partition = token.partition, sequence = token.sequence,
            deliveries, reason = %reason, "dead-lettering"
        );
        tokio::spawn(async move {
            let mut h = HeaderMap::new();
            if let Some(original) = &raw.headers {
                for (name, values) in original.iter() {
                    let name: &str = name.as_ref();
                    if name.eq_ignore_ascii_case(headers::MSG_ID) {
                        for v in values {
                            h.insert(headers::ORIGIN_MSG_ID, v.as_str());
                        }
                    } else if !name.to_ascii_lowercase().starts_with("nats-") {
                        for v in values {
                            h.append(name, v.as_str());
                        }
                    }
                }
            }
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            h.insert(
                headers::MSG_ID,
                format!("dl-{origin_stream}-{group}-{}", token.sequence).as_str(),
            );
            h.insert(headers::ORIGIN_STATION, station.as_str());
            h.insert(
                headers::ORIGIN_PARTITION,
                token.partition.to_string().as_str(),
            );
            h.insert(
                headers::ORIGIN_SEQUENCE,
                token.sequence.to_string().as_str(),
            );
            h.insert(headers::ORIGIN_GROUP, group.as_str());
            h.insert(headers::DELIVERIES, deliveries.to_string().as_str());
            h.insert(headers::LAST_ERROR, sanitize(&reason).as_str());
            h.insert(headers::DEAD_LETTERED_AT, now.as_str());
            let publish = PublishMessage::build()
                .payload(raw.payload.clone())
                .headers(h);
            // Stored, the message counts as finished and is committed with
            // its prefix. No `Term`: under AckPolicy::All a term acknowledges
            // every earlier message too, finished or not.
            let result = async {
                js.send_publish(subject, publish)
                    .await
                    .map_err(|e| Error::from_nats("storing a dead letter", &e))?
                    .await
                    .map_err(|e| Error::from_nats("storing a dead letter", &e))?;
                Ok(())
            }
            .await;
            let _ = events.send(Event::DeadLettered { token, result });
        });
    }

    fn close_ready(&self) -> bool {
        self.closing.is_some()
            && self.in_app.is_empty()
            && !self
                .parts
                .iter()
                .any(|p| p.entries.values().any(|e| e.state == State::DeadLettering))
    }

    /// Takes and gives away partitions after the live members changed.
    fn apply_members(&mut self, members: Vec<String>) {
        let me = self.membership.member().to_string();
        let owners = assignment(&members, self.parts.len() as u32);
        for (i, owner) in owners.into_iter().enumerate() {
            let partition = self.parts[i].handle.partition;
            let mine = members.get(owner) == Some(&me);
            let part = &mut self.parts[i];
            if mine && !part.owned && !part.revoking {
                tracing::debug!(station = %self.station, group = %self.group, partition, "taking partition");
                part.owned = true;
                self.start_fetch(i);
            } else if !mine && part.owned {
                tracing::debug!(station = %self.station, group = %self.group, partition, "handing partition over");
                part.owned = false;
                part.revoking = true;
                if let Some(task) = part.fetch.take() {
                    task.abort();
                }
                self.check_revoked(i);
            }
        }
        self.members = members;
    }

    /// Hands a revoked partition over once the application holds nothing of it.
    fn check_revoked(&mut self, index: usize) {
        let part = &self.parts[index];
        let busy = part
            .entries
            .values()
            .any(|e| matches!(e.state, State::InApp | State::DeadLettering));
        if part.revoking && !busy {
            let release = self.take_release(index);
            tokio::spawn(release.run());
        }
    }

    /// Detaches what a partition still holds, for [`Release::run`].
    fn take_release(&mut self, index: usize) -> Release {
        let part = &mut self.parts[index];
        part.revoking = false;
        part.in_sync = false;
        part.syncing = false;
        part.sync_point = None;
        part.keys.clear();
        part.runnable.clear();
        Release {
            committer: self.committer.clone(),
            stream: part.handle.stream.clone(),
            group: self.group.clone(),
            entries: {
                part.redelivered.clear();
                std::mem::take(&mut part.entries)
            },
            in_sync: std::mem::take(&mut part.in_sync),
            last_delivery: part.last_delivery,
        }
    }

    /// Final commit, quick handover of what is left, then unpin.
    async fn finish_close(&mut self) {
        let mut result = Ok(());
        for i in 0..self.parts.len() {
            let mut release = self.take_release(i);
            release.in_sync = self.parts[i].in_sync || release.in_sync;
            if let Err(e) = release.run().await {
                result = Err(e);
            }
        }
        self.membership.leave().await;
        if let Some((done, _)) = self.closing.take() {
            let _ = done.send(result);
        }
    }
}

/// What a member still holds of a partition it gives away.
struct Release {
    committer: Committer,
    stream: jetstream::stream::Stream<()>,
    group: String,
    entries: BTreeMap<u64, Entry>,
    in_sync: bool,
    last_delivery: u64,
}

impl Release {
    /// Commits the finished prefix (after a last sync check if needed),
    /// gives back the rest at once, and unpins so the next owner starts now.
    async fn run(mut self) -> Result<()> {
        let mut result = Ok(());
        // Commits decided before the release reach the broker first.
        self.committer.flush().await;
        // Settlements sent just before (a dead letter's term, a nak) may not
        // be applied by the broker yet: check a few times before giving up.
        let mut attempts = 0;
        while !self.in_sync && !self.entries.is_empty() && attempts < RELEASE_SYNC_ATTEMPTS {
            if attempts > 0 {
                // Waiting for the broker to apply acknowledgements in flight.
                tokio::time::sleep(RELEASE_SYNC_PAUSE).await;
            }
            attempts += 1;
            if let Ok(info) = self.stream.consumer_info(&self.group).await {
                let ours = self.entries.len();
                self.in_sync = info.delivered.consumer_sequence == self.last_delivery
                    && info.num_ack_pending == ours;
            }
        }
        if self.in_sync
            && let Some((_, last)) = pop_commit_prefix(&mut self.entries, None)
            && let Err(e) = last.double_ack().await
        {
            result = Err(Error::from_nats(
                "committing a released partition",
                e.as_ref(),
            ));
        }
        // Everything not committed goes back at once, finished or not: the
        // next owner gets it now instead of after ack_wait (at least once).
        for entry in self.entries.values() {
            let _ = entry.raw.ack_with(AckKind::Nak(None)).await;
        }
        if let Err(e) = self.stream.unpin_consumer(&self.group, PIN_GROUP).await {
            tracing::debug!(error = %e, "unpin failed; the pin expires by itself");
        }
        result
    }
}

/// What the broker said of a partition's group consumer at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SyncPoint {
    /// Last delivery (consumer) sequence it had sent.
    delivered: u64,
    /// Messages delivered and not yet acknowledged.
    pending: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Every message the broker counts as pending is held here.
    InSync,
    /// This member has not yet received everything the broker had sent.
    Wait,
    /// Something pending is not held here (lost in transit, or delivered to
    /// a previous owner), or a gap opened since: ask again later.
    Stale,
}

/// Whether a member knows every message the broker counted as pending at
/// `point`. `held`: the latest delivery sequence of each message it holds;
/// `last_delivery`: the highest delivery it received; `gap_at`: where the
/// latest gap in its deliveries was.
///
/// Messages keep arriving while the broker's answer travels, so the check
/// does not need the member to be exactly where the broker was: once it
/// received at least up to `point.delivered` without a gap after it, the
/// messages pending at that moment are exactly those it holds with a
/// delivery sequence up to `point.delivered` (nothing is committed while out
/// of sync, and a message redelivered since counts as missing, which only
/// delays the verdict). Later deliveries are covered by the gap check that
/// runs on every delivery.
fn sync_verdict(
    held: impl Iterator<Item = u64>,
    last_delivery: u64,
    gap_at: u64,
    point: SyncPoint,
) -> Verdict {
    if last_delivery < point.delivered {
        return Verdict::Wait;
    }
    if gap_at > point.delivered {
        return Verdict::Stale;
    }
    if held.filter(|d| *d <= point.delivered).count() == point.pending {
        Verdict::InSync
    } else {
        Verdict::Stale
    }
}

/// Removes the longest committable part of the finished prefix; returns its
/// last sequence and the message whose acknowledgement commits it.
///
/// With `AckPolicy::All` the broker ignores an acknowledgement whose delivery
/// sequence is not above the last acknowledged one. A message redelivered
/// after a nack has a higher delivery sequence than later messages fetched
/// before the redelivery; committing it first would leave those impossible to
/// acknowledge (and, uncommitted, redelivered after `ack_wait`). So the commit
/// point is the last finished message whose delivery sequence is below that
/// of every message held after it; the rest waits for a later commit.
///
/// `redelivered` (the partition's redelivered entries, `None` when unknown):
/// when it is empty, delivery sequences grow with stream sequences and the
/// whole finished prefix is committed without a scan.
fn pop_commit_prefix(
    entries: &mut BTreeMap<u64, Entry>,
    redelivered: Option<&mut BTreeSet<u64>>,
) -> Option<(u64, Arc<jetstream::Message>)> {
    let fast = redelivered.as_ref().is_some_and(|r| r.is_empty());
    let point = if fast {
        let mut last = None;
        for (sequence, e) in entries.iter() {
            if e.state != State::Done {
                break;
            }
            last = Some(*sequence);
        }
        last?
    } else {
        let done = entries
            .values()
            .take_while(|e| e.state == State::Done)
            .count();
        if done == 0 {
            return None;
        }
        // Iterator skip (not a skipped test): the smallest delivery sequence
        // among the entries after the finished prefix.
        let mut later_min = entries
            .values()
            .skip(done)
            .map(|e| e.delivery)
            .min()
            .unwrap_or(u64::MAX);
        let prefix: Vec<(u64, u64)> = entries
            .iter()
            .take(done)
            .map(|(s, e)| (*s, e.delivery))
            .collect();
        let mut point = None;
        for &(sequence, delivery) in prefix.iter().rev() {
            if delivery < later_min {
                point = Some(sequence);
                break;
            }
            later_min = later_min.min(delivery);
        }
        point?
    };
    if let Some(r) = redelivered {
        r.retain(|s| *s > point);
    }
    let mut last = None;
    while let Some(entry) = entries.first_entry() {
        if *entry.key() > point {
            break;
        }
        let (sequence, entry) = entry.remove_entry();
        last = Some((sequence, entry.raw));
    }
    last
}

fn received(station: &str, token: Token, entry: &Entry) -> ReceivedMessage {
    let mut headers = Vec::new();
    let mut msg_id = None;
    if let Some(h) = &entry.raw.headers {
        for (name, values) in h.iter() {
            let name: &str = name.as_ref();
            if name.eq_ignore_ascii_case(crate::headers::PIN_ID) {
                continue; // belongs to this delivery, not to the stored message
            }
            for v in values {
                if name.eq_ignore_ascii_case(crate::headers::MSG_ID) {
                    msg_id = Some(v.to_string());
                }
                headers.push((name.to_string(), v.to_string()));
            }
        }
    }
    // The broker's header map has no order: sort by name (values of one name
    // keep theirs) so every delivery, in every language, lists them alike.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    ReceivedMessage {
        station: station.to_string(),
        partition: token.partition,
        sequence: token.sequence,
        key: entry.key.clone(),
        payload: entry.raw.payload.clone(),
        headers,
        msg_id,
        deliveries: entry.deliveries,
    }
}

/// Header values cannot hold line breaks; keep them readable and bounded.
fn sanitize(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    flat.chars().take(1024).collect()
}

/// Validates a fetched message against the schema its headers name (or the
/// station's binding, for messages from foreign producers). Returns why it
/// does not match.
pub(crate) async fn check_schema(
    client: &Client,
    binding: &SchemaBinding,
    message: &jetstream::Message,
) -> Option<String> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.to_string())
    };
    let name = header(SCHEMA_HEADER).unwrap_or_else(|| binding.name.clone());
    let version = header(SCHEMA_VERSION_HEADER)
        .and_then(|v| v.parse().ok())
        .or(binding.version);
    loop {
        match client.compiled_schema(&name, version).await {
            Ok((compiled, version)) => {
                return compiled.validate(&message.payload).err().map(|detail| {
                    format!("schema validation failed: schema {name:?} version {version}: {detail}")
                });
            }
            // Definitive: the schema or version does not exist, or is broken.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
                return Some(format!("schema validation failed: {}", e.message()));
            }
            // The registry is unreachable for now: the message waits.
            Err(e) => {
                tracing::warn!(error = %e, "cannot load schema; retrying");
                // Retry delay while the registry is unreachable; the message waits meanwhile.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SyncPoint, Verdict, sync_verdict};

    fn point(delivered: u64, pending: usize) -> SyncPoint {
        SyncPoint { delivered, pending }
    }

    #[test]
    fn in_sync_while_messages_keep_arriving() {
        // The broker had sent 1..=10, all pending; the member has received
        // up to 14 by the time the answer is read.
        let held = 1..=14;
        assert_eq!(sync_verdict(held, 14, 0, point(10, 10)), Verdict::InSync);
    }

    #[test]
    fn exactly_where_the_broker_was() {
        assert_eq!(sync_verdict(1..=10, 10, 0, point(10, 10)), Verdict::InSync);
    }

    #[test]
    fn waits_for_deliveries_still_on_their_way() {
        assert_eq!(sync_verdict(1..=7, 7, 0, point(10, 10)), Verdict::Wait);
    }

    #[test]
    fn a_pending_message_held_elsewhere_is_missing() {
        // After a takeover: deliveries 1..=4 went to the previous owner and
        // are still pending; this member saw 5..=12 (a gap at 5).
        let held = 5..=12;
        assert_eq!(sync_verdict(held, 12, 5, point(10, 10)), Verdict::Stale);
        // Once they are redelivered here (13..=16), a later answer holds.
        assert_eq!(sync_verdict(5..=16, 16, 5, point(16, 12)), Verdict::InSync);
    }

    #[test]
    fn a_gap_after_the_answer_is_not_trusted() {
        // Delivery 12 was lost in transit: 13 arrived after 11.
        let held = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13];
        assert_eq!(
            sync_verdict(held.into_iter(), 13, 13, point(10, 10)),
            Verdict::Stale
        );
    }

    #[test]
    fn a_redelivery_since_the_answer_only_delays() {
        // Message delivered as 3 was redelivered as 11 after the answer: it
        // no longer counts below the point, so the verdict waits for a new one.
        let held = [1, 2, 11, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(
            sync_verdict(held.into_iter(), 11, 0, point(10, 10)),
            Verdict::Stale
        );
    }
}
