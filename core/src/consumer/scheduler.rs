//! The I/O driver of a consumer group member: one task that owns every
//! piece of state, driven by events (messages fetched, deliveries settled,
//! dead letters stored, broker info, membership, close). No locks; nothing
//! else mutates it. What is held, what may run and what may be committed is
//! decided by the pure [`super::book::Machine`]; this module carries its
//! decisions out (hand-outs, naks, dead letters, commits) and keeps what
//! needs the broker: pulls, sync checks and partition ownership.
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
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{
    FutureExt, StreamExt,
    stream::{AbortHandle, Abortable, SelectAll},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    ConsumerOptions, Delivery, Ledger, Outcome, ReceivedMessage,
    book::{Action, Admitted, Entry, Machine, RedeliveryDelays, Token},
    committer::Committer,
    exactly_once::{Lane, Recorder, Records},
    fence::Fence,
    fetch::{Open, Pull, Pulled},
    handover::Release,
    inbox::Outlet,
    membership::{Live, Membership, assignment},
    snapshot::{self, Phase},
    sync::{SyncPoint, Verdict, sync_verdict},
};
use crate::{
    client::Client,
    elections::Election,
    error::{Error, ErrorKind, Result},
    headers,
    schema::SchemaBinding,
    telemetry::Lag,
};

// Every event is moved into and out of the scheduler's channel, whose
// blocks hold the largest variant: the per-message variants stay a few words
// (a fetched message comes as the `Arc` the book keeps anyway), and the rare
// large ones are boxed.
pub(crate) enum Event {
    /// A partition's pull is open (no schema bound): the scheduler reads it.
    Opened {
        partition: u32,
        generation: u64,
        pull: Box<Pull>,
    },
    Fetched {
        partition: u32,
        message: Arc<jetstream::Message>,
        /// Why the message does not match its schema, if it does not.
        invalid: Option<String>,
    },
    Settled {
        token: Token,
        outcome: Outcome,
    },
    /// Exactly once: an acknowledged message is in the group's record.
    Recorded {
        token: Token,
    },
    /// Exactly once: whether a redelivered message is in the record.
    Looked {
        token: Token,
        found: bool,
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
    Members(Box<Live>),
    /// A partition's snapshot lane is over: its follow consumer.
    SnapshotOver {
        partition: u32,
        follow: Box<Result<jetstream::consumer::Consumer<pull::Config>>>,
    },
    /// A partition's durable consumer was lost and created again.
    Recreated {
        partition: u32,
    },
    /// A partition's consumer was reset to its commit point (see
    /// [`Scheduler::check_lost`]), or the reset failed.
    Reset {
        partition: u32,
        /// What the consumer's metadata now says was delivered before.
        delivered_through: Option<u64>,
        error: Option<String>,
    },
    /// After a stall: the pin the broker holds for a partition's consumer
    /// (`Err`: no answer), for the check of round `round`.
    Pinned {
        partition: u32,
        round: u64,
        pin: std::result::Result<Option<String>, ()>,
    },
    /// A partition's pull missed its idle heartbeats (`doubted`), and the
    /// broker was asked whether it still pins the pull; cleared when it
    /// does (otherwise `FetchFailed` follows). Nothing of the partition is
    /// handed out meanwhile: the member may be cut off from the broker,
    /// whose pin would then move to another member a handover timeout after
    /// the pull's last request.
    Doubted {
        partition: u32,
        generation: u64,
        doubted: bool,
    },
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
    /// Reading the snapshot first: `stream` is the partition's state stream
    /// and `consumer` the snapshot lane (see [`super::snapshot`]).
    pub(crate) phase: Option<Phase>,
}

struct Partition {
    handle: PartitionHandle,
    /// The configuration of the durable consumer pulled now.
    config: pull::Config,
    /// The snapshot lane is over; the follow consumer is being set up.
    switching: bool,
    /// Exactly once: the durable was created again, so a first delivery may
    /// have been handled already; every message is looked up.
    look_up_all: bool,
    /// The highest committed stream sequence, for the pull loop (where a
    /// recreated durable starts).
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
    /// Counts the starts of the fetch task (see [`super::fetch::Fetch`]).
    generation: u64,
    /// The pull this scheduler reads for the fetch task, and where its
    /// failure goes.
    pull: Option<(AbortHandle, oneshot::Sender<super::fetch::Ended>)>,
    /// Assigned to this member: pulling it.
    owned: bool,
    /// No longer assigned: draining before handing it over.
    revoking: bool,
    /// When a message last arrived (or the partition was taken).
    last_activity: Instant,
    /// When a message last arrived (the wall-clock time is worked out when
    /// asked: one clock reading per message, not two).
    last_delivery_at: Option<Instant>,
    last_error: Option<String>,
    /// Messages the broker had not delivered yet at the last answer.
    broker_undelivered: u64,
    /// A silence already warned about (reset by the next message).
    warned_silent: bool,
    /// A commit decided in this round, sent at its end.
    commit_due: bool,
    /// This member was in sync since it took the partition, so every
    /// message the broker counts as pending was delivered to it: a pending
    /// message it does not hold was lost on the way.
    sole_reader: bool,
    /// The broker's time of the member list that gave this member the
    /// partition (see [`Live::at`]).
    taken_at: Option<time::OffsetDateTime>,
    /// Whatever the broker counts as delivered and this member does not
    /// hold can only be held by a member that has left the group: every
    /// other live member announced, since this one took the partition, that
    /// it holds nothing of it (see [`Live::holds`]).
    holder_gone: bool,
    /// No other pull has been served since this member took the partition:
    /// the broker delivered to this member (it holds the partition's pin),
    /// or an answer of the broker showed no pin at all (whoever held it
    /// stopped pulling for the handover timeout, and nobody pulled since
    /// with something to deliver: with everything delivered to a member
    /// that was killed, the broker serves the new owner nothing).
    served_only_here: bool,
    /// Since when every answer of the broker showed pending messages this
    /// member does not hold (see `check_lost`).
    lost_since: Option<Instant>,
    /// The broker's last delivery sequence at an answer, and when it was
    /// first seen there.
    still_since: Option<(u64, Instant)>,
    /// The consumer is being reset.
    resetting: bool,
    /// Every message at or below this stream sequence was delivered before
    /// a reset of the consumer (see [`super::reset`]).
    delivered_through: u64,
    /// A reset failed: none is tried again before this.
    reset_after: Option<Instant>,
    /// New leaders of the consumer pulled now: a question about it that
    /// waits then goes to the new leader (see [`crate::elections`]).
    election: Election,
    /// The pin id the partition's latest message came with, kept by its
    /// pulls (see [`super::fence`]).
    pin: Arc<std::sync::Mutex<Option<String>>>,
    /// The pull missed its heartbeats, and the broker has not yet said that
    /// it still pins it (see [`Event::Doubted`]).
    doubted: bool,
}

impl Partition {
    /// Forgets where the broker's deliveries stood: out of sync until the
    /// broker is asked again.
    fn forget_sync(&mut self) {
        self.in_sync = false;
        self.syncing = false;
        self.sync_point = None;
        self.last_delivery = 0;
        self.gap_at = 0;
    }

