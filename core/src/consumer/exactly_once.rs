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
//! # What is promised, and where it ends
//! - The handler runs to success at most once per message for as long as the
//!   record keeps it (`exactly_once_retention`), across member crashes,
//!   handovers and server restarts; a failed handler (nack) is not recorded
//!   and runs again, as without the option.
//! - A message is identified by its id (`Nats-Msg-Id`; every jetstation
//!   producer sets one), else by its partition and sequence.
//! - The servers' clocks must agree within ten seconds: a member looks for
//!   the record of a redelivered message among the writes stored since
//!   shortly before the partition's oldest held message was published.
//! - The record and the handler's own effects are not one transaction: a
//!   member that dies after the handler ran but before the record was
//!   written runs the handler again on redelivery. Effects outside NATS (a
//!   database row, an e-mail) therefore still need idempotence: the effect
//!   and the message id written in one transaction, a message whose id is
//!   there changing nothing (`examples/rust/payments.rs`, which also
//!   describes the outbox, the same idea on the producing side).
//! - Handled messages are recorded many per write (those handled while the
//!   previous writes await their confirmation), so the record costs one
//!   write per batch rather than per message. A look-up reads the writes
//!   from the stream's leader, so a write confirmed before the look-up is
//!   always seen; a member reads each write once and keeps an index.
//! - Only redeliveries are looked up (the broker counts deliveries): a first
//!   delivery cannot have been handled before, unless the group's durable
//!   consumer was lost and created again; from then on the member looks up
//!   every message of that partition.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, ErrorCode, kv, response::Response, stream::RawMessage};
use bytes::Bytes;
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{book::Token, scheduler::Event};

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    headers,
    station::Storage,
};

/// Record writes of one member awaiting the broker's confirmation at once.
const WINDOW: usize = 2;
/// Most handled messages in one record write.
const MOST_PER_WRITE: usize = 1024;
/// How much earlier than a message's publication a record of it is looked
/// for: the record is stored after the message, but possibly by another
/// server, whose clock may differ by up to this much.
const CLOCK_MARGIN: Duration = Duration::from_secs(10);
/// Longest a look-up may take to read the record before it counts as failed
/// (and is tried again).
const READ_LIMIT: Duration = Duration::from_secs(10);

/// The record of handled messages of one group.
///
/// Handled messages are recorded many per write: each write is one message
/// of the bucket's stream, under a subject of its own below
/// `b.<partition>`, listing the record keys of the messages it covers. A
/// look-up reads the writes of the message's partition stored since shortly
/// before the message was published (a record cannot be older than its
/// message) into an index kept by the member, and from then on only the
/// writes stored after the last one read.
pub(crate) struct Records {
    store: kv::Store,
    bucket: String,
    js: jetstream::Context,
    indexes: Mutex<HashMap<u32, Arc<tokio::sync::Mutex<Index>>>>,
}

/// The answer to a message get.
#[derive(serde::Deserialize)]
struct Got {
    message: RawMessage,
}

/// What a member read of one partition's record.
#[derive(Default)]
struct Index {
    keys: HashSet<String>,
    /// The publication time from which the record was read.
    from: Option<OffsetDateTime>,
    /// The stream sequence of the last record write read.
    through: u64,
    /// When the last complete read started: every write confirmed before
    /// then is in `keys`.
    read_at: Option<Instant>,
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
        let records = |store| Self {
            store,
            bucket: bucket.clone(),
            js: js.clone(),
            indexes: Mutex::default(),
        };
        if let Ok(store) = js.get_key_value(&bucket).await {
            return Ok(records(store));
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
            Ok(store) => Ok(records(store)),
            // Another member created it first.
            Err(create) => js.get_key_value(&bucket).await.map(records).map_err(|_| {
                Error::from_nats("creating the group's record of handled messages", &create)
            }),
        }
    }

    /// Whether the record holds the message with this key, of `partition`;
    /// `oldest` is the publication time of the partition's oldest message
    /// held by the member (the record is read from shortly before it, once,
    /// rather than from each message's own time). Every write confirmed
    /// before `asked` is taken into account.
    pub(crate) async fn contains(
        &self,
        partition: u32,
        key: &str,
        oldest: OffsetDateTime,
        asked: Instant,
    ) -> Result<bool> {
        let index = self
            .indexes
            .lock()
            .expect("records lock")
            .entry(partition)
            .or_default()
            .clone();
        {
            let mut index = index.lock().await;
            if index.keys.contains(key) {
                return Ok(true);
            }
            let from = oldest - CLOCK_MARGIN;
            if index.from.is_none_or(|f| from < f) {
                // Never read, or not from this far back: read again from there.
                *index = Index {
                    from: Some(from),
                    ..Index::default()
                };
            }
            // A read started after the question covers every write before it.
            let fresh = index.read_at.is_some_and(|at| at > asked);
            if !fresh {
                tokio::time::timeout(READ_LIMIT, self.read(partition, &mut index))
                    .await
                    .map_err(|_| {
                        Error::new(
                            ErrorKind::Timeout,
                            "reading the record of handled messages timed out",
                        )
                    })??;
                if index.keys.contains(key) {
                    return Ok(true);
                }
            }
        }
        self.contains_single(key).await
    }

    /// Whether the record holds the key on its own (as written before the
    /// record was written many messages at a time).
    async fn contains_single(&self, key: &str) -> Result<bool> {
        self.store
            .get(key)
            .await
            .map(|value| value.is_some())
            .map_err(|e| Error::from_nats("reading the record of handled messages", &e))
    }

    /// Reads the writes of `partition` stored since the index's last read,
    /// one at a time from the stream's leader (a follower may not hold the
    /// latest confirmed writes yet), without creating a consumer.
    async fn read(&self, partition: u32, index: &mut Index) -> Result<()> {
        let failed = |e: &(dyn std::error::Error + 'static)| {
            Error::from_nats("reading the record of handled messages", e)
        };
        let started = Instant::now();
        let api = format!("STREAM.MSG.GET.KV_{}", self.bucket);
        let filter = format!("$KV.{}.b.{partition}.>", self.bucket);
        loop {
            let request = match (index.through, index.from) {
                (0, Some(from)) => serde_json::json!({
                    "next_by_subj": filter,
                    "start_time": from
                        .format(&time::format_description::well_known::Rfc3339)
                        .map_err(|e| failed(&e))?,
                }),
                (through, _) => serde_json::json!({ "next_by_subj": filter, "seq": through + 1 }),
            };
            let answer: Response<Got> = self
                .js
                .request(api.clone(), &request)
                .await
                .map_err(|e| failed(&e))?;
            let raw = match answer {
                Response::Ok(Got { message }) => message,
                Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => {
                    break;
                }
                Response::Err { error } => return Err(failed(&error)),
            };
            let write =
                jetstream::message::StreamMessage::try_from(raw).map_err(|e| failed(e.as_ref()))?;
            index.through = write.sequence;
            index.keys.extend(
                String::from_utf8_lossy(&write.payload)
                    .lines()
                    .map(str::to_string),
            );
        }
        index.read_at = Some(started);
        Ok(())
    }

    /// Starts the task that writes records for a member, reporting each
    /// with `Recorded` once the broker stored it.
    pub(crate) fn recorder(
        &self,
        js: jetstream::Context,
        events: mpsc::UnboundedSender<Event>,
    ) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_records(rx, js, self.bucket.clone(), events));
        Recorder { tx }
    }
}

