//! The state view of a compacted station: the latest message of every key.
//!
//! A station created with `compaction` keeps its full history in its
//! partition streams (for `max_age`) and, beside each, a state stream that
//! *sources* it and keeps one message per subject. With compaction each key
//! has its own subject, so the state streams hold the latest message of
//! every key for as long as the key lives, whatever the history's age. The
//! broker maintains them: producers write once, and the view keeps up by
//! itself after a producer or a server restarts. One state stream per
//! partition, each with a single source: a stream sourcing several streams
//! dropped all of one source's messages in our tests (nats-server 2.15), and
//! a per-partition view is what following the history partition by
//! partition needs anyway.
//!
//! Deleting a key ([`crate::Producer::delete`]) writes a tombstone: a message
//! with `Jst-Op: delete`, an empty payload and a time to live (`Nats-TTL`).
//! Consumers of the history see it as a delete; in the state view it
//! replaces the key's last value at once, and the broker removes it when its
//! time to live ends (sourcing keeps the header, nats-server 2.11+). The time
//! to live is the station's `delete_grace`, else its `max_age`, else one day:
//! a consumer that reads the history within that time sees every delete.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{
    consumer::{DeliverPolicy, pull},
    message::StreamMessage,
    stream::{self, DirectGetErrorKind, Source},
};
use bytes::Bytes;
use futures::StreamExt;

use crate::{
    client::Client,
    error::{Error, Result},
    headers,
    names::{partition_of, validate_key, validate_name},
    station::{StationConfig, Storage, unknown_station},
};

/// Header the broker puts on a sourced message: `<stream> <sequence> …`.
const STREAM_SOURCE: &str = "Nats-Stream-Source";
/// Time to live of a tombstone when the station keeps its history forever.
const TOMBSTONE_TTL_WITHOUT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The latest message of one key, read from a station's state view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub station: String,
    pub key: String,
    pub partition: u32,
    /// Sequence of the message in its partition (where following the
    /// history continues from).
    pub sequence: u64,
    pub payload: Bytes,
    /// The message's application and jetstation headers, sorted by name.
    pub headers: Vec<(String, String)>,
    /// When the broker stored it, RFC 3339.
    pub time: String,
}

/// How long a tombstone lives (in the history and in the state view).
pub(crate) fn tombstone_ttl(config: &StationConfig) -> Duration {
    config
        .delete_grace
        .or(config.max_age)
        .unwrap_or(TOMBSTONE_TTL_WITHOUT_MAX_AGE)
}

/// Whether a message is a tombstone.
pub(crate) fn is_tombstone(h: Option<&async_nats::HeaderMap>) -> bool {
    h.and_then(|h| h.get(headers::OP))
        .is_some_and(|v| v.as_str() == "delete")
}

impl Client {
    /// The state stream of one partition of a compacted station: sources
    /// the partition, one message per subject (per key), no age limit.
    pub(crate) fn state_stream_config(
        &self,
        station: &str,
        cfg: &StationConfig,
        partition: u32,
    ) -> stream::Config {
        let names = &self.inner.names;
        stream::Config {
            name: names.state_stream(station, partition),
            description: Some(format!(
                "jetstation state view of station {station:?}, partition {partition}: the \
                 latest message of every key"
            )),
            storage: match cfg.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: cfg.replicas,
            max_messages_per_subject: 1,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            allow_message_ttl: true,
            sources: Some(vec![Source {
                name: names.partition_stream(station, partition),
                ..Default::default()
            }]),
            metadata: HashMap::from([
                ("jetstation.version".to_string(), "1".to_string()),
                ("jetstation.station".to_string(), station.to_string()),
                ("jetstation.role".to_string(), format!("state-{partition}")),
            ]),
            ..Default::default()
        }
    }

    async fn compacted(&self, station: &str) -> Result<StationConfig> {
        validate_name("station", station)?;
        let config = self
            .read_station_config(station)
            .await?
            .ok_or_else(|| unknown_station(station))?;
        if !config.compaction {
            return Err(Error::invalid(format!(
                "station {station:?} has no state view: only stations created with compaction \
                 keep the latest message of every key"
            )));
        }
        Ok(config)
    }