    /// Stops the fetch task and the pull read for it.
    fn stop_fetch(&mut self) {
        if let Some(task) = self.fetch.take() {
            task.abort();
        }
        if let Some((abort, _)) = self.pull.take() {
            abort.abort();
        }
    }
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
    schema: Option<SchemaBinding>,
    options: ConsumerOptions,
    parts: Vec<Partition>,
    /// The open pulls read here (see [`super::fetch`]).
    pulls: SelectAll<Abortable<Open>>,
    /// What is held, what may run, what may be committed.
    machine: Machine<Arc<jetstream::Message>>,
    /// The application's deliveries, a round's worth per send (see
    /// [`Self::send_outbox`]).
    ready: Option<Outlet>,
    /// What this round handed out, sent at its end.
    outbox: Vec<Delivery>,
    events: mpsc::UnboundedSender<Event>,
    ledger: Arc<Ledger>,
    closing: Option<(oneshot::Sender<Result<()>>, Instant)>,
    membership: Membership,
    /// The live members as last read.
    live: Live,
    /// The partitions this member last said it may hold deliveries of.
    holds: Vec<u32>,
    committer: Committer,
    /// Exactly once: the task that writes and reads the group's record of
    /// handled messages.
    recorder: Option<Recorder>,
    /// Closed after a stall until the partitions' pins are checked (see
    /// [`super::fence`]).
    fence: Arc<Fence>,
    /// The check after a stall: its number, and the partitions whose pin
    /// it still waits for.
    pin_check: (u64, Vec<u32>),
    /// When to look next for held messages to keep with the broker (see
    /// [`Self::keep_held`]).
    next_keep: Instant,
    /// Telemetry: the names every sample shares, and the broker's
    /// undelivered count per partition.
    station_name: Arc<str>,
    group_name: Arc<str>,
    lag: Arc<Lag>,
}

const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Most events and pulled messages taken into one round after the first.
const BURST: usize = 64;
/// How often an idle snapshot lane asks whether it is over.
const LANE_CHECK: Duration = Duration::from_millis(300);
/// Longest wait for one consumer-info answer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the broker must stand still, counting pending messages a sole
/// reader does not hold and sending nothing, before they count as lost.
const LOSS_QUIET: Duration = Duration::from_secs(1);
/// Longest wait for the broker's answer about a partition's pin after a
/// stall; no answer gives the partition up.
const PIN_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait before trying a reset again whose record could not be written (the
/// metadata layer may be electing a leader, which the client is not told).
const RECORD_RETRY: Duration = Duration::from_millis(500);

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
        ready: Outlet,
        events: mpsc::UnboundedSender<Event>,
        ledger: Arc<Ledger>,
        membership: Membership,
        live: Live,
        records: Option<Arc<Records>>,
        lag: Arc<Lag>,
        fence: Arc<Fence>,
    ) -> Self {
        let parts = handles
            .into_iter()
            .map(|handle| Partition {
                config: match &handle.phase {
                    Some(phase) => phase.config.clone(),
                    None => super::group_config(&group, &options),
                },
                switching: false,
                look_up_all: false,
                handle,
                committed_shared: Arc::default(),
                last_delivery: 0,
                in_sync: false,
                syncing: false,
                last_sync: None,
                sync_point: None,
                gap_at: 0,
                fetch: None,
                generation: 0,
                pull: None,
                owned: false,
                revoking: false,
                last_activity: Instant::now(),
                last_delivery_at: None,
                last_error: None,
                broker_undelivered: 0,
                warned_silent: false,
                commit_due: false,
                sole_reader: false,
                taken_at: None,
                holder_gone: false,
                served_only_here: false,
                lost_since: None,
                still_since: None,
                resetting: false,
                delivered_through: 0,
                reset_after: None,
                election: Election::never(),
                pin: Arc::default(),
                doubted: false,
            })
            .collect::<Vec<_>>();
        let machine = Machine::new(
            parts.len(),
            options.concurrency,
            max_deliveries,
            RedeliveryDelays {
                first: options.redelivery_delay,
                max: options.max_redelivery_delay,
            },
        );
        // Exactly once: a commit waits for the broker's confirmation.
        let committer = Committer::start(client.inner.js.client(), records.is_some());
        let recorder = records.as_ref().map(|r| r.recorder(events.clone()));
        Self {
            client,
            station_name: station.as_str().into(),
            group_name: group.as_str().into(),
            lag,
            fence,
            pin_check: (0, Vec::new()),
            next_keep: Instant::now(),
            station,
            group,
            schema,
            options,
            parts,
            pulls: SelectAll::new(),
            machine,
            ready: Some(ready),
            outbox: Vec::new(),
            events,
            ledger,
            closing: None,
            membership,
            live,
            holds: Vec::new(),
            committer,
            recorder,
        }
    }