/// Writes the records of a member from one task: the messages handled
/// while earlier writes await their confirmation are written together, one
/// write per partition, at most [`WINDOW`] writes awaiting at once.
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<(Token, String)>,
}

impl Recorder {
    pub(crate) fn record(&self, token: Token, key: String) {
        let _ = self.tx.send((token, key));
    }
}

/// Handled messages waiting for a write, by partition in arrival order.
#[derive(Default)]
struct Waiting {
    by_partition: HashMap<u32, Vec<(Token, String)>>,
    turns: VecDeque<u32>,
}

impl Waiting {
    fn push(&mut self, token: Token, key: String) {
        let list = self.by_partition.entry(token.partition).or_default();
        if list.is_empty() {
            self.turns.push_back(token.partition);
        }
        list.push((token, key));
    }

    /// The next write's partition and messages.
    fn take(&mut self) -> Option<(u32, Vec<(Token, String)>)> {
        let partition = self.turns.pop_front()?;
        let list = self.by_partition.get_mut(&partition)?;
        let rest = list.split_off(list.len().min(MOST_PER_WRITE));
        let batch = std::mem::replace(list, rest);
        if !list.is_empty() {
            self.turns.push_back(partition);
        }
        Some((partition, batch))
    }
}

async fn write_records(
    mut rx: mpsc::UnboundedReceiver<(Token, String)>,
    js: jetstream::Context,
    bucket: String,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut confirming: FuturesUnordered<BoxFuture<'static, (Vec<Token>, Result<()>)>> =
        FuturesUnordered::new();
    let mut waiting = Waiting::default();
    let writer = nuid::next().to_string();
    let mut written: u64 = 0;
    let failed =
        |e: &(dyn std::error::Error + 'static)| Error::from_nats("recording a handled message", e);
    let mut open = true;
    while open || !confirming.is_empty() {
        tokio::select! {
            next = rx.recv(), if open => match next {
                Some((token, key)) => {
                    waiting.push(token, key);
                    while let Ok((token, key)) = rx.try_recv() {
                        waiting.push(token, key);
                    }
                }
                None => open = false,
            },
            Some((tokens, answer)) = confirming.next(), if !confirming.is_empty() => {
                for token in tokens {
                    let result = answer.clone();
                    if events.send(Event::Recorded { token, result }).is_err() {
                        return;
                    }
                }
            }
        }
        while confirming.len() < WINDOW {
            let Some((partition, batch)) = waiting.take() else {
                break;
            };
            written += 1;
            // A key of its own per write (the bucket keeps one message per key).
            let subject = format!("$KV.{bucket}.b.{partition}.{writer}.{written}");
            let mut payload = String::with_capacity(batch.iter().map(|(_, k)| k.len() + 1).sum());
            for (_, key) in &batch {
                payload.push_str(key);
                payload.push('\n');
            }
            let tokens: Vec<Token> = batch.into_iter().map(|(t, _)| t).collect();
            match js.publish(subject, Bytes::from(payload)).await {
                Ok(ack) => confirming.push(
                    async move { (tokens, ack.await.map(|_| ()).map_err(|e| failed(&e))) }.boxed(),
                ),
                Err(e) => {
                    let e = failed(&e);
                    for token in tokens {
                        let result = Err(e.clone());
                        let _ = events.send(Event::Recorded { token, result });
                    }
                }
            }
        }
    }
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

/// The record's key of a message: its id when it has one (encoded when it
/// holds characters a key cannot), else its partition and sequence.
pub(crate) fn record_key(message: &jetstream::Message, partition: u32, sequence: u64) -> String {
    let id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::MSG_ID))
        .map(|v| v.as_str().to_string());
    match id {
        Some(id)
            if !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            format!("id.{id}")
        }
        Some(id) => {
            let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
            format!("hex.{hex}")
        }
        None => format!("seq.{partition}.{sequence}"),
    }
}