    /// The latest message of `key` in a compacted station, or `None` when
    /// the key has none (never written, or deleted).
    pub async fn latest(&self, station: &str, key: &str) -> Result<Option<StateEntry>> {
        self.ensure_open()?;
        validate_key(key)?;
        let config = self.compacted(station).await?;
        let names = &self.inner.names;
        let partition = partition_of(key, config.partitions);
        let subject = names.message_subject(station, partition, Some(key), true);
        let stream = self
            .inner
            .js
            .get_stream_no_info(names.state_stream(station, partition))
            .await
            .map_err(|e| Error::from_nats("opening the state view", &e))?;
        match stream.direct_get_last_for_subject(subject).await {
            Ok(message) => Ok(entry(station, partition, message)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_nats("reading the state view", &e)),
        }
    }

    /// Every key's latest message in a compacted station, partition by
    /// partition, as it stands when each partition's turn comes (keys
    /// written meanwhile may or may not appear).
    pub async fn snapshot(&self, station: &str) -> Result<Snapshot> {
        self.ensure_open()?;
        let config = self.compacted(station).await?;
        Ok(Snapshot {
            client: self.clone(),
            station: station.to_string(),
            partitions: config.partitions,
            next_partition: 0,
            reader: None,
        })
    }

    /// An ordered reader of one partition's state stream, up to its last
    /// message now.
    async fn state_reader(&self, station: &str, partition: u32) -> Result<Reader> {
        let mut stream = self
            .inner
            .js
            .get_stream(self.inner.names.state_stream(station, partition))
            .await
            .map_err(|e| Error::from_nats("opening the state view", &e))?;
        let state = stream
            .info()
            .await
            .map_err(|e| Error::from_nats("opening the state view", &e))?
            .state
            .clone();
        let messages = self
            .state_messages(station, partition, DeliverPolicy::All)
            .await?;
        Ok(Reader {
            partition,
            messages,
            last: state.last_sequence,
            next: 0,
            done: state.messages == 0,
            failing_since: None,
        })
    }

    /// An ordered consumer of one partition's state stream and its messages.
    async fn state_messages(
        &self,
        station: &str,
        partition: u32,
        deliver_policy: DeliverPolicy,
    ) -> Result<Messages> {
        let stream = self
            .inner
            .js
            .get_stream_no_info(self.inner.names.state_stream(station, partition))
            .await
            .map_err(|e| Error::from_nats("opening the state view", &e))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::from_nats("reading the state view", &e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| Error::from_nats("reading the state view", &e))?;
        Ok(Box::pin(messages))
    }
}

/// How long a snapshot's reader may stay quiet while its partition has more
/// to give before it is opened again at its next message. An ordered pull
/// notices a lost consumer (its node died) or a lost count of what it asked
/// for (async-nats can count a request's messages before the request itself,
/// see `consumer::fetch`) only when two 15 s heartbeats are missed; a
/// snapshot reads messages that are all there, so a second of silence
/// already says that the pull stopped.
const QUIET: Duration = Duration::from_secs(1);

/// How long a partition's reader keeps being opened again after errors (a
/// node lost, a leader being elected) before the snapshot returns the error.
const REOPEN_FOR: Duration = Duration::from_secs(30);

type Messages = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = std::result::Result<async_nats::jetstream::Message, pull::OrderedError>,
            > + Send,
    >,
>;

/// One partition's part of a snapshot.
struct Reader {
    partition: u32,
    messages: Messages,
    /// The state stream's last sequence when the reader started.
    last: u64,
    /// The stream sequence after the last message read (0: none read yet).
    next: u64,
    done: bool,
    /// When the reader began failing (stalled or in error) without a
    /// message since.
    failing_since: Option<std::time::Instant>,
}

/// The state view of a station, key by key (see [`Client::snapshot`]).
pub struct Snapshot {
    client: Client,
    station: String,
    partitions: u32,
    next_partition: u32,
    reader: Option<Reader>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("station", &self.station)
            .field("next_partition", &self.next_partition)
            .finish()
    }
}

