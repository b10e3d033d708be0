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
//!   producer sets one), else by its partition and sequence. A producer
//!   resending one message with one id is recognised here too, even after
//!   the station's duplicate window.
//! - The record and the handler's own effects are not one transaction: a
//!   member that dies after the handler ran but before the record was
//!   written runs the handler again on redelivery. Effects outside NATS (a
//!   database row, an e-mail) therefore still need idempotence: the effect
//!   and the message id written in one transaction, a message whose id is
//!   there changing nothing (`examples/rust/payments.rs`, which also
//!   describes the outbox, the same idea on the producing side).
//! - Only redeliveries are looked up (the broker counts deliveries): a first
//!   delivery cannot have been handled before, unless the group's durable
//!   consumer was lost and created again; from then on the member looks up
//!   every message of that partition.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::{StreamExt, stream::FuturesUnordered};
use tokio::sync::mpsc;

use super::{book::Token, scheduler::Event};

use crate::{
    client::Client,
    error::{Error, Result},
    headers,
    station::Storage,
};

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

    /// Whether the record holds the message with this key.
    pub(crate) async fn contains(&self, key: &str) -> Result<bool> {
        self.store
            .get(key)
            .await
            .map(|value| value.is_some())
            .map_err(|e| Error::from_nats("reading the record of handled messages", &e))
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

/// Writes the records of a member from one task: each record is published
/// as soon as it comes, and its confirmation awaited beside the others (a
/// window of publishes), with no task per message.
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<(Token, String)>,
}

impl Recorder {
    pub(crate) fn record(&self, token: Token, key: String) {
        let _ = self.tx.send((token, key));
    }
}

async fn write_records(
    mut rx: mpsc::UnboundedReceiver<(Token, String)>,
    js: jetstream::Context,
    bucket: String,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut confirming = FuturesUnordered::new();
    let failed =
        |e: &(dyn std::error::Error + 'static)| Error::from_nats("recording a handled message", e);
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some((token, key)) = next else { break };
                // What `kv::Store::put` publishes, for a bucket of this account.
                let subject = format!("$KV.{bucket}.{key}");
                match js.publish(subject, Bytes::new()).await {
                    Ok(ack) => confirming.push(async move { (token, ack.await) }),
                    Err(e) => {
                        let result = Err(failed(&e));
                        let _ = events.send(Event::Recorded { token, result });
                    }
                }
            }
            Some((token, answer)) = confirming.next(), if !confirming.is_empty() => {
                let result = answer.map(|_| ()).map_err(|e| failed(&e));
                if events.send(Event::Recorded { token, result }).is_err() {
                    return;
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
