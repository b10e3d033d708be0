//! Records that cross into Swift, and their conversions. Every option is
//! optional: what is not given keeps the core's default. Durations are
//! seconds (`TimeInterval`), times are `Date`.

use std::time::SystemTime;

use jetstation::convert::seconds;

use crate::{error::Result, payload::Payload};

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
    /// Path of a `.creds` file (JWT and nkey seed).
    #[uniffi(default = None)]
    pub creds_file: Option<String>,
    #[uniffi(default = None)]
    pub tls_required: Option<bool>,
    /// PEM file of the certificate authorities to trust.
    #[uniffi(default = None)]
    pub tls_ca: Option<String>,
    /// PEM client certificate and key (both or neither).
    #[uniffi(default = None)]
    pub tls_cert: Option<String>,
    #[uniffi(default = None)]
    pub tls_key: Option<String>,
    #[uniffi(default = None)]
    pub namespace: Option<String>,
    /// The connection's name, shown by the server.
    #[uniffi(default = None)]
    pub name: Option<String>,
    #[uniffi(default = None)]
    pub connect_timeout: Option<f64>,
    #[uniffi(default = None)]
    pub request_timeout: Option<f64>,
    #[uniffi(default = None)]
    pub max_reconnect_delay: Option<f64>,
}

pub(crate) fn connect_options(
    urls: Vec<String>,
    o: ConnectOptions,
) -> Result<jetstation::ConnectOptions> {
    let mut c = jetstation::ConnectOptions::with_urls(urls);
    c.auth = jetstation::Auth::from_parts(
        o.token,
        o.user,
        o.password,
        o.nkey_seed,
        o.creds_file.map(Into::into),
    )?;
    c.tls = jetstation::Tls {
        required: o.tls_required.unwrap_or(false),
        root_certificates: o.tls_ca.map(Into::into),
        client_certificate: match (o.tls_cert, o.tls_key) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => {
                return Err(crate::error::invalid(
                    "tlsCert and tlsKey go together: give both or neither",
                ));
            }
        },
    };
    c.namespace = o.namespace;
    c.name = o.name;
    if let Some(s) = o.connect_timeout {
        c.connect_timeout = seconds("connectTimeout", s)?;
    }
    if let Some(s) = o.request_timeout {
        c.request_timeout = seconds("requestTimeout", s)?;
    }
    if let Some(s) = o.max_reconnect_delay {
        c.max_reconnect_delay = seconds("maxReconnectDelay", s)?;
    }
    Ok(c)
}

#[derive(uniffi::Record, Default)]
pub struct StationConfig {
    #[uniffi(default = None)]
    pub partitions: Option<u32>,
    #[uniffi(default = None)]
    pub replicas: Option<u32>,
    /// "file" (default) or "memory".
    #[uniffi(default = None)]
    pub storage: Option<String>,
    #[uniffi(default = None)]
    pub max_age: Option<f64>,
    #[uniffi(default = None)]
    pub max_bytes: Option<u64>,
    #[uniffi(default = None)]
    pub max_messages: Option<u64>,
    #[uniffi(default = None)]
    pub dedup_window: Option<f64>,
    #[uniffi(default = None)]
    pub max_deliveries: Option<u32>,
    #[uniffi(default = None)]
    pub compaction: Option<bool>,
    /// Seconds a deleted key's tombstone stays (compacted stations; default
    /// maxAge, or one day).
    #[uniffi(default = None)]
    pub delete_grace: Option<f64>,
    #[uniffi(default = None)]
    pub schema: Option<String>,
    /// A pinned schema version (default: follow the latest).
    #[uniffi(default = None)]
    pub schema_version: Option<u32>,
}

pub(crate) fn station_config(o: StationConfig) -> Result<jetstation::StationConfig> {
    let d = jetstation::StationConfig::default();
    Ok(jetstation::StationConfig {
        partitions: o.partitions.unwrap_or(d.partitions),
        replicas: o.replicas.map_or(d.replicas, |r| r as usize),
        storage: o.storage.map_or(Ok(d.storage), |s| s.parse())?,
        max_age: o.max_age.map(|s| seconds("maxAge", s)).transpose()?,
        max_bytes: o.max_bytes,
        max_messages: o.max_messages,
        dedup_window: o
            .dedup_window
            .map_or(Ok(d.dedup_window), |s| seconds("dedupWindow", s))?,
        max_deliveries: o.max_deliveries.unwrap_or(d.max_deliveries),
        compaction: o.compaction.unwrap_or(d.compaction),
        delete_grace: o
            .delete_grace
            .map(|s| seconds("deleteGrace", s))
            .transpose()?,
        schema: o.schema.map(|name| jetstation::SchemaBinding {
            name,
            version: o.schema_version,
        }),
    })
}