    pub(crate) async fn run(mut self, events: mpsc::UnboundedReceiver<Event>) {
        self.fence.beat();
        self.apply_members(self.live.clone());
        // The first announcement after this one names what was just taken.
        self.publish_holds();
        let heartbeat = {
            let membership = self.membership.clone();
            let events = self.events.clone();
            let fence = self.fence.clone();
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
                    if !fence.open() {
                        // Back from a stall: the scheduler asks the broker
                        // whether the partitions moved meanwhile, and the
                        // announcement waits for that verdict, which says
                        // whether this member stands by (see `give_up`).
                        let verdict = fence.until_open(|| events.is_closed());
                        let _ = tokio::time::timeout(PIN_CHECK_TIMEOUT + every, verdict).await;
                    }
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
                            if events.send(Event::Members(Box::new(members))).is_err() {
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
            let ready = &self.ready;
            let abandoned = async move {
                match ready {
                    Some(r) => r.closed().await,
                    None => std::future::pending().await,
                }
            };
            let pulling = !self.pulls.is_empty();
            let pulls = &mut self.pulls;
            tokio::select! {
                event = events.recv() => match event {
                    Some(e) => {
                        self.woke();
                        self.on_event(e);
                        self.take_burst(&mut events);
                    }
                    None => break,
                },
                Some(pulled) = pulls.next(), if pulling => {
                    self.woke();
                    self.on_pulled(pulled);
                    self.take_burst(&mut events);
                }
                _ = tick.tick() => {
                    self.woke();
                    self.on_tick();
                }
                _ = abandoned => {
                    // Every handle was dropped without close: stop like a
                    // crashed process would, committing nothing more.
                    tracing::debug!(station = %self.station, group = %self.group, "consumer dropped");
                    self.stop_fetching();
                    return;
                }
            }
            self.end_round();
            if self.close_ready() {
                self.finish_close().await;
                return;
            }
        }
    }

    /// Takes what else is already there (events and pulled messages, up to
    /// [`BURST`]) into the same round, so that the round's commits, checks
    /// and hand-outs are done once for all of them (see [`Self::end_round`]).
    fn take_burst(&mut self, events: &mut mpsc::UnboundedReceiver<Event>) {
        for _ in 0..BURST {
            let mut took = false;
            if let Ok(e) = events.try_recv() {
                self.on_event(e);
                took = true;
            }
            // Polled without a waker of its own: the next `select!` polls
            // the pulls again before the task can sleep.
            if let Some(Some(pulled)) = self.pulls.next().now_or_never() {
                self.on_pulled(pulled);
                took = true;
            }
            if !took {
                return;
            }
        }
    }

    /// What a round of events leads to, done once per round: the commits
    /// its events made due (one acknowledgement per partition for all of
    /// them), the check of partitions being handed over, and the hand-out of
    /// what may run now.
    fn end_round(&mut self) {
        for i in 0..self.parts.len() {
            if std::mem::take(&mut self.parts[i].commit_due) {
                self.commit_now(i);
            }
        }
        for i in 0..self.parts.len() {
            if self.parts[i].revoking {
                self.check_revoked(i);
            }
        }
        self.dispatch();
        self.send_outbox();
        self.publish_holds();
    }

    /// Keeps what the next membership announcement says this member may hold
    /// deliveries of: owned partitions, those being handed over, and any
    /// with messages in hand (see [`Live::holds`]).
    fn publish_holds(&mut self) {
        let books = &self.machine.books;
        let holds = self
            .parts
            .iter()
            .zip(books)
            .filter(|(part, book)| part.owned || part.revoking || !book.is_empty())
            .map(|(part, _)| part.handle.partition);
        if !holds.clone().eq(self.holds.iter().copied()) {
            self.holds = holds.collect();
            self.membership.set_holds(self.holds.iter().copied());
        }
    }

    /// Gives the application what this round handed out, in one send: one
    /// wake of the application's task per round instead of one per message
    /// (on a multi-threaded runtime each wake of a sleeping thread is a
    /// system call).
    fn send_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        if let Some(ready) = &self.ready {
            let round = std::mem::replace(&mut self.outbox, ready.empty());
            ready.send(round);
        }
    }

    fn start_fetch(&mut self, index: usize) {
        self.spawn_fetch(index, false);
    }

    /// Starts the partition's fetch task; `unpin_first`: it clears the
    /// consumer's pin before its first pull.
    fn spawn_fetch(&mut self, index: usize, unpin_first: bool) {
        // A reset that ends after the partition was given up and taken
        // again starts a pull too: one task per partition.
        self.parts[index].stop_fetch();
        self.parts[index].generation += 1;
        self.parts[index].doubted = false;
        let part = &self.parts[index];
        // Pulls must be renewed well within the handover timeout, or the pin
        // (the partition) is lost between two pulls.
        let expires = (self.options.handover_timeout / 3)
            .clamp(Duration::from_millis(500), Duration::from_secs(30));
        let election = self.client.inner.elections.consumer(
            &part.handle.consumer.cached_info().stream_name,
            part.config.durable_name.as_deref().unwrap_or_default(),
        );
        let fetch = super::fetch::Fetch {
            partition: part.handle.partition,
            stream: part.handle.stream.clone(),
            consumer: part.handle.consumer.clone(),
            config: part.config.clone(),
            phase: part.handle.phase.clone(),
            committed: part.committed_shared.clone(),
            generation: part.generation,
            unpin_first,
            batch: self.options.fetch_batch,
            expires,
            heartbeat: (expires / 4).max(Duration::from_millis(100)),
            validation: self.schema.clone().map(|b| (self.client.clone(), b)),
            client: self.client.clone(),
            election: election.clone(),
            events: self.events.clone(),
            pin: part.pin.clone(),
        };
        let part = &mut self.parts[index];
        part.election = election;
        part.last_activity = Instant::now();
        part.warned_silent = false;
        part.fetch = Some(tokio::spawn(fetch.run()));
    }

    /// Opens a partition's pull again (after a silence with messages
    /// waiting), unpinning first: the broker may still pin the pull this
    /// drops, and would hold the new one back until that pin expired.
    fn restart_fetch(&mut self, index: usize) {
        self.parts[index].stop_fetch();
        self.parts[index].in_sync = false;
        self.spawn_fetch(index, true);
    }

    fn stop_fetching(&mut self) {
        for part in &mut self.parts {
            part.stop_fetch();
        }
    }

    /// A fetch task gave its open pull to read here.
    fn on_opened(&mut self, partition: u32, generation: u64, pull: Pull) {
        let part = &mut self.parts[partition as usize];
        if part.fetch.is_none() || part.generation != generation {
            return; // from a task stopped since: dropping it closes the pull
        }
        let (open, abort) = futures::stream::abortable(Open::new(partition, pull.reading));
        part.pull = Some((abort, pull.ended));
        self.pulls.push(open);
    }

    /// A message or the end of a pull read here.
    fn on_pulled(&mut self, (partition, item): Pulled) {
        match item {
            Ok(message) => self.on_event(Event::Fetched {
                partition,
                message: Arc::new(message),
                invalid: None,
            }),
            Err(ended) => {
                // The pull is over (`Open` ends after this item): the fetch
                // task reads it on or opens the partition's pull again.
                if let Some((_, to_fetch)) = self.parts[partition as usize].pull.take() {
                    let _ = to_fetch.send(ended);
                }
            }
        }
    }

    /// A round starts. After a stall (see [`super::fence`]) nothing is
    /// handed out until every owned partition's pin is checked.
    fn woke(&mut self) {
        if self.fence.beat() {
            self.check_pins();
        }
    }

