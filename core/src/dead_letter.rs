//! Dead letters: storing them, listing them and replaying them into their
//! station.
//!
//! A dead letter is a copy of a message that failed `max_deliveries` times
//! (or was terminated), stored in the station's dead-letter stream with
//! headers naming its origin (see [`crate::headers`]). Replaying one sends
//! its payload, key and application headers to the station again (as a new
//! message at the end of its partition) and removes it from the dead letters.

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        consumer::{AckPolicy, DeliverPolicy, pull},
        message::{PublishMessage, StreamMessage},
        stream::RawMessageErrorKind,
    },
};
use bytes::Bytes;
use futures::StreamExt;

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    headers,
    names::validate_name,
    producer::{Message, ProducerOptions, Receipt},
    station::unknown_station,
};

/// Dead letters asked for in one request when listing them.
const LISTING_BATCH: usize = 1000;

/// Where a message to dead-letter comes from, and why it failed.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) station: String,
    pub(crate) partition: u32,
    pub(crate) sequence: u64,
    pub(crate) group: String,
    pub(crate) deliveries: u64,
    pub(crate) reason: String,
}

/// Stores a copy of `raw` in its station's dead-letter stream, with headers
/// naming its origin. Its id is derived from the origin, so storing it again
/// (a retry after an unknown outcome) keeps one copy.
pub(crate) async fn store(
    client: &Client,
    origin: &Origin,
    raw: &jetstream::Message,
) -> Result<()> {
    let names = &client.inner.names;
    let subject = names.dead_letter_subject(&origin.station);
    let origin_stream = names.partition_stream(&origin.station, origin.partition);
    let mut h = HeaderMap::new();
    if let Some(original) = &raw.headers {
        for (name, values) in original.iter() {
            let name: &str = name.as_ref();
            if headers::is_message_id(name) {
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
        format!("dl-{origin_stream}-{}-{}", origin.group, origin.sequence).as_str(),
    );
    h.insert(headers::ORIGIN_STATION, origin.station.as_str());
    h.insert(
        headers::ORIGIN_PARTITION,
        origin.partition.to_string().as_str(),
    );
    h.insert(
        headers::ORIGIN_SEQUENCE,
        origin.sequence.to_string().as_str(),
    );
    h.insert(headers::ORIGIN_GROUP, origin.group.as_str());
    h.insert(headers::DELIVERIES, origin.deliveries.to_string().as_str());
    h.insert(headers::LAST_ERROR, sanitize(&origin.reason).as_str());
    h.insert(headers::DEAD_LETTERED_AT, now.as_str());
    let publish = PublishMessage::build()
        .payload(raw.payload.clone())
        .headers(h);
    // Stored, the message counts as finished and is committed with its
    // prefix. No `Term`: under AckPolicy::All a term acknowledges every
    // earlier message too, finished or not.
    client
        .inner
        .js
        .send_publish(subject, publish)
        .await
        .map_err(|e| Error::from_nats("storing a dead letter", &e))?
        .await
        .map_err(|e| Error::from_nats("storing a dead letter", &e))?;
    Ok(())
}

/// Header values cannot hold line breaks; keep them readable and bounded.
fn sanitize(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    flat.chars().take(1024).collect()
}

/// A message in a station's dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Sequence in the dead-letter stream (what `replay_dead_letter` takes).
    pub sequence: u64,
    pub origin_station: String,
    pub origin_partition: u32,
    pub origin_sequence: u64,
    pub origin_msg_id: Option<String>,
    pub group: String,
    pub deliveries: u64,
    pub last_error: String,
    /// RFC 3339 time the message was dead-lettered.
    pub dead_lettered_at: String,
    pub key: Option<String>,
    pub payload: Bytes,
    /// The application's own headers.
    pub headers: Vec<(String, String)>,
}

fn parse(sequence: u64, headers_map: Option<&async_nats::HeaderMap>, payload: Bytes) -> DeadLetter {
    let get = |name: &str| headers_map.and_then(|h| h.get(name)).map(|v| v.to_string());
    let mut app = Vec::new();
    if let Some(h) = headers_map {
        for (name, values) in h.iter() {
            let name: &str = name.as_ref();
            if !headers::is_reserved(name) {
                for v in values {
                    app.push((name.to_string(), v.to_string()));
                }
            }
        }
    }
    app.sort();
    DeadLetter {
        sequence,
        origin_station: get(headers::ORIGIN_STATION).unwrap_or_default(),
        origin_partition: get(headers::ORIGIN_PARTITION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        origin_sequence: get(headers::ORIGIN_SEQUENCE)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        origin_msg_id: get(headers::ORIGIN_MSG_ID),
        group: get(headers::ORIGIN_GROUP).unwrap_or_default(),
        deliveries: get(headers::DELIVERIES)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        last_error: get(headers::LAST_ERROR).unwrap_or_default(),
        dead_lettered_at: get(headers::DEAD_LETTERED_AT).unwrap_or_default(),
        key: get(headers::KEY),
        payload,
        headers: app,
    }
}

impl Client {
    /// Removes every dead letter of `station` (they are gone for good);
    /// returns how many there were.
    pub async fn purge_dead_letters(&self, station: &str) -> Result<u64> {
        self.ensure_open()?;
        validate_name("station", station)?;
        let stream_name = self.inner.names.dead_letter_stream(station);
        if self.stream_info(&stream_name).await?.is_none() {
            return Err(unknown_station(station));
        }
        let stream = self
            .inner
            .js
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|e| Error::from_nats("opening dead letters", &e))?;
        let purged = stream
            .purge()
            .await
            .map_err(|e| Error::from_nats("purging dead letters", &e))?;
        Ok(purged.purged)
    }

    /// Every dead letter of `station`, oldest first.
    pub async fn dead_letters(&self, station: &str) -> Result<Vec<DeadLetter>> {
        self.ensure_open()?;
        validate_name("station", station)?;
        let stream_name = self.inner.names.dead_letter_stream(station);
        let Some(info) = self.stream_info(&stream_name).await? else {
            return Err(unknown_station(station));
        };
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return Ok(out);
        }
        let last = info.state.last_sequence;
        let stream = self
            .inner
            .js
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|e| Error::from_nats("opening dead letters", &e))?;
        let reader = stream
            .create_consumer(pull::Config {
                ack_policy: AckPolicy::None,
                deliver_policy: DeliverPolicy::All,
                inactive_threshold: std::time::Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::from_nats("reading dead letters", &e))?;
        // One-shot requests for what is there (`fetch`: no wait), not a
        // continuous pull: each ends by itself, so none can wait on
        // messages it never asked for (see `consumer::fetch`, `QUIET`).
        loop {
            let mut batch = reader
                .fetch()
                .max_messages(LISTING_BATCH)
                .messages()
                .await
                .map_err(|e| Error::from_nats("reading dead letters", &e))?;
            let mut got = 0;
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| Error::from_nats("reading dead letters", e.as_ref()))?;
                got += 1;
                let info = m.info().ok();
                let sequence = info.as_ref().map(|i| i.stream_sequence).unwrap_or(0);
                let pending = info.as_ref().map(|i| i.pending).unwrap_or(1);
                out.push(parse(sequence, m.headers.as_ref(), m.payload.clone()));
                if sequence >= last || pending == 0 {
                    return Ok(out);
                }
            }
            if got == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// Sends dead letter `sequence` back into `station` and removes it from
    /// the dead letters.
    pub async fn replay_dead_letter(&self, station: &str, sequence: u64) -> Result<Receipt> {
        self.ensure_open()?;
        validate_name("station", station)?;
        let stream_name = self.inner.names.dead_letter_stream(station);
        let stream = self
            .inner
            .js
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|e| Error::from_nats("opening dead letters", &e))?;
        let raw: StreamMessage = stream.get_raw_message(sequence).await.map_err(|e| {
            let err = Error::from_nats("reading a dead letter", &e);
            if err.kind() == ErrorKind::NotFound || e.kind() == RawMessageErrorKind::NoMessageFound
            {
                Error::not_found(format!(
                    "station {station:?} has no dead letter {sequence}; list them with \
                     dead_letters"
                ))
            } else {
                err
            }
        })?;
        let letter = parse(sequence, Some(&raw.headers), raw.payload.clone());
        let mut message = Message::new(letter.payload.clone());
        message.key = letter.key.clone();
        message.headers = letter.headers.clone();
        message.msg_id = Some(format!(
            "{}-replay-{sequence}",
            letter.origin_msg_id.as_deref().unwrap_or("dl")
        ));
        let producer = self.producer(station, ProducerOptions::default()).await?;
        let receipt = producer.send(message).await?;
        producer.close().await?;
        stream
            .delete_message(sequence)
            .await
            .map_err(|e| Error::from_nats("removing a replayed dead letter", &e))?;
        Ok(receipt)
    }

    /// Replays every dead letter of `station`, oldest first.
    pub async fn replay_dead_letters(&self, station: &str) -> Result<Vec<Receipt>> {
        self.ensure_open()?;
        let mut receipts = Vec::new();
        for letter in self.dead_letters(station).await? {
            receipts.push(self.replay_dead_letter(station, letter.sequence).await?);
        }
        Ok(receipts)
    }
}
