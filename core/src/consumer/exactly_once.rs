//! Exactly-once processing: a group's record of the messages it handled.
//!
//! With [`super::ConsumerOptions::exactly_once`], a message acknowledged by
//! the application is written to the group's record (a JetStream key-value
//! bucket, replicated like the station) and the broker confirms that write
//! *before* the message counts as done and its commit is sent. A message
//! delivered again (its commit was lost in a crash, a handover gave it back,
//! or a node died) is looked up first: when the record holds it, it is
//! committed without reaching the application again.
//!
//! The record holds one value per partition (and one per partition for the
//! snapshot lane): its [`Progress`], the sequences of its finished messages
//! as a floor plus the handled ones above it. One write records every
//! message handled since the previous write of that partition, and one read
//! answers every look-up of a partition waiting for it. Writes are
//! compare-and-set on the value's revision; a member that finds another one
//! wrote in between reads the value, merges (the union of both) and writes
//! again, so a member that lost a partition and still writes cannot erase
//! what the new owner recorded. Reads go to the stream leader, so a look-up
//! sees every write the broker confirmed before it.
//!
//! # What is promised, and where it ends
//! - The handler runs to success at most once per message across member
//!   crashes, handovers and server restarts, for as long as the record
//!   exists (`exactly_once_retention`: a partition's record is dropped when
//!   nothing of it was handled for that long); a failed handler (nack) is
//!   not recorded and runs again, as without the option.
//! - A message is identified by its partition and its stream sequence, which
//!   a redelivery keeps. A producer resending one message is a different
//!   stored message unless the station's duplicate window dropped it.
//! - The record and the handler's own effects are not one transaction: a
//!   member that dies after the handler ran but before the record was
//!   written runs the handler again on redelivery. Effects outside NATS (a
//!   database row, an e-mail) therefore still need idempotence: the effect
//!   and the message id written in one transaction, a message whose id is
//!   there changing nothing (`examples/rust/payments.rs`, which also
//!   describes the outbox, the same idea on the producing side).
//! - Only redeliveries are looked up (the broker counts deliveries, and
//!   after a consumer reset the member counts what the broker had delivered
//!   before, see [`super::reset`]): a first delivery cannot have been
//!   handled before, unless the group's durable consumer was lost and
//!   created again; from then on the member looks up every message of that
//!   partition.

use std::{collections::HashMap, future::Future, pin::Pin, time::Duration};

use async_nats::jetstream::{self, kv, stream::LastRawMessageErrorKind};
use futures::{StreamExt, stream::FuturesUnordered};
use tokio::sync::mpsc;

use super::{book::Token, progress::Progress, scheduler::Event};

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    station::Storage,
};

/// Pause before a failed write or read of the record is tried again.
const RETRY: Duration = Duration::from_millis(500);
/// Longest wait for the broker's answer to a write or read of the record.
/// One sent to a stream leader that died is never answered; it is tried
/// again after this instead of after the client's request timeout (5 s by
/// default), so the messages it records (held meanwhile, their keys
/// waiting) stay unrecorded for less time. A retried write that the broker
/// did store finds the revision moved, and reads and merges first.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// The record of handled messages of one group.
pub(crate) struct Records {
    store: kv::Store,
    bucket: String,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    /// Opens (creating if needed) the record of `group` of `station`, kept
    /// like the station (storage, replicas) for `retention`.
    pub(crate) async fn open(
        client: &Client,
        station: &str,
        group: &str,
        storage: Storage,
        replicas: usize,
        retention: Duration,
    ) -> Result<Self> {
        let bucket = bucket(client, station, group);
        let js = &client.inner.js;
        if let Ok(store) = js.get_key_value(&bucket).await {
            return Ok(Self { store, bucket });
        }
        let created = js
            .create_key_value(kv::Config {
                bucket: bucket.clone(),
                description: format!(
                    "jetstation: messages of station {station:?} handled by group {group:?}"
                ),
                history: 1,
                max_age: retention,
                storage: match storage {
                    Storage::File => jetstream::stream::StorageType::File,
                    Storage::Memory => jetstream::stream::StorageType::Memory,
                },
                num_replicas: replicas,
                ..Default::default()
            })
            .await;
        match created {
            Ok(store) => Ok(Self { store, bucket }),
            // Another member created it first.
            Err(create) => js
                .get_key_value(&bucket)
                .await
                .map(|store| Self {
                    store,
                    bucket: bucket.clone(),
                })
                .map_err(|_| {
                    Error::from_nats("creating the group's record of handled messages", &create)
                }),
        }
    }