    /// Asks the broker who holds the pin of every partition this member
    /// owns (from its read of the pull, not its snapshot lane, which has no
    /// pin); the answers come as `Pinned` events.
    fn check_pins(&mut self) {
        let round = self.pin_check.0 + 1;
        let owned: Vec<u32> = self
            .parts
            .iter()
            .filter(|p| p.owned && p.handle.phase.is_none())
            .map(|p| p.handle.partition)
            .collect();
        tracing::warn!(
            station = %self.station, group = %self.group, partitions = ?owned,
            "this member stalled for longer than a third of the handover timeout; \
             checking its partitions' pins before handing anything out"
        );
        for &partition in &owned {
            let part = &self.parts[partition as usize];
            let stream = part.handle.stream.clone();
            let name = part.config.durable_name.clone().unwrap_or_default();
            let events = self.events.clone();
            tokio::spawn(async move {
                let asked = stream.consumer_info(&name);
                let pin = match tokio::time::timeout(PIN_CHECK_TIMEOUT, asked).await {
                    Ok(Ok(info)) => Ok(super::pinned(&info).map(str::to_owned)),
                    _ => Err(()),
                };
                let _ = events.send(Event::Pinned {
                    partition,
                    round,
                    pin,
                });
            });
        }
        self.pin_check = (round, owned);
        if self.pin_check.1.is_empty() {
            self.fence.checked();
        }
    }

    /// The broker's pin of a partition after a stall: the partition goes on
    /// if it is still the one its messages came with (nobody else was
    /// served since), or when it holds nothing and never read anything
    /// here; otherwise it is given up.
    fn on_pinned(
        &mut self,
        partition: u32,
        round: u64,
        pin: std::result::Result<Option<String>, ()>,
    ) {
        if round != self.pin_check.0 || !self.pin_check.1.contains(&partition) {
            return;
        }
        self.pin_check.1.retain(|p| *p != partition);
        let index = partition as usize;
        let part = &self.parts[index];
        let seen = part.pin.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let kept = match (&pin, seen) {
            (Ok(Some(current)), Some(seen)) => *current == seen,
            (Ok(_), None) => self.machine.books[index].is_empty(),
            _ => false,
        };
        if part.owned && !kept {
            tracing::warn!(
                station = %self.station, group = %self.group, partition,
                held = self.machine.books[index].len(),
                "the partition's pin moved while this member stalled (or the broker did not say); \
                 giving up what it holds, which another member runs"
            );
            self.give_up(index);
        }
        if self.pin_check.1.is_empty() {
            // The announcement that waited for this verdict names what this
            // member still holds.
            self.publish_holds();
            self.fence.checked();
        }
    }

    /// Lets go of a partition after a stall without settling anything of it:
    /// its messages are another member's now, or the broker's to deliver
    /// again. Taken again like a new partition when the member list says
    /// so, after this member stood by for [`Self::standby`].
    ///
    /// The member that took the partition could not commit what it ran
    /// meanwhile while the broker counted deliveries to this one as pending
    /// (an acknowledgement of later messages would acknowledge those too);
    /// a partition taken back at once left it nothing to do but give its
    /// finished work back, to run again here. Standing by, this member
    /// announces that it holds none of it, and the new owner resets the
    /// partition's consumer and commits (see `check_lost`).
    fn give_up(&mut self, index: usize) {
        self.membership.stand_by(self.standby());
        let part = &mut self.parts[index];
        part.stop_fetch();
        part.owned = false;
        part.revoking = false;
        part.forget_sync();
        part.sole_reader = false;
        part.taken_at = None;
        part.holder_gone = false;
        part.served_only_here = false;
        part.lost_since = None;
        part.still_since = None;
        part.commit_due = false;
        *part.pin.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.lag.set(part.handle.partition, 0);
        self.machine.give_up(part.handle.partition);
        self.ledger.give_up(part.handle.partition);
        self.fence.give_up();
    }