#[derive(uniffi::Record, Default)]
pub struct ProducerOptions {
    #[uniffi(default = None)]
    pub max_batch_messages: Option<u32>,
    #[uniffi(default = None)]
    pub max_batch_bytes: Option<u32>,
    #[uniffi(default = None)]
    pub linger: Option<f64>,
    #[uniffi(default = None)]
    pub max_in_flight: Option<u32>,
    #[uniffi(default = None)]
    pub buffer_bytes: Option<u32>,
    /// "wait" (default) or "fail": fail at once with `BufferFull` when full.
    #[uniffi(default = None)]
    pub when_full: Option<String>,
    /// Seconds a message may take, retries included.
    #[uniffi(default = None)]
    pub delivery_timeout: Option<f64>,
    #[uniffi(default = None)]
    pub producer_id: Option<String>,
}

pub(crate) fn producer_options(o: ProducerOptions) -> Result<jetstation::ProducerOptions> {
    let mut p = jetstation::ProducerOptions::default();
    if let Some(n) = o.max_batch_messages {
        p.max_batch_messages = n as usize;
    }
    if let Some(n) = o.max_batch_bytes {
        p.max_batch_bytes = n as usize;
    }
    if let Some(s) = o.linger {
        p.linger = seconds("linger", s)?;
    }
    if let Some(n) = o.max_in_flight {
        p.max_in_flight = n as usize;
    }
    if let Some(n) = o.buffer_bytes {
        p.buffer_bytes = n as usize;
    }
    if let Some(w) = o.when_full {
        p.when_full = w.parse()?;
    }
    if let Some(s) = o.delivery_timeout {
        p.delivery_timeout = seconds("deliveryTimeout", s)?;
    }
    p.producer_id = o.producer_id;
    Ok(p)
}

#[derive(uniffi::Record, Default)]
pub struct ConsumerOptions {
    #[uniffi(default = None)]
    pub concurrency: Option<u32>,
    /// "earliest" (default for a new group), "latest" or "snapshot" (the
    /// latest message of every key, then the history after it; compacted
    /// stations).
    #[uniffi(default = None)]
    pub start: Option<String>,
    /// A new group starts at this sequence in every partition.
    #[uniffi(default = None)]
    pub start_sequence: Option<u64>,
    /// A new group starts at the first message stored at or after this time.
    #[uniffi(default = None)]
    pub start_time: Option<SystemTime>,
    #[uniffi(default = None)]
    pub ack_wait: Option<f64>,
    #[uniffi(default = None)]
    pub max_ack_pending: Option<u32>,
    #[uniffi(default = None)]
    pub redelivery_delay: Option<f64>,
    #[uniffi(default = None)]
    pub max_redelivery_delay: Option<f64>,
    #[uniffi(default = None)]
    pub fetch_batch: Option<u32>,
    #[uniffi(default = None)]
    pub handover_timeout: Option<f64>,
    /// Record every handled message before its acknowledgement and skip a
    /// redelivered one found in the record.
    #[uniffi(default = None)]
    pub exactly_once: Option<bool>,
    /// Seconds the record keeps a handled message (default one day).
    #[uniffi(default = None)]
    pub exactly_once_retention: Option<f64>,
}

pub(crate) fn consumer_options(o: ConsumerOptions) -> Result<jetstation::ConsumerOptions> {
    use jetstation::StartPosition;
    let mut c = jetstation::ConsumerOptions::default();
    if let Some(n) = o.concurrency {
        c.concurrency = n as usize;
    }
    c.start = match (o.start, o.start_sequence, o.start_time) {
        (None, None, None) => c.start,
        (Some(name), None, None) => name.parse()?,
        (None, Some(seq), None) => StartPosition::sequence(seq)?,
        (None, None, Some(t)) => StartPosition::Time(t.into()),
        _ => {
            return Err(crate::error::invalid(
                "give one of start, startSequence and startTime, not several",
            ));
        }
    };
    if let Some(s) = o.ack_wait {
        c.ack_wait = seconds("ackWait", s)?;
    }
    if let Some(n) = o.max_ack_pending {
        c.max_ack_pending = n as usize;
    }
    if let Some(s) = o.redelivery_delay {
        c.redelivery_delay = seconds("redeliveryDelay", s)?;
    }
    if let Some(s) = o.max_redelivery_delay {
        c.max_redelivery_delay = seconds("maxRedeliveryDelay", s)?;
    }
    if let Some(n) = o.fetch_batch {
        c.fetch_batch = n as usize;
    }
    if let Some(s) = o.handover_timeout {
        c.handover_timeout = seconds("handoverTimeout", s)?;
    }
    if let Some(on) = o.exactly_once {
        c.exactly_once = on;
    }
    if let Some(s) = o.exactly_once_retention {
        c.exactly_once_retention = seconds("exactlyOnceRetention", s)?;
    }
    Ok(c)
}

#[derive(uniffi::Record)]
pub struct Station {
    pub name: String,
    pub partitions: u32,
    pub replicas: u32,
    /// "file" or "memory".
    pub storage: String,
    pub max_age: Option<f64>,
    pub max_bytes: Option<u64>,
    pub max_messages: Option<u64>,
    pub dedup_window: f64,
    pub max_deliveries: u32,
    pub compaction: bool,
    pub delete_grace: Option<f64>,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    pub messages: u64,
    pub dead_letters: u64,
}