    /// Starts the task that writes and reads the record for a member; it
    /// reports `Recorded` once a handled message is stored and `Looked`
    /// once a look-up is answered, and ends with the returned handle.
    pub(crate) fn recorder(&self, events: mpsc::UnboundedSender<Event>) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            store: self.store.clone(),
            bucket: self.bucket.clone(),
            events,
            lanes: HashMap::new(),
            busy: FuturesUnordered::new(),
        };
        tokio::spawn(task.run(rx));
        Recorder { tx }
    }
}

/// Which value of the record a message belongs to: its partition, and
/// whether it came from the snapshot lane (whose sequences are those of the
/// state view, not of the partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Lane {
    pub(crate) partition: u32,
    pub(crate) snapshot: bool,
}

impl Lane {
    fn key(self) -> String {
        match self.snapshot {
            false => format!("p.{}", self.partition),
            true => format!("s.{}", self.partition),
        }
    }
}

enum Command {
    /// `token` was handled; every message of its lane up to `floor` is
    /// finished.
    Record {
        token: Token,
        lane: Lane,
        floor: u64,
    },
    /// Whether `token` (delivered again) is recorded.
    LookUp { token: Token, lane: Lane },
}

/// Handle to a member's record task.
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<Command>,
}

impl Recorder {
    pub(crate) fn record(&self, token: Token, lane: Lane, floor: u64) {
        let _ = self.tx.send(Command::Record { token, lane, floor });
    }

    pub(crate) fn look_up(&self, token: Token, lane: Lane) {
        let _ = self.tx.send(Command::LookUp { token, lane });
    }
}

/// What the task knows and is doing about one lane's value.
#[derive(Default)]
struct LaneState {
    progress: Progress,
    /// The value's revision as last written or read; `None` when it must be
    /// read before the next write.
    revision: Option<u64>,
    /// Handled, for the next write.
    pending: Vec<Token>,
    /// In the write under way.
    writing: Option<Vec<Token>>,
    /// Answered by the read under way.
    reading: Option<Vec<Token>>,
    /// Arrived while a read was under way: answered by the next one, which
    /// starts after them and so sees every write confirmed before them.
    to_read: Vec<Token>,
    /// A failed write or read waits for `RETRY`.
    pausing: bool,
}

enum Outcome {
    Wrote(std::result::Result<u64, kv::UpdateError>),
    Read(Result<Option<(u64, Progress)>>),
    Resume,
}

type Busy = Pin<Box<dyn Future<Output = (Lane, Outcome)> + Send>>;