impl Snapshot {
    /// The next key's latest message; `None` at the end of the snapshot.
    pub async fn next(&mut self) -> Option<Result<StateEntry>> {
        loop {
            let reader = match &mut self.reader {
                Some(r) if !r.done => r,
                _ => {
                    if self.next_partition >= self.partitions {
                        return None;
                    }
                    let p = self.next_partition;
                    self.next_partition += 1;
                    match self.client.state_reader(&self.station, p).await {
                        Ok(r) => self.reader.insert(r),
                        Err(e) => return Some(Err(e)),
                    }
                }
            };
            if reader.done {
                continue;
            }
            let message = match tokio::time::timeout(QUIET, reader.messages.next()).await {
                Ok(Some(Ok(m))) => m,
                // The partition has more to give (its reader is not done):
                // an error, an end or a silence means the pull stopped.
                Ok(Some(Err(e))) => {
                    let cause = Error::from_nats("reading the state view", &e);
                    match self.reopen(Some(cause)).await {
                        Ok(()) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Ok(None) | Err(_) => match self.reopen(None).await {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                },
            };
            let Ok(info) = message.info() else {
                continue;
            };
            let sequence = info.stream_sequence;
            if sequence < reader.next {
                // The ordered pull started over. async-nats recreates an
                // ordered consumer that fails before its first message (its
                // node died) from the stream's start, whatever policy it was
                // opened with, so a reader opened again at its next message
                // can come back to messages already read. Open it again
                // where it was rather than read them twice.
                match self.reopen(None).await {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
            reader.failing_since = None;
            reader.next = sequence + 1;
            if sequence > reader.last {
                reader.done = true;
                continue;
            }
            if sequence == reader.last || info.pending == 0 {
                reader.done = true;
            }
            let message = StreamMessage {
                subject: message.subject.clone(),
                sequence,
                headers: message.headers.clone().unwrap_or_default(),
                payload: message.payload.clone(),
                time: info.published,
            };
            if let Some(entry) = entry(&self.station, reader.partition, message) {
                return Some(Ok(entry));
            }
        }
    }

    /// Opens the current partition's reader again at its next message. A
    /// failed opening keeps the old reader (it may still recover by itself)
    /// and is tried again at the next silence, for [`REOPEN_FOR`]; then the
    /// error (the read's own `cause` if there was one) is returned.
    async fn reopen(&mut self, cause: Option<Error>) -> Result<()> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        let since = *reader
            .failing_since
            .get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= REOPEN_FOR {
            return Err(cause.unwrap_or_else(|| {
                Error::new(
                    crate::error::ErrorKind::Timeout,
                    format!(
                        "reading the state view: partition {} of {:?} gave nothing for {:?}",
                        reader.partition, self.station, REOPEN_FOR
                    ),
                )
            }));
        }
        let deliver_policy = match reader.next {
            0 => DeliverPolicy::All,
            start_sequence => DeliverPolicy::ByStartSequence { start_sequence },
        };
        tracing::debug!(
            station = %self.station,
            partition = reader.partition,
            next = reader.next,
            "the snapshot's reader stopped; opening it again"
        );
        match self
            .client
            .state_messages(&self.station, reader.partition, deliver_policy)
            .await
        {
            Ok(messages) => {
                reader.messages = messages;
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "opening the snapshot's reader again failed");
                // A pause before the next try while the broker recovers (a
                // leader being elected); REOPEN_FOR bounds the tries.
                tokio::time::sleep(Duration::from_millis(250)).await;
                Ok(())
            }
        }
    }

    /// The entries as a `Stream`.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<StateEntry>> + Send {
        futures::stream::unfold(self, |mut s| async move { s.next().await.map(|e| (e, s)) })
    }
}

/// A state entry from a message of the state view; `None` for tombstones
/// and keyless messages.
fn entry(station: &str, partition: u32, message: StreamMessage) -> Option<StateEntry> {
    if is_tombstone(Some(&message.headers)) {
        return None;
    }
    let key = message.headers.get(headers::KEY_NAME.clone())?.to_string();
    let sequence = message
        .headers
        .get(STREAM_SOURCE)
        .and_then(|v| v.as_str().split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let mut hs: Vec<(String, String)> = Vec::new();
    for (name, values) in message.headers.iter() {
        let name: &str = name.as_ref();
        if name.eq_ignore_ascii_case(STREAM_SOURCE) {
            continue;
        }
        let Some(name) = headers::shown(name) else {
            continue;
        };
        for v in values {
            hs.push((name.to_string(), v.to_string()));
        }
    }
    hs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(StateEntry {
        station: station.to_string(),
        key,
        partition,
        sequence,
        payload: message.payload,
        headers: hs,
        time: message
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}