impl From<jetstation::Station> for Station {
    fn from(s: jetstation::Station) -> Self {
        let c = s.config;
        Self {
            name: s.name,
            partitions: c.partitions,
            replicas: c.replicas as u32,
            storage: c.storage.as_str().into(),
            max_age: c.max_age.map(|d| d.as_secs_f64()),
            max_bytes: c.max_bytes,
            max_messages: c.max_messages,
            dedup_window: c.dedup_window.as_secs_f64(),
            max_deliveries: c.max_deliveries,
            compaction: c.compaction,
            delete_grace: c.delete_grace.map(|d| d.as_secs_f64()),
            schema: c.schema.as_ref().map(|b| b.name.clone()),
            schema_version: c.schema.and_then(|b| b.version),
            messages: s.messages,
            dead_letters: s.dead_letters,
        }
    }
}

#[derive(uniffi::Record)]
pub struct Receipt {
    pub station: String,
    pub partition: u32,
    pub sequence: u64,
    pub duplicate: bool,
    pub msg_id: String,
}

impl From<jetstation::Receipt> for Receipt {
    fn from(r: jetstation::Receipt) -> Self {
        Self {
            station: r.station,
            partition: r.partition,
            sequence: r.sequence,
            duplicate: r.duplicate,
            msg_id: r.msg_id,
        }
    }
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
    pub origin_msg_id: Option<String>,
    pub group: String,
    pub deliveries: u64,
    pub last_error: String,
    /// RFC 3339.
    pub dead_lettered_at: String,
    pub key: Option<String>,
    pub payload: Payload,
    pub headers: Vec<Header>,
}

impl From<jetstation::DeadLetter> for DeadLetter {
    fn from(d: jetstation::DeadLetter) -> Self {
        Self {
            sequence: d.sequence,
            origin_station: d.origin_station,
            origin_partition: d.origin_partition,
            origin_sequence: d.origin_sequence,
            origin_msg_id: d.origin_msg_id,
            group: d.group,
            deliveries: d.deliveries,
            last_error: d.last_error,
            dead_lettered_at: d.dead_lettered_at,
            key: d.key,
            payload: d.payload.into(),
            headers: headers(d.headers),
        }
    }
}

#[derive(uniffi::Record)]
pub struct SchemaVersion {
    pub name: String,
    pub version: u32,
    /// "json_schema", "protobuf" or "avro".
    pub format: String,
    pub source: String,
    pub message_type: Option<String>,
    /// RFC 3339.
    pub created: String,
}

impl From<jetstation::SchemaVersion> for SchemaVersion {
    fn from(v: jetstation::SchemaVersion) -> Self {
        Self {
            name: v.name,
            version: v.version,
            format: v.format.as_str().into(),
            source: v.source,
            message_type: v.message_type,
            created: v.created,
        }
    }
}

#[derive(uniffi::Record)]
pub struct SchemaInfo {
    pub name: String,
    pub format: String,
    /// "none", "backward", "forward" or "full".
    pub compatibility: String,
    pub versions: Vec<u32>,
    pub latest: u32,
}

impl From<jetstation::SchemaInfo> for SchemaInfo {
    fn from(s: jetstation::SchemaInfo) -> Self {
        Self {
            name: s.name,
            format: s.format.as_str().into(),
            compatibility: s.compatibility.as_str().into(),
            versions: s.versions,
            latest: s.latest,
        }
    }
}

/// One header of a message (a name may appear more than once).
#[derive(uniffi::Record, Clone)]
pub struct Header {
    pub name: String,
    pub value: String,
}

pub(crate) fn headers(pairs: Vec<(String, String)>) -> Vec<Header> {
    pairs
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect()
}

/// A message to send, with everything a message can carry.
#[derive(uniffi::Record)]
pub struct OutgoingMessage {
    pub payload: Payload,
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
        jetstation::Message {
            payload: o.payload.into(),
            key: o.key,
            headers: o.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            msg_id: o.msg_id,
        }
    }
}

/// The latest message of one key, from a compacted station's state view.
#[derive(uniffi::Record)]
pub struct StateEntry {
    pub station: String,
    pub key: String,
    pub partition: u32,
    /// Sequence of the message in its partition.
    pub sequence: u64,
    pub payload: Payload,
    pub headers: Vec<Header>,
    /// When the broker stored it, RFC 3339.
    pub time: String,
}

impl From<jetstation::StateEntry> for StateEntry {
    fn from(e: jetstation::StateEntry) -> Self {
        Self {
            station: e.station,
            key: e.key,
            partition: e.partition,
            sequence: e.sequence,
            payload: e.payload.into(),
            headers: headers(e.headers),
            time: e.time,
        }
    }
}
