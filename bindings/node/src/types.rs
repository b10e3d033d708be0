//! Plain objects returned to JavaScript.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

#[napi(object)]
pub struct Receipt {
    pub station: String,
    pub partition: u32,
    pub sequence: i64,
    pub duplicate: bool,
    pub msg_id: String,
}

impl From<jetstation::Receipt> for Receipt {
    fn from(r: jetstation::Receipt) -> Self {
        Self {
            station: r.station,
            partition: r.partition,
            sequence: r.sequence as i64,
            duplicate: r.duplicate,
            msg_id: r.msg_id,
        }
    }
}

#[napi(object)]
pub struct Station {
    pub name: String,
    pub partitions: u32,
    pub replicas: u32,
    /// "file" or "memory".
    pub storage: String,
    /// Milliseconds.
    pub max_age_ms: Option<f64>,
    pub max_bytes: Option<i64>,
    pub max_messages: Option<i64>,
    pub dedup_window_ms: f64,
    pub max_deliveries: u32,
    pub compaction: bool,
    pub delete_grace_ms: Option<f64>,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    pub messages: i64,
    pub dead_letters: i64,
}

impl From<jetstation::Station> for Station {
    fn from(s: jetstation::Station) -> Self {
        let c = s.config;
        Self {
            name: s.name,
            partitions: c.partitions,
            replicas: c.replicas as u32,
            storage: c.storage.as_str().into(),
            max_age_ms: c.max_age.map(|d| d.as_secs_f64() * 1000.0),
            max_bytes: c.max_bytes.map(|b| b as i64),
            max_messages: c.max_messages.map(|m| m as i64),
            dedup_window_ms: c.dedup_window.as_secs_f64() * 1000.0,
            max_deliveries: c.max_deliveries,
            compaction: c.compaction,
            delete_grace_ms: c.delete_grace.map(|d| d.as_secs_f64() * 1000.0),
            schema: c.schema.as_ref().map(|b| b.name.clone()),
            schema_version: c.schema.and_then(|b| b.version),
            messages: s.messages as i64,
            dead_letters: s.dead_letters as i64,
        }
    }
}

#[napi(object)]
pub struct DeadLetter {
    pub sequence: i64,
    pub origin_station: String,
    pub origin_partition: u32,
    pub origin_sequence: i64,
    pub origin_msg_id: Option<String>,
    pub group: String,
    pub deliveries: i64,
    pub last_error: String,
    pub dead_lettered_at: String,
    pub key: Option<String>,
    pub payload: Buffer,
    pub headers: Vec<Vec<String>>,
}

impl From<jetstation::DeadLetter> for DeadLetter {
    fn from(d: jetstation::DeadLetter) -> Self {
        Self {
            sequence: d.sequence as i64,
            origin_station: d.origin_station,
            origin_partition: d.origin_partition,
            origin_sequence: d.origin_sequence as i64,
            origin_msg_id: d.origin_msg_id,
            group: d.group,
            deliveries: d.deliveries as i64,
            last_error: d.last_error,
            dead_lettered_at: d.dead_lettered_at,
            key: d.key,
            payload: d.payload.to_vec().into(),
            headers: d.headers.into_iter().map(|(k, v)| vec![k, v]).collect(),
        }
    }
}