struct Task {
    store: kv::Store,
    bucket: String,
    events: mpsc::UnboundedSender<Event>,
    lanes: HashMap<Lane, LaneState>,
    busy: FuturesUnordered<Busy>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else { break };
                    let lane = match command {
                        Command::Record { token, lane, floor } => {
                            let state = self.lanes.entry(lane).or_default();
                            state.progress.raise_floor(floor);
                            state.progress.add(token.sequence);
                            state.pending.push(token);
                            lane
                        }
                        Command::LookUp { token, lane } => {
                            self.lanes.entry(lane).or_default().to_read.push(token);
                            lane
                        }
                    };
                    self.drive(lane);
                }
                Some((lane, outcome)) = self.busy.next(), if !self.busy.is_empty() => {
                    if !self.finished(lane, outcome) {
                        return;
                    }
                    self.drive(lane);
                }
            }
        }
    }

    /// Starts the read or write a lane needs next, if none is under way.
    fn drive(&mut self, lane: Lane) {
        let Some(state) = self.lanes.get_mut(&lane) else {
            return;
        };
        if state.pausing {
            return;
        }
        let must_read = !state.to_read.is_empty()
            || (state.revision.is_none() && !state.pending.is_empty() && state.writing.is_none());
        if state.reading.is_none() && must_read {
            state.reading = Some(std::mem::take(&mut state.to_read));
            let stream = self.store.stream.clone();
            let subject = format!("$KV.{}.{}", self.bucket, lane.key());
            self.busy.push(Box::pin(async move {
                let answer = tokio::time::timeout(ANSWER_TIMEOUT, read(&stream, &subject)).await;
                let read = answer.unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Timeout,
                        "no answer reading the record of handled messages",
                    ))
                });
                (lane, Outcome::Read(read))
            }));
        }
        if let (None, Some(revision), false) =
            (&state.writing, state.revision, state.pending.is_empty())
        {
            state.writing = Some(std::mem::take(&mut state.pending));
            let value = state.progress.encode().into_bytes().into();
            let store = self.store.clone();
            self.busy.push(Box::pin(async move {
                let update = store.update(lane.key(), value, revision);
                let wrote = tokio::time::timeout(ANSWER_TIMEOUT, update).await;
                let wrote = wrote
                    .unwrap_or_else(|_| Err(kv::UpdateError::new(kv::UpdateErrorKind::TimedOut)));
                (lane, Outcome::Wrote(wrote))
            }));
        }
    }

    /// Takes in a finished read or write; false when the member is gone.
    fn finished(&mut self, lane: Lane, outcome: Outcome) -> bool {
        let Some(state) = self.lanes.get_mut(&lane) else {
            return true;
        };
        match outcome {
            Outcome::Resume => state.pausing = false,
            Outcome::Wrote(Ok(revision)) => {
                // A read may have seen a later write already.
                state.revision = Some(state.revision.map_or(revision, |r| r.max(revision)));
                for token in state.writing.take().unwrap_or_default() {
                    if self.events.send(Event::Recorded { token }).is_err() {
                        return false;
                    }
                }
            }
            Outcome::Wrote(Err(e)) => {
                let mut again = state.writing.take().unwrap_or_default();
                again.append(&mut state.pending);
                state.pending = again;
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    // Another member wrote (or the value expired): read,
                    // merge and write again.
                    tracing::debug!(
                        partition = lane.partition,
                        "record written by another member; merging"
                    );
                    state.revision = None;
                } else {
                    tracing::warn!(error = %e, partition = lane.partition, "cannot record handled messages; retrying");
                    // A write that timed out waited long enough already.
                    if e.kind() != kv::UpdateErrorKind::TimedOut {
                        pause(state, &self.busy, lane);
                    }
                }
            }
            Outcome::Read(Ok(value)) => {
                let (revision, progress) = value.unwrap_or_default();
                state.progress.merge(&progress);
                state.revision = Some(state.revision.map_or(revision, |r| r.max(revision)));
                for token in state.reading.take().unwrap_or_default() {
                    let found = state.progress.contains(token.sequence);
                    if self.events.send(Event::Looked { token, found }).is_err() {
                        return false;
                    }
                }
            }
            Outcome::Read(Err(e)) => {
                tracing::warn!(error = %e, partition = lane.partition, "cannot read the record of handled messages; retrying");
                let mut again = state.reading.take().unwrap_or_default();
                again.append(&mut state.to_read);
                state.to_read = again;
                // A read that timed out waited long enough already.
                if e.kind() != ErrorKind::Timeout {
                    pause(state, &self.busy, lane);
                }
            }
        }
        true
    }
}

/// Holds a lane's reads and writes back for `RETRY`.
fn pause(state: &mut LaneState, busy: &FuturesUnordered<Busy>, lane: Lane) {
    state.pausing = true;
    busy.push(Box::pin(async move {
        // Back-off before the record is tried again; the lane's messages stay held meanwhile.
        tokio::time::sleep(RETRY).await; // a failed write or read is tried again after a pause
        (lane, Outcome::Resume)
    }));
}

/// The latest value of a lane and its revision, read from the stream leader
/// (a direct get may be answered by a replica that is behind); `None` when
/// the lane has no value.
async fn read(
    stream: &jetstream::stream::Stream,
    subject: &str,
) -> Result<Option<(u64, Progress)>> {
    let message = match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => m,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(e) => {
            return Err(Error::from_nats(
                "reading the record of handled messages",
                &e,
            ));
        }
    };
    let removed = message
        .headers
        .get("KV-Operation")
        .is_some_and(|op| op.as_str() != "PUT");
    let text = std::str::from_utf8(&message.payload).unwrap_or("");
    let progress = match (removed, Progress::decode(text)) {
        (true, _) => Progress::default(),
        (false, Some(p)) => p,
        (false, None) => {
            tracing::warn!(
                subject,
                "the record of handled messages holds an unreadable value; ignored"
            );
            Progress::default()
        }
    };
    Ok(Some((message.sequence, progress)))
}

fn bucket(client: &Client, station: &str, group: &str) -> String {
    match client.inner.names.namespace() {
        Some(ns) => format!("jst_done_{ns}_{station}_{group}"),
        None => format!("jst_done_{station}_{group}"),
    }
}

/// Deletes the record of a group (with the group).
pub(crate) async fn delete(client: &Client, station: &str, group: &str) {
    let _ = client
        .inner
        .js
        .delete_key_value(bucket(client, station, group))
        .await;
}