    /// How long a member that gave partitions up after a stall stays out of
    /// the assignment: the new owner reads that it holds nothing (an
    /// announcement interval), waits [`LOSS_QUIET`] before it resets, and
    /// gets what it had not committed again; as much again as a margin.
    fn standby(&self) -> Duration {
        2 * (self.options.handover_timeout / 4 + LOSS_QUIET)
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Opened {
                partition,
                generation,
                pull,
            } => self.on_opened(partition, generation, *pull),
            Event::Fetched {
                partition,
                message,
                invalid,
            } => {
                self.on_fetched(partition, message, invalid);
                self.try_sync(partition as usize);
            }
            Event::Settled { token, outcome } => {
                if self.recorder.is_some() && matches!(outcome, Outcome::Ack) {
                    if self.machine.start_recording(token) {
                        self.record(token);
                    }
                } else {
                    let actions = self.machine.settle(token, outcome);
                    self.carry_out(actions);
                }
            }
            Event::Recorded { token } => {
                let actions = self.machine.settle(token, Outcome::Ack);
                self.carry_out(actions);
            }
            Event::Looked { token, found } => match found {
                true => {
                    // Handled before: committed without running again.
                    tracing::debug!(
                        partition = token.partition,
                        sequence = token.sequence,
                        "redelivery of a handled message skipped"
                    );
                    let actions = self.machine.settle(token, Outcome::Ack);
                    self.carry_out(actions);
                }
                false => self.hand_out(token),
            },
            Event::DeadLettered { token, result } => match result {
                Ok(()) => {
                    let actions = self.machine.dead_lettered(token);
                    self.carry_out(actions);
                }
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
                    .machine
                    .book(token.partition)
                    .entry(token.sequence)
                    .and_then(|e| e.last_error.clone())
                    .unwrap_or_default();
                let actions = self.machine.dead_letter(token, reason);
                self.carry_out(actions);
            }
            Event::Synced { partition, info } => self.on_synced(partition, *info),
            Event::FetchFailed { partition, error } => self.on_fetch_failed(partition, error),
            Event::Doubted {
                partition,
                generation,
                doubted,
            } => {
                let part = &mut self.parts[partition as usize];
                if part.generation == generation {
                    part.doubted = doubted;
                }
            }
            Event::Pinned {
                partition,
                round,
                pin,
            } => self.on_pinned(partition, round, pin),
            Event::SnapshotOver { partition, follow } => self.on_snapshot_over(partition, *follow),
            Event::Recreated { partition } => self.parts[partition as usize].look_up_all = true,
            Event::Reset {
                partition,
                delivered_through,
                error,
            } => self.on_reset(partition, delivered_through, error),
            Event::Health { reply } => {
                let _ = reply.send(self.health());
            }
            Event::Members(members) => {
                if self.closing.is_none() {
                    self.apply_members(*members);
                }
            }
            Event::Close { done } => {
                let deadline = Instant::now() + self.options.ack_wait;
                self.closing = Some((done, deadline));
                self.stop_fetching();
                // Closing the channel ends the application's iteration once it
                // has taken what is already queued for it.
                self.send_outbox();
                self.ready = None;
                self.machine.close();
            }
        }
    }

    fn on_fetched(
        &mut self,
        partition: u32,
        message: Arc<jetstream::Message>,
        invalid: Option<String>,
    ) {
        if self.closing.is_some() {
            return;
        }
        let Ok(info) = message.info() else {
            return;
        };
        let (sequence, delivery, mut deliveries) = (
            info.stream_sequence,
            info.consumer_sequence,
            info.delivered.max(1) as u64,
        );
        let part = &mut self.parts[partition as usize];
        if sequence <= part.delivered_through {
            // Delivered before a reset, which made the broker count from 1.
            deliveries = deliveries.max(2);
        }
        let now = Instant::now();
        part.last_activity = now;
        part.last_delivery_at = Some(now);
        if part.owned {
            self.lag.set(part.handle.partition, info.pending);
        }
        part.warned_silent = false;
        part.served_only_here |= part.owned;
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
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::KEY_NAME.clone()))
            .map(|v| v.to_string());
        // A snapshot lane hands out the latest message of each key up to its
        // bound; the rest is committed unseen.
        let unseen = part.handle.phase.as_ref().is_some_and(|phase| {
            sequence > phase.bound
                || key.is_none()
                || crate::state::is_tombstone(message.headers.as_ref())
        });
        let book = self.machine.book(partition);
        let admitted = book.admit(sequence, delivery, deliveries, key, invalid, message);
        if unseen && matches!(admitted, Admitted::Held) {
            book.finish(sequence);
            self.commit(partition as usize);
        }
        if let Admitted::Committed(message) = admitted {
            // Committed here, but the broker forgot (a new consumer leader
            // that had not applied the commit): acknowledge it again, or it
            // would stay pending forever and keep the partition out of sync.
            // Not through the committer, whose latest-per-partition rule
            // would let this older commit replace a newer one.
            tokio::spawn(async move {
                let _ = message.ack_with(AckKind::Ack).await;
            });
        }
    }

    /// Hands runnable messages to the application (round robin over the
    /// partitions this member owns and is in sync with: a partition whose
    /// pending messages are not all known here runs nothing, or a key could
    /// overtake its own message still held by a previous owner).
    fn dispatch(&mut self) {
        if self.fence.checking() {
            return;
        }
        let parts = &self.parts;
        let actions = self.machine.dispatch(|p| {
            let part = &parts[p as usize];
            part.owned && part.in_sync && !part.doubted
        });
        self.carry_out(actions);
    }

    /// Carries out what the machine decided.
    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Deliver(token) => {
                    let Some(entry) = self.machine.book(token.partition).entry(token.sequence)
                    else {
                        continue;
                    };
                    if self.recorder.is_some()
                        && (entry.deliveries > 1
                            || self.parts[token.partition as usize].look_up_all)
                    {
                        // Exactly once: a redelivery may have been handled.
                        self.look_up(token);
                        continue;
                    }
                    self.hand_out(token);
                }
                Action::Nak { token, delay } => {
                    let Some(entry) = self.machine.book(token.partition).entry(token.sequence)
                    else {
                        continue;
                    };
                    let raw = entry.raw.clone();
                    tokio::spawn(async move {
                        if let Err(e) = raw.ack_with(AckKind::Nak(Some(delay))).await {
                            tracing::debug!(error = %e, "nak not sent; ack_wait will redeliver");
                        }
                    });
                }
                Action::DeadLetter {
                    token,
                    reason,
                    deliveries,
                } => self.dead_letter(token, reason, deliveries),
                Action::Commit(partition) => self.commit(partition as usize),
            }
        }
    }

    /// Gives a message to the application.
    fn hand_out(&mut self, token: Token) {
        let Some(entry) = self.machine.book(token.partition).entry(token.sequence) else {
            return;
        };
        let mut message = received(&self.station, token, entry);
        if self.parts[token.partition as usize].handle.phase.is_some() {
            // From the snapshot: where the message is in the history.
            message.sequence = snapshot::origin(&entry.raw).unwrap_or(0);
            message
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(snapshot::STREAM_SOURCE));
        }
        let delivery: Delivery =
            self.ledger
                .hand_out(token, entry.raw.clone(), message, self.fence.given_up());
        self.client.inner.telemetry.consumed(
            &self.station_name,
            &self.group_name,
            delivery.partition,
        );
        if self.ready.is_some() {
            self.outbox.push(delivery);
        }
        // Otherwise (closing) the delivery's drop reports it back.
    }

    /// Exactly once: the record's value a held message belongs to.
    fn lane(&self, token: Token) -> Lane {
        Lane {
            partition: token.partition,
            snapshot: self.parts[token.partition as usize].handle.phase.is_some(),
        }
    }

    /// Exactly once: writes an acknowledged message to the record, with its
    /// partition's commit point; reported back with `Recorded` once the
    /// broker stored it. The message stays held (its key waits) until then.
    fn record(&mut self, token: Token) {
        let lane = self.lane(token);
        let floor = self.machine.book(token.partition).committed();
        match &self.recorder {
            Some(recorder) => recorder.record(token, lane, floor),
            None => {
                let actions = self.machine.settle(token, Outcome::Ack);
                self.carry_out(actions);
            }
        }
    }

    /// Exactly once: looks a redelivered message up in the record; reported
    /// back with `Looked`.
    fn look_up(&mut self, token: Token) {
        let lane = self.lane(token);
        if let Some(recorder) = &self.recorder {
            recorder.look_up(token, lane);
        }
    }

    /// Commits the partition at the end of this round (see
    /// [`Self::end_round`]).
    fn commit(&mut self, index: usize) {
        self.parts[index].commit_due = true;
    }

    /// Acknowledges the contiguous prefix of finished messages, if in sync.
    fn commit_now(&mut self, index: usize) {
        if !self.parts[index].in_sync {
            self.request_sync(index);
            return;
        }
        let Some((sequence, last)) = self.machine.book(index as u32).commit_prefix() else {
            return;
        };
        let part = &self.parts[index];
        part.committed_shared
            .store(sequence, std::sync::atomic::Ordering::Release);
        self.committer.commit(part.handle.partition, last);
        if part
            .handle
            .phase
            .as_ref()
            .is_some_and(|p| sequence >= p.bound)
        {
            self.switch_lane(index);
        }
    }

    /// Ends a partition's snapshot lane (everything up to its bound is
    /// committed): sets up the follow consumer, reported by `SnapshotOver`.
    fn switch_lane(&mut self, index: usize) {
        let part = &mut self.parts[index];
        let Some(phase) = part.handle.phase.clone() else {
            return;
        };
        if part.switching || !part.owned || part.revoking {
            return;
        }
        part.switching = true;
        part.stop_fetch();
        let (committer, state_stream, group, events, partition) = (
            self.committer.clone(),
            part.handle.stream.clone(),
            self.group.clone(),
            self.events.clone(),
            part.handle.partition,
        );
        tracing::debug!(station = %self.station, group = %self.group, partition, "snapshot read; following the history");
        tokio::spawn(async move {
            // The lane's last commit reaches the broker before it goes.
            committer.flush().await;
            let follow = snapshot::switch(&state_stream, &phase, &group).await;
            let _ = events.send(Event::SnapshotOver {
                partition,
                follow: Box::new(follow),
            });
        });
    }

    /// The partition follows the history from now on.
    fn on_snapshot_over(
        &mut self,
        partition: u32,
        follow: Result<jetstream::consumer::Consumer<pull::Config>>,
    ) {
        let index = partition as usize;
        let part = &mut self.parts[index];
        part.switching = false;
        let Some(phase) = part.handle.phase.clone() else {
            return;
        };
        let consumer = match follow {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cannot follow the history yet; retrying");
                part.last_error = Some(e.to_string());
                if part.owned {
                    self.restart_fetch(index);
                }
                return;
            }
        };
        part.stop_fetch();
        part.handle.stream = phase.partition_stream.clone();
        part.handle.consumer = consumer;
        part.handle.phase = None;
        part.config = phase.follow.clone();
        // Sequences of another stream from here on.
        part.delivered_through = 0;
        part.forget_sync();
        part.sole_reader = false;
        part.committed_shared
            .store(0, std::sync::atomic::Ordering::Release);
        // What is left of the lane (messages past its bound) is not the history.
        self.machine.books[index] = Default::default();
        if self.parts[index].owned && !self.parts[index].revoking && self.closing.is_none() {
            self.start_fetch(index);
        }
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
                        held = self.machine.books[i].len(),
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
        if self.machine.books[index].is_empty() {
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
        part.election.mark_seen();
        let elected = part.election.next();
        tokio::spawn(async move {
            // Bounded below the request timeout: during a consumer leader
            // election the question is better asked again soon, and at once
            // when the new leader is announced (the question went to none).
            let asked = tokio::time::timeout(SYNC_TIMEOUT, stream.consumer_info(&group));
            let info = tokio::select! {
                info = asked => match info {
                    Ok(info) => info.map_err(|e| Error::from_nats("reading consumer info", &e)),
                    Err(_) => Err(Error::new(ErrorKind::Timeout, "consumer info timed out")),
                },
                () = elected => Err(Error::new(
                    ErrorKind::Timeout,
                    "a new consumer leader was elected while asking",
                )),
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
                if e.kind() == ErrorKind::Timeout {
                    // The connected server itself may be frozen.
                    self.client.check_connection();
                }
                return;
            }
        };
        // Another member committed these while this one was not the owner.
        let floor = info.ack_floor.stream_sequence;
        let book = &mut self.machine.books[index];
        let through = super::reset::delivered_through(&info.config);
        if through > part.delivered_through {
            // Another member reset the consumer: what it had been delivered
            // comes again counted from 1.
            part.delivered_through = through;
            book.delivered_before(through);
        }
        if book.forget_through(floor) {
            part.committed_shared
                .store(floor, std::sync::atomic::Ordering::Release);
        }
        part.broker_undelivered = info.num_pending;
        self.lag.set(part.handle.partition, info.num_pending);
        let unpinned = super::pinned(&info).is_none();
        part.served_only_here |= part.owned && part.handle.phase.is_none() && unpinned;
        if part.handle.phase.is_some()
            && book.is_empty()
            && info.num_pending == 0
            && info.num_ack_pending == 0
        {
            // The lane delivered everything there is, and all of it is committed.
            part.in_sync = true;
            part.sole_reader = true;
            self.switch_lane(index);
            return;
        }
        if part.in_sync || book.is_empty() && info.num_ack_pending == 0 {
            if !part.in_sync && part.owned && !part.revoking {
                // Nothing pending anywhere: trivially in sync.
                part.in_sync = true;
                part.sole_reader = true;
                part.lost_since = None;
                part.last_delivery = info.delivered.consumer_sequence;
                part.gap_at = 0;
            }
            return;
        }
        let point = SyncPoint {
            delivered: info.delivered.consumer_sequence,
            pending: info.num_ack_pending,
        };
        part.sync_point = Some(point);
        let verdict = self.try_sync(index);
        self.check_lost(index, point, verdict);
    }

    /// A sole reader that stays out of sync has lost deliveries on the way
    /// (with a node, or in a reconnect): the broker counts them as pending
    /// and redelivers them only after `ack_wait`, and until then the
    /// partition runs nothing (see [`Self::dispatch`]); with
    /// `max_ack_pending` reached the broker delivers nothing more either.
    /// After [`LOSS_QUIET`] of answers that all show pending messages not
    /// held here, the partition's consumer is reset to its commit point when
    /// the last answer shows such a message delivered before one this member
    /// received (`Stale`), or when the broker stood still meanwhile (same
    /// last delivery, nothing received: deliveries this member has not
    /// received are not on their way).
    ///
    /// A member that took the partition is in the same place once no live
    /// member may hold deliveries of it (`holder_gone`: the one that held
    /// them was killed, or cut off for the handover timeout) and the broker
    /// has served nobody else since (`served_only_here`): the broker pins the
    /// partition to one pull, so the one that left stopped pulling, and what
    /// it was delivered would otherwise come back only after `ack_wait`. As with the
    /// broker's redelivery then, a member that was only cut off may still be
    /// running a handler on one of those messages when another member gets
    /// it again (its commits still cover only what it finished itself, so
    /// they lose nothing).
    /// `verdict` is what [`Self::try_sync`] found for `point`.
    fn check_lost(&mut self, index: usize, point: SyncPoint, verdict: Option<Verdict>) {
        let part = &mut self.parts[index];
        let book = &self.machine.books[index];
        let missing = match verdict {
            None | Some(Verdict::InSync) => false,
            Some(Verdict::Stale) => true,
            // After a pull failure this member forgets where its deliveries
            // stood, and waits for the next one: with every pending message
            // held here (a slow handler and a full window), nothing is lost.
            Some(Verdict::Wait) => {
                book.deliveries().filter(|d| *d <= point.delivered).count() != point.pending
            }
        };
        // A sole reader lost what is missing on the way; a member that took
        // the partition, and that the broker serves alone since, knows that nobody
        // alive holds it once every other live member said so (see
        // `holder_gone`).
        let nobody_holds = part.sole_reader || part.holder_gone && part.served_only_here;
        if !missing
            || !nobody_holds
            || !part.owned
            || part.revoking
            || part.switching
            || part.resetting
            || part.fetch.is_none()
            || part.reset_after.is_some_and(|t| Instant::now() < t)
            || !self.client.has_consumer_reset()
        {
            part.lost_since = None;
            return;
        }
        let now = Instant::now();
        let since = *part.lost_since.get_or_insert(now);
        let still = match part.still_since {
            Some((delivered, at)) if delivered == point.delivered && part.last_activity < at => {
                now - at >= LOSS_QUIET
            }
            _ => {
                part.still_since = Some((point.delivered, now));
                false
            }
        };
        if now - since >= LOSS_QUIET && (verdict == Some(Verdict::Stale) || still) {
            self.reset(index);
        }
    }

    /// Resets the partition's consumer to its commit point: the broker
    /// forgets what it delivered and delivers everything uncommitted again,
    /// at once, with delivery sequences from 1 (nats-server 2.14+). Read
    /// from a new pull, so that nothing delivered before the reset arrives
    /// after it; the old pull's pin is cleared for the new one.
    fn reset(&mut self, index: usize) {
        let part = &mut self.parts[index];
        let why = if part.sole_reader {
            "deliveries lost on the way (the broker counts them as pending)"
        } else {
            "the member that held the partition left the group with deliveries pending"
        };
        tracing::warn!(
            station = %self.station, group = %self.group, partition = part.handle.partition,
            held = self.machine.books[index].len(),
            "{why}; resetting the partition's consumer to its commit point"
        );
        part.resetting = true;
        part.lost_since = None;
        part.still_since = None;
        part.stop_fetch();
        // From here on (whether the reset succeeds or not) the delivery
        // sequences held here may name deliveries the broker forgot.
        part.in_sync = false;
        part.sync_point = None;
        part.last_delivery = 0;
        part.gap_at = 0;
        // The broker counts deliveries from 1 again: messages delivered
        // before are counted here (see [`super::reset`]).
        self.machine.books[index].forget_deliveries();
        let (stream, group, committer, events, partition) = (
            part.handle.stream.clone(),
            self.group.clone(),
            self.committer.clone(),
            self.events.clone(),
            part.handle.partition,
        );
        tokio::spawn(async move {
            let (delivered_through, error) = super::reset::reset(&stream, &group, &committer).await;
            let _ = events.send(Event::Reset {
                partition,
                delivered_through,
                error,
            });
        });
    }

    fn on_reset(&mut self, partition: u32, delivered_through: Option<u64>, error: Option<String>) {
        let index = partition as usize;
        let part = &mut self.parts[index];
        part.resetting = false;
        if let Some(through) = delivered_through
            && through > part.delivered_through
        {
            part.delivered_through = through;
            self.machine.books[index].delivered_before(through);
        }
        if let Some(error) = error {
            // Nothing was reset when the record could not be written (the
            // metadata layer may be electing a leader): try again soon.
            let wait = match delivered_through {
                Some(_) => self.options.ack_wait,
                None => RECORD_RETRY,
            };
            tracing::warn!(
                station = %self.station, group = %self.group, partition,
                %error,
                "cannot reset the partition's consumer; trying again in {wait:?} unless the broker redelivers first"
            );
            part.reset_after = Some(Instant::now() + wait);
            part.last_error = Some(error);
        }
        if part.owned && !part.revoking && self.closing.is_none() {
            self.start_fetch(index);
        }
    }

    /// Checks the last sync point against what this member holds now; asks
    /// the broker again (at most every `SYNC_INTERVAL`) when it cannot hold.
    /// Returns the verdict (in sync if it already was), or nothing when the
    /// partition is not this member's to check or has no sync point yet.
    fn try_sync(&mut self, index: usize) -> Option<Verdict> {
        let part = &mut self.parts[index];
        if part.in_sync {
            return Some(Verdict::InSync);
        }
        if part.revoking || !part.owned {
            return None;
        }
        let Some(point) = part.sync_point else {
            self.request_sync(index);
            return None;
        };
        let book = &self.machine.books[index];
        let verdict = sync_verdict(book.deliveries(), part.last_delivery, part.gap_at, point);
        match verdict {
            Verdict::InSync => {
                part.in_sync = true;
                part.sole_reader = true;
                part.lost_since = None;
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
                    held = book.len(),
                    "not in sync yet"
                );
                part.sync_point = None;
                self.request_sync(index);
            }
        }
        Some(verdict)
    }

    fn on_fetch_failed(&mut self, partition: u32, error: String) {
        let index = partition as usize;
        let part = &mut self.parts[index];
        part.last_error = Some(error);
        part.doubted = false;
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
        let (now, wall) = (Instant::now(), SystemTime::now());
        self.parts
            .iter()
            .zip(&self.machine.books)
            .map(|(p, book)| PartitionHealth {
                partition: p.handle.partition,
                owned: p.owned,
                in_sync: p.in_sync,
                held: book.len(),
                undelivered: p.broker_undelivered,
                last_delivery: p
                    .last_delivery_at
                    .map(|at| wall - now.saturating_duration_since(at)),
                last_error: p.last_error.clone(),
            })
            .collect()
    }

    /// Tells the broker that messages held here for half of `ack_wait`
    /// without a handler running are still being worked on (queued behind
    /// their key or for the application, or finished and not committed
    /// yet). Otherwise it delivers them again once `ack_wait` passed: a
    /// backlog longer than `ack_wait` (a slow key, a member that took over
    /// a frozen one's partitions) made first runs arrive flagged as
    /// redeliveries, and the redeliveries kept the partition out of sync,
    /// so that nothing of it could be committed. Looked at every quarter of
    /// `ack_wait`; one progress acknowledgement per message kept.
    fn keep_held(&mut self) {
        let now = Instant::now();
        if now < self.next_keep {
            return;
        }
        self.next_keep = now + self.options.ack_wait / 4;
        let Some(before) = now.checked_sub(self.options.ack_wait / 2) else {
            return;
        };
        let mut kept = Vec::new();
        for (part, book) in self.parts.iter().zip(self.machine.books.iter_mut()) {
            if part.owned && !part.revoking && !part.resetting {
                kept.extend(book.keep(before, now));
            }
        }
        if kept.is_empty() {
            return;
        }
        tracing::trace!(
            messages = kept.len(),
            "keeping held messages with the broker"
        );
        tokio::spawn(async move {
            for message in kept {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        });
    }

    fn on_tick(&mut self) {
        self.keep_held();
        for i in 0..self.parts.len() {
            let part = &self.parts[i];
            if !part.in_sync && !self.machine.books[i].is_empty() {
                self.request_sync(i);
            } else if !part.in_sync
                && (part.sole_reader || part.holder_gone)
                && part.owned
                && !part.revoking
            {
                // Nothing held, but pending messages may have been lost on
                // the way, or held by a member that left (see `check_lost`).
                self.force_sync(i);
            }
            let part = &self.parts[i];
            if part.handle.phase.is_some()
                && part.owned
                && !part.switching
                && self.machine.books[i].is_empty()
                && part.last_sync.is_none_or(|t| t.elapsed() >= LANE_CHECK)
            {
                // A snapshot lane with nothing held may be over.
                self.force_sync(i);
            }
        }
        self.watch_silences();
        if let Some((_, deadline)) = &self.closing
            && Instant::now() >= *deadline
        {
            tracing::warn!(
                station = %self.station, group = %self.group,
                held = self.machine.held_by_app(),
                "closing without waiting further for unsettled messages"
            );
            self.machine.abandon_app();
        }
    }

    /// Copies the message to the dead-letter station (see
    /// [`crate::dead_letter`]); reports back with `DeadLettered`.
    fn dead_letter(&mut self, token: Token, reason: String, deliveries: u64) {
        let Some(entry) = self.machine.book(token.partition).entry(token.sequence) else {
            return;
        };
        let raw = entry.raw.clone();
        tracing::info!(
            station = %self.station, partition = token.partition, sequence = token.sequence,
            deliveries, reason = %reason, "dead-lettering"
        );
        let sequence = match &self.parts[token.partition as usize].handle.phase {
            Some(_) => snapshot::origin(&raw).unwrap_or(token.sequence),
            None => token.sequence,
        };
        let origin = crate::dead_letter::Origin {
            station: self.station.clone(),
            partition: token.partition,
            sequence,
            group: self.group.clone(),
            deliveries,
            reason,
        };
        let (client, events) = (self.client.clone(), self.events.clone());
        tokio::spawn(async move {
            let result = crate::dead_letter::store(&client, &origin, &raw).await;
            let _ = events.send(Event::DeadLettered { token, result });
        });
    }

    fn close_ready(&self) -> bool {
        self.closing.is_some()
            && self.machine.held_by_app() == 0
            && !self.machine.books.iter().any(|b| b.dead_lettering())
    }

    /// Takes and gives away partitions after the live members changed.
    fn apply_members(&mut self, live: Live) {
        let members = live.members.clone();
        let me = self.membership.member().to_string();
        let owners = assignment(&members, self.parts.len() as u32);
        for (i, owner) in owners.into_iter().enumerate() {
            let partition = self.parts[i].handle.partition;
            let mine = members.get(owner) == Some(&me);
            let part = &mut self.parts[i];
            if mine && !part.owned && !part.revoking {
                tracing::debug!(station = %self.station, group = %self.group, partition, "taking partition");
                part.owned = true;
                part.sole_reader = false;
                part.taken_at = Some(live.at);
                part.served_only_here = false;
                part.lost_since = None;
                self.start_fetch(i);
            } else if !mine && part.owned {
                tracing::debug!(station = %self.station, group = %self.group, partition, "handing partition over");
                part.owned = false;
                part.revoking = true;
                part.sole_reader = false;
                self.lag.set(partition, 0);
                part.stop_fetch();
                self.check_revoked(i);
            }
        }
        // Announcements made within one interval of the take may predate
        // it (and the broker's clocks may differ across a leader change).
        let interval = self.options.handover_timeout / 4;
        for part in &mut self.parts {
            part.holder_gone = part.owned
                && part
                    .taken_at
                    .is_some_and(|taken| !live.holds(part.handle.partition, taken + interval));
        }
        self.live = live;
    }

    /// Hands a revoked partition over once the application holds nothing of it.
    fn check_revoked(&mut self, index: usize) {
        let busy = self.machine.books[index].busy();
        if self.parts[index].revoking && !busy {
            let release = self.take_release(index);
            tokio::spawn(release.run());
        }
    }

    /// Detaches what a partition still holds, for [`Release::run`].
    fn take_release(&mut self, index: usize) -> Release {
        let part = &mut self.parts[index];
        part.revoking = false;
        // The release commits the finished prefix itself: at once when the
        // partition is in sync, as any commit, after asking the broker
        // otherwise.
        part.commit_due = false;
        let in_sync = std::mem::take(&mut part.in_sync);
        part.syncing = false;
        part.sync_point = None;
        Release {
            committer: self.committer.clone(),
            stream: part.handle.stream.clone(),
            group: self.group.clone(),
            entries: self.machine.books[index].take_all(),
            in_sync,
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

fn received(
    station: &str,
    token: Token,
    entry: &Entry<Arc<jetstream::Message>>,
) -> ReceivedMessage {
    let mut headers = Vec::new();
    let mut msg_id = None;
    if let Some(h) = &entry.raw.headers {
        headers.reserve(h.len());
        for (name, values) in h.iter() {
            let Some(name) = crate::headers::shown(name.as_ref()) else {
                continue;
            };
            for v in values {
                let value = v.as_str().to_owned();
                if crate::headers::is_message_id(name) {
                    msg_id = Some(value.clone());
                }
                headers.push((name.to_owned(), value));
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

#[cfg(test)]
mod tests {
    /// Each event is copied into the channel's block and out of it again, and
    /// the blocks are sized by the largest variant: a variant that grows
    /// (a consumer configuration, a whole message) makes every fetched
    /// message pay for it.
    #[test]
    fn events_stay_a_few_words() {
        let size = std::mem::size_of::<super::Event>();
        assert!(size <= 64, "Event is {size} bytes");
    }
}