#[napi(object)]
pub struct SchemaVersion {
    pub name: String,
    pub version: u32,
    /// "json_schema", "protobuf" or "avro".
    pub format: String,
    pub source: String,
    pub message_type: Option<String>,
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

#[napi(object)]
pub struct SchemaInfo {
    pub name: String,
    pub format: String,
    pub compatibility: String,
    pub versions: Vec<u32>,
    pub latest: u32,
}

impl From<jetstation::SchemaInfo> for SchemaInfo {
    fn from(s: jetstation::SchemaInfo) -> Self {
        Self {
            name: s.name,
            format: s.format.as_str().into(),
            compatibility: s.compatibility.to_string(),
            versions: s.versions,
            latest: s.latest,
        }
    }
}

/// How one partition of a consumer group member is doing.
#[napi(object)]
pub struct PartitionHealth {
    pub partition: u32,
    /// Assigned to this member.
    pub owned: bool,
    /// Knows every message the broker counts as pending (runs and commits).
    pub in_sync: bool,
    /// Delivered, not yet committed messages held here.
    pub held: u32,
    /// Messages the broker had not delivered yet, at its last answer.
    pub undelivered: i64,
    /// Milliseconds since the epoch of the last delivery.
    pub last_delivery_ms: Option<f64>,
    /// The latest pull failure (repaired by the member itself).
    pub last_error: Option<String>,
}

impl From<jetstation::PartitionHealth> for PartitionHealth {
    fn from(h: jetstation::PartitionHealth) -> Self {
        Self {
            partition: h.partition,
            owned: h.owned,
            in_sync: h.in_sync,
            held: h.held as u32,
            undelivered: h.undelivered as i64,
            last_delivery_ms: h.last_delivery_unix().map(|s| s * 1000.0),
            last_error: h.last_error,
        }
    }
}

/// The latest message of one key, from a compacted station's state view.
#[napi(object)]
pub struct StateEntry {
    pub station: String,
    pub key: String,
    pub partition: u32,
    /// Sequence of the message in its partition.
    pub sequence: i64,
    pub payload: Buffer,
    pub headers: Vec<Vec<String>>,
    /// When the broker stored it, RFC 3339.
    pub time: String,
}

impl From<jetstation::StateEntry> for StateEntry {
    fn from(e: jetstation::StateEntry) -> Self {
        Self {
            station: e.station,
            key: e.key,
            partition: e.partition,
            sequence: e.sequence as i64,
            payload: e.payload.to_vec().into(),
            headers: e.headers.into_iter().map(|(k, v)| vec![k, v]).collect(),
            time: e.time,
        }
    }
}

/// A compacted station's state view, key by key (`next()` until null).
#[napi]
pub struct Snapshot {
    inner: tokio::sync::Mutex<jetstation::Snapshot>,
}

impl Snapshot {
    pub(crate) fn new(inner: jetstation::Snapshot) -> Self {
        Self {
            inner: tokio::sync::Mutex::new(inner),
        }
    }
}

#[napi]
impl Snapshot {
    /// The next key's latest message; null at the end.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<StateEntry>> {
        use crate::error::IntoJs;
        match self.inner.lock().await.next().await {
            Some(entry) => Ok(Some(entry.js()?.into())),
            None => Ok(None),
        }
    }
}

/// One send, from enqueue to the broker's answer.
#[napi(object)]
pub struct SendSample {
    pub station: String,
    pub partition: u32,
    pub seconds: f64,
    /// The error kind when the send failed.
    pub error: Option<String>,
}

/// Messages handed to the application since the last drain.
#[napi(object)]
pub struct ConsumedCount {
    pub station: String,
    pub group: String,
    pub partition: u32,
    pub count: f64,
}

/// What the core measured since the last drain.
#[napi(object)]
pub struct Telemetry {
    pub sends: Vec<SendSample>,
    pub consumed: Vec<ConsumedCount>,
    /// Send samples dropped because nobody drained them in time.
    pub dropped: f64,
}

impl From<jetstation::telemetry::Drained> for Telemetry {
    fn from(d: jetstation::telemetry::Drained) -> Self {
        Telemetry {
            sends: d
                .sends
                .into_iter()
                .map(|s| SendSample {
                    station: s.station.to_string(),
                    partition: s.partition,
                    seconds: s.seconds,
                    error: s.error.map(|k| k.as_str().to_string()),
                })
                .collect(),
            consumed: d
                .consumed
                .into_iter()
                .map(|c| ConsumedCount {
                    station: c.station,
                    group: c.group,
                    partition: c.partition,
                    count: c.count as f64,
                })
                .collect(),
            dropped: d.dropped as f64,
        }
    }
}
