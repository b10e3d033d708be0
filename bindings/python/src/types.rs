//! Plain value classes returned to Python (read-only attributes).

use pyo3::{prelude::*, types::PyBytes};

/// Bytes produced without the GIL, becoming Python `bytes` when returned.
#[derive(Debug, Clone)]
pub(crate) struct Bytes(pub(crate) bytes::Bytes);

impl<'py> IntoPyObject<'py> for Bytes {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;
    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

#[pyclass(
    module = "jetstation._native",
    frozen,
    get_all,
    eq,
    str = "{station}/{partition}@{sequence}"
)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Receipt {
    pub(crate) station: String,
    pub(crate) partition: u32,
    pub(crate) sequence: u64,
    pub(crate) duplicate: bool,
    pub(crate) msg_id: String,
}

#[pymethods]
impl Receipt {
    fn __repr__(&self) -> String {
        format!(
            "Receipt(station={:?}, partition={}, sequence={}, duplicate={}, msg_id={:?})",
            self.station,
            self.partition,
            self.sequence,
            if self.duplicate { "True" } else { "False" },
            self.msg_id
        )
    }
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

#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct Station {
    pub(crate) name: String,
    pub(crate) partitions: u32,
    pub(crate) replicas: usize,
    pub(crate) storage: String,
    pub(crate) max_age: Option<f64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_messages: Option<u64>,
    pub(crate) dedup_window: f64,
    pub(crate) max_deliveries: u32,
    pub(crate) compaction: bool,
    pub(crate) delete_grace: Option<f64>,
    pub(crate) schema: Option<String>,
    pub(crate) schema_version: Option<u32>,
    pub(crate) messages: u64,
    pub(crate) dead_letters: u64,
}

#[pymethods]
impl Station {
    fn __repr__(&self) -> String {
        format!(
            "Station(name={:?}, partitions={}, messages={}, dead_letters={})",
            self.name, self.partitions, self.messages, self.dead_letters
        )
    }
}

impl From<jetstation::Station> for Station {
    fn from(s: jetstation::Station) -> Self {
        let c = s.config;
        Self {
            name: s.name,
            partitions: c.partitions,
            replicas: c.replicas,
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

#[pyclass(module = "jetstation._native", frozen)]
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    #[pyo3(get)]
    pub(crate) sequence: u64,
    #[pyo3(get)]
    pub(crate) origin_station: String,
    #[pyo3(get)]
    pub(crate) origin_partition: u32,
    #[pyo3(get)]
    pub(crate) origin_sequence: u64,
    #[pyo3(get)]
    pub(crate) origin_msg_id: Option<String>,
    #[pyo3(get)]
    pub(crate) group: String,
    #[pyo3(get)]
    pub(crate) deliveries: u64,
    #[pyo3(get)]
    pub(crate) last_error: String,
    #[pyo3(get)]
    pub(crate) dead_lettered_at: String,
    #[pyo3(get)]
    pub(crate) key: Option<String>,
    pub(crate) payload: bytes::Bytes,
    #[pyo3(get)]
    pub(crate) headers: Vec<(String, String)>,
}

#[pymethods]
impl DeadLetter {
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.payload)
    }

    fn __repr__(&self) -> String {
        format!(
            "DeadLetter(sequence={}, origin={}/{}@{}, deliveries={}, last_error={:?})",
            self.sequence,
            self.origin_station,
            self.origin_partition,
            self.origin_sequence,
            self.deliveries,
            self.last_error
        )
    }
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
            payload: d.payload,
            headers: d.headers,
        }
    }
}

#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct SchemaVersion {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) format: String,
    pub(crate) source: String,
    pub(crate) message_type: Option<String>,
    pub(crate) created: String,
}

#[pymethods]
impl SchemaVersion {
    fn __repr__(&self) -> String {
        format!(
            "SchemaVersion(name={:?}, version={}, format={:?})",
            self.name, self.version, self.format
        )
    }
}

impl From<jetstation::SchemaVersion> for SchemaVersion {
    fn from(v: jetstation::SchemaVersion) -> Self {
        Self {
            name: v.name,
            version: v.version,
            format: v.format.as_str().to_string(),
            source: v.source,
            message_type: v.message_type,
            created: v.created,
        }
    }
}

#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct SchemaInfo {
    pub(crate) name: String,
    pub(crate) format: String,
    pub(crate) compatibility: String,
    pub(crate) versions: Vec<u32>,
    pub(crate) latest: u32,
}

impl From<jetstation::SchemaInfo> for SchemaInfo {
    fn from(s: jetstation::SchemaInfo) -> Self {
        Self {
            name: s.name,
            format: s.format.as_str().to_string(),
            compatibility: s.compatibility.to_string(),
            versions: s.versions,
            latest: s.latest,
        }
    }
}

/// How one partition of a consumer group member is doing.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct PartitionHealth {
    pub(crate) partition: u32,
    pub(crate) owned: bool,
    pub(crate) in_sync: bool,
    pub(crate) held: usize,
    pub(crate) undelivered: u64,
    /// POSIX time of the last delivery, if any.
    pub(crate) last_delivery: Option<f64>,
    pub(crate) last_error: Option<String>,
}

#[pymethods]
impl PartitionHealth {
    fn __repr__(&self) -> String {
        format!(
            "PartitionHealth(partition={}, owned={}, in_sync={}, held={}, undelivered={})",
            self.partition, self.owned, self.in_sync, self.held, self.undelivered
        )
    }
}

impl From<jetstation::PartitionHealth> for PartitionHealth {
    fn from(h: jetstation::PartitionHealth) -> Self {
        Self {
            partition: h.partition,
            owned: h.owned,
            in_sync: h.in_sync,
            held: h.held,
            undelivered: h.undelivered,
            last_delivery: h.last_delivery_unix(),
            last_error: h.last_error,
        }
    }
}

/// The latest message of one key, from a compacted station's state view.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct StateEntry {
    pub(crate) station: String,
    pub(crate) key: String,
    pub(crate) partition: u32,
    pub(crate) sequence: u64,
    pub(crate) payload: Bytes,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) time: String,
}

#[pymethods]
impl StateEntry {
    fn __repr__(&self) -> String {
        format!(
            "StateEntry(station={:?}, key={:?}, partition={}, sequence={})",
            self.station, self.key, self.partition, self.sequence
        )
    }
}

impl From<jetstation::StateEntry> for StateEntry {
    fn from(e: jetstation::StateEntry) -> Self {
        Self {
            station: e.station,
            key: e.key,
            partition: e.partition,
            sequence: e.sequence,
            payload: Bytes(e.payload),
            headers: e.headers,
            time: e.time,
        }
    }
}
