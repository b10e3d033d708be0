//! Stations: durable, partitioned streams with their settings.
//!
//! A station of `n` partitions is `n` JetStream streams (see [`crate::names`])
//! plus one dead-letter stream. One stream per partition gives every
//! partition its own ordering domain and its own leader in a cluster, and
//! lets the producer send each partition's messages as atomic batches (see
//! [`crate::producer`]).
//!
//! The station's own settings (partition count, dead-letter policy, key
//! compaction, station-wide limits) are kept in each stream's metadata, so any
//! client can read a station back without another store. Station-wide byte
//! and message limits are divided evenly between partitions.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::stream;
use futures::TryStreamExt;

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    names::{StreamRole, validate_name},
    schema::SchemaBinding,
};

const META_VERSION: &str = "jetstation.version";
const META_STATION: &str = "jetstation.station";
const META_ROLE: &str = "jetstation.role";
const META_PARTITIONS: &str = "jetstation.partitions";
const META_MAX_DELIVERIES: &str = "jetstation.max_deliveries";
const META_COMPACTION: &str = "jetstation.compaction";
const META_MAX_BYTES: &str = "jetstation.max_bytes";
const META_MAX_MESSAGES: &str = "jetstation.max_messages";
const META_SCHEMA: &str = "jetstation.schema";
const META_DELETE_GRACE: &str = "jetstation.delete_grace";
const META_SCHEMA_VERSION: &str = "jetstation.schema_version";

/// Most partitions a station may have.
pub const MAX_PARTITIONS: u32 = 256;

/// Where the broker keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    #[default]
    File,
    Memory,
}

crate::vocabulary::vocabulary!(Storage, "storage", {
    File => "file",
    Memory => "memory",
});

/// Settings of a station. Build with [`StationConfig::default`] and the
/// chained setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationConfig {
    /// Number of partitions (ordering domains); fixed at creation.
    pub partitions: u32,
    /// Copies kept by a cluster (1 to 5).
    pub replicas: usize,
    /// File or memory; fixed at creation.
    pub storage: Storage,
    /// Messages older than this are removed.
    pub max_age: Option<Duration>,
    /// Station-wide size limit; the oldest messages are removed beyond it.
    pub max_bytes: Option<u64>,
    /// Station-wide message-count limit; the oldest messages are removed beyond it.
    pub max_messages: Option<u64>,
    /// Window in which a repeated message id is recognised as a duplicate.
    pub dedup_window: Duration,
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliveries: u32,
    /// Keep, beside the history, a state view with the latest message of
    /// every key (see [`crate::state`]); fixed at creation.
    pub compaction: bool,
    /// How long a deleted key's tombstone stays, in the history and in the
    /// state view, before the key is gone from both (compacted stations;
    /// default: `max_age`, or one day without one). Whole seconds.
    pub delete_grace: Option<Duration>,
    /// Schema every message must match.
    pub schema: Option<SchemaBinding>,
}

impl Default for StationConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            replicas: 1,
            storage: Storage::File,
            max_age: None,
            max_bytes: None,
            max_messages: None,
            dedup_window: Duration::from_secs(120),
            max_deliveries: 5,
            compaction: false,
            delete_grace: None,
            schema: None,
        }
    }
}

impl StationConfig {
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }
    pub fn max_messages(mut self, n: u64) -> Self {
        self.max_messages = Some(n);
        self
    }
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }
    pub fn compaction(mut self, on: bool) -> Self {
        self.compaction = on;
        self
    }
    pub fn delete_grace(mut self, grace: Duration) -> Self {
        self.delete_grace = Some(grace);
        self
    }
    /// Binds the latest version of schema `name`.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(SchemaBinding {
            name: name.into(),
            version: None,
        });
        self
    }
    /// Binds version `version` of schema `name`.
    pub fn schema_version(mut self, name: impl Into<String>, version: u32) -> Self {
        self.schema = Some(SchemaBinding {
            name: name.into(),
            version: Some(version),
        });
        self
    }

    fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(Error::invalid(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {}",
                self.partitions
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::invalid(format!(
                "replicas must be between 1 and 5, got {}",
                self.replicas
            )));
        }
        if self.max_deliveries == 0 {
            return Err(Error::invalid(
                "max_deliveries must be at least 1 (1 = dead-letter on the first failure)",
            ));
        }
        if self.dedup_window.is_zero() {
            return Err(Error::invalid(
                "dedup_window must be positive: retries rely on it to never store a duplicate",
            ));
        }
        if let Some(age) = self.max_age
            && age < self.dedup_window
        {
            return Err(Error::invalid(format!(
                "dedup_window ({:?}) must not exceed max_age ({age:?})",
                self.dedup_window
            )));
        }
        if let Some(grace) = self.delete_grace {
            if !self.compaction {
                return Err(Error::invalid(
                    "delete_grace applies to stations with compaction (a deleted key leaves \
                     their state view)",
                ));
            }
            if grace < Duration::from_secs(1) {
                return Err(Error::invalid(
                    "delete_grace must be at least 1 s (a tombstone lives whole seconds)",
                ));
            }
        }
        if self.max_bytes == Some(0) || self.max_messages == Some(0) {
            return Err(Error::invalid(
                "max_bytes and max_messages must be positive when set",
            ));
        }
        Ok(())
    }

    /// Human-readable list of the settings that differ from `other`.
    fn differences(&self, other: &StationConfig) -> Vec<String> {
        let mut out = Vec::new();
        macro_rules! cmp {
            ($field:ident) => {
                if self.$field != other.$field {
                    out.push(format!(
                        "{}: existing {:?}, requested {:?}",
                        stringify!($field),
                        self.$field,
                        other.$field
                    ));
                }
            };
        }
        cmp!(partitions);
        cmp!(replicas);
        cmp!(storage);
        cmp!(max_age);
        cmp!(max_bytes);
        cmp!(max_messages);
        cmp!(dedup_window);
        cmp!(max_deliveries);
        cmp!(compaction);
        cmp!(delete_grace);
        cmp!(schema);
        out
    }
}

/// A station as read from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    pub name: String,
    pub config: StationConfig,
    /// Messages currently stored, all partitions together.
    pub messages: u64,
    /// Messages currently in the dead-letter station.
    pub dead_letters: u64,
}

fn per_partition(total: Option<u64>, partitions: u32) -> i64 {
    match total {
        None => -1,
        Some(t) => t.div_ceil(u64::from(partitions)).min(i64::MAX as u64) as i64,
    }
}

impl Client {
    fn partition_stream_config(
        &self,
        station: &str,
        cfg: &StationConfig,
        partition: u32,
    ) -> stream::Config {
        let names = &self.inner.names;
        let mut metadata = HashMap::from([
            (META_VERSION.to_string(), "1".to_string()),
            (META_STATION.to_string(), station.to_string()),
            (META_ROLE.to_string(), format!("partition-{partition}")),
            (META_PARTITIONS.to_string(), cfg.partitions.to_string()),
            (
                META_MAX_DELIVERIES.to_string(),
                cfg.max_deliveries.to_string(),
            ),
            (META_COMPACTION.to_string(), cfg.compaction.to_string()),
        ]);
        if let Some(grace) = cfg.delete_grace {
            metadata.insert(
                META_DELETE_GRACE.to_string(),
                grace.as_secs().max(1).to_string(),
            );
        }
        if let Some(b) = cfg.max_bytes {
            metadata.insert(META_MAX_BYTES.to_string(), b.to_string());
        }
        if let Some(m) = cfg.max_messages {
            metadata.insert(META_MAX_MESSAGES.to_string(), m.to_string());
        }
        if let Some(binding) = &cfg.schema {
            metadata.insert(META_SCHEMA.to_string(), binding.name.clone());
            metadata.insert(
                META_SCHEMA_VERSION.to_string(),
                binding
                    .version
                    .map_or("latest".to_string(), |v| v.to_string()),
            );
        }
        stream::Config {
            name: names.partition_stream(station, partition),
            subjects: vec![names.partition_subjects(station, partition)],
            description: Some(format!(
                "jetstation station {station:?}, partition {partition} of {}",
                cfg.partitions
            )),
            storage: match cfg.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: cfg.replicas,
            max_age: cfg.max_age.unwrap_or_default(),
            max_bytes: per_partition(cfg.max_bytes, cfg.partitions),
            max_messages: per_partition(cfg.max_messages, cfg.partitions),
            // With compaction the history stays whole: the state view (see
            // `crate::state`) keeps the latest message per key.
            max_messages_per_subject: -1,
            // Tombstones expire (see `crate::state`).
            allow_message_ttl: cfg.compaction,
            duplicate_window: cfg.dedup_window,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            // The producer sends what queued up as one batch: fast-ingest
            // where the server has it (2.14+), atomic otherwise.
            allow_atomic_publish: true,
            allow_batch_publish: self.has_fast_batches(),
            metadata,
            ..Default::default()
        }
    }

    /// The dead-letter stream: `replicas` is at least the station's, and as
    /// many as the cluster allows (see [`Client::create_replicated`]).
    fn dead_letter_stream_config(
        &self,
        station: &str,
        cfg: &StationConfig,
        replicas: usize,
    ) -> stream::Config {
        let names = &self.inner.names;
        stream::Config {
            name: names.dead_letter_stream(station),
            subjects: vec![names.dead_letter_subject(station)],
            description: Some(format!("jetstation dead letters of station {station:?}")),
            storage: match cfg.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: replicas.max(cfg.replicas),
            duplicate_window: Duration::from_secs(120),
            allow_direct: true,
            metadata: HashMap::from([
                (META_VERSION.to_string(), "1".to_string()),
                (META_STATION.to_string(), station.to_string()),
                (META_ROLE.to_string(), "dead-letters".to_string()),
            ]),
            ..Default::default()
        }
    }

    /// Creates a station. Creating it again with the same settings is a
    /// no-op; with other settings it fails with `AlreadyExists` and names
    /// every difference (use [`Client::update_station`] to change it).
    #[tracing::instrument(skip(self, config), fields(station = name))]
    pub async fn create_station(&self, name: &str, config: StationConfig) -> Result<Station> {
        self.ensure_open()?;
        validate_name("station", name)?;
        config.validate()?;
        if let Some(binding) = &config.schema {
            self.check_binding(binding).await?;
        }
        // Check every existing piece before creating anything, so a refused
        // request leaves nothing half-created.
        if let Some(existing) = self.read_station_config(name).await? {
            let diff = existing.differences(&config);
            if !diff.is_empty() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "station {name:?} already exists with other settings ({}); use \
                         update_station to change retention, replicas, dedup window or \
                         max_deliveries, or choose another name",
                        diff.join("; ")
                    ),
                ));
            }
        }
        if config.replicas == 1 && config.storage == Storage::File && self.is_clustered() {
            tracing::warn!(
                station = name,
                "station has 1 replica on a cluster: a node's disk failure or power loss \
                 loses its messages (the server syncs to disk every 2 minutes by default); \
                 use replicas=3, and sync_interval: always on the servers for power-loss safety"
            );
        }
        for p in 0..config.partitions {
            self.ensure_stream(self.partition_stream_config(name, &config, p))
                .await?;
        }
        if config.compaction {
            for p in 0..config.partitions {
                self.ensure_stream(self.state_stream_config(name, &config, p))
                    .await?;
            }
        }
        self.create_replicated(|replicas| {
            self.ensure_stream(self.dead_letter_stream_config(name, &config, replicas))
        })
        .await?;
        self.station(name).await
    }

    /// Changes the mutable settings of an existing station: retention
    /// (max age, bytes, messages), replicas, dedup window, max deliveries and
    /// the schema binding.
    #[tracing::instrument(skip(self, config), fields(station = name))]
    pub async fn update_station(&self, name: &str, config: StationConfig) -> Result<Station> {
        self.ensure_open()?;
        validate_name("station", name)?;
        config.validate()?;
        let existing = self
            .read_station_config(name)
            .await?
            .ok_or_else(|| unknown_station(name))?;
        if let Some(binding) = &config.schema {
            self.check_binding(binding).await?;
        }
        for (field, changed) in [
            ("partitions", existing.partitions != config.partitions),
            ("storage", existing.storage != config.storage),
            ("compaction", existing.compaction != config.compaction),
        ] {
            if changed {
                return Err(Error::invalid(format!(
                    "{field} of station {name:?} cannot change after creation; create a new \
                     station and replay the messages into it"
                )));
            }
        }
        let js = &self.inner.js;
        for p in 0..config.partitions {
            js.update_stream(self.partition_stream_config(name, &config, p))
                .await
                .map_err(|e| Error::from_nats(&format!("updating station {name:?}"), &e))?;
        }
        if config.compaction {
            // Created when missing: a compacted station from before the state
            // view gets one on its first update.
            for p in 0..config.partitions {
                js.create_or_update_stream(self.state_stream_config(name, &config, p))
                    .await
                    .map_err(|e| Error::from_nats(&format!("updating station {name:?}"), &e))?;
            }
        }
        let dls = self.inner.names.dead_letter_stream(name);
        let dls_replicas = self
            .stream_info(&dls)
            .await?
            .map_or(config.replicas, |i| i.config.num_replicas);
        js.update_stream(self.dead_letter_stream_config(name, &config, dls_replicas))
            .await
            .map_err(|e| Error::from_nats(&format!("updating station {name:?}"), &e))?;
        self.station(name).await
    }

    /// Reads a station (settings and counts).
    pub async fn station(&self, name: &str) -> Result<Station> {
        self.ensure_open()?;
        validate_name("station", name)?;
        let config = self
            .read_station_config(name)
            .await?
            .ok_or_else(|| unknown_station(name))?;
        let mut messages = 0;
        for p in 0..config.partitions {
            messages += self
                .stream_info(&self.inner.names.partition_stream(name, p))
                .await?
                .map(|i| i.state.messages)
                .unwrap_or(0);
        }
        let dead_letters = self
            .stream_info(&self.inner.names.dead_letter_stream(name))
            .await?
            .map(|i| i.state.messages)
            .unwrap_or(0);
        Ok(Station {
            name: name.to_string(),
            config,
            messages,
            dead_letters,
        })
    }

    /// Lists the stations of this client's namespace, sorted by name.
    pub async fn stations(&self) -> Result<Vec<Station>> {
        self.ensure_open()?;
        let names = &self.inner.names;
        let prefix = names.list_prefix();
        let all: Vec<String> = self
            .inner
            .js
            .stream_names()
            .try_collect()
            .await
            .map_err(|e| Error::from_nats("listing stations", &e))?;
        let mut stations: Vec<String> = all
            .iter()
            .filter(|s| s.starts_with(&prefix))
            .filter_map(|s| match names.parse_stream(s) {
                Some((station, StreamRole::Partition(0))) => Some(station),
                _ => None,
            })
            .collect();
        stations.sort();
        let mut out = Vec::with_capacity(stations.len());
        for s in stations {
            out.push(self.station(&s).await?);
        }
        Ok(out)
    }

    /// Deletes a station, its messages and its dead letters.
    #[tracing::instrument(skip(self), fields(station = name))]
    pub async fn delete_station(&self, name: &str) -> Result<()> {
        self.ensure_open()?;
        validate_name("station", name)?;
        let config = self
            .read_station_config(name)
            .await?
            .ok_or_else(|| unknown_station(name))?;
        let names = &self.inner.names;
        let mut streams: Vec<String> = (0..config.partitions)
            .map(|p| names.partition_stream(name, p))
            .collect();
        streams.push(names.dead_letter_stream(name));
        if config.compaction {
            // First: they source the partitions.
            let state = (0..config.partitions).map(|p| names.state_stream(name, p));
            streams.splice(0..0, state);
        }
        for s in streams {
            match self.inner.js.delete_stream(&s).await {
                Ok(_) => {}
                Err(e) if Error::from_nats("", &e).kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::from_nats(&format!("deleting station {name:?}"), &e));
                }
            }
        }
        Ok(())
    }

    /// The station's settings, or `None` when it does not exist.
    pub(crate) async fn read_station_config(&self, name: &str) -> Result<Option<StationConfig>> {
        let stream = self.inner.names.partition_stream(name, 0);
        let Some(info) = self.stream_info(&stream).await? else {
            return Ok(None);
        };
        let c = &info.config;
        let meta = |k: &str| c.metadata.get(k).cloned();
        let parse = |k: &str| meta(k).and_then(|v| v.parse::<u64>().ok());
        if meta(META_VERSION).is_none() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "stream {stream:?} exists but was not created by jetstation; remove it or \
                     pick another station name"
                ),
            ));
        }
        Ok(Some(StationConfig {
            partitions: parse(META_PARTITIONS).unwrap_or(1) as u32,
            replicas: c.num_replicas,
            storage: match c.storage {
                stream::StorageType::Memory => Storage::Memory,
                stream::StorageType::File => Storage::File,
            },
            max_age: (!c.max_age.is_zero()).then_some(c.max_age),
            max_bytes: parse(META_MAX_BYTES),
            max_messages: parse(META_MAX_MESSAGES),
            dedup_window: c.duplicate_window,
            max_deliveries: parse(META_MAX_DELIVERIES).unwrap_or(5) as u32,
            compaction: meta(META_COMPACTION).as_deref() == Some("true"),
            delete_grace: parse(META_DELETE_GRACE).map(Duration::from_secs),
            schema: meta(META_SCHEMA).map(|name| SchemaBinding {
                name,
                version: meta(META_SCHEMA_VERSION).and_then(|v| v.parse().ok()),
            }),
        }))
    }

    pub(crate) async fn stream_info(&self, stream: &str) -> Result<Option<stream::Info>> {
        match self.inner.js.get_stream(stream).await {
            Ok(s) => Ok(Some(s.cached_info().clone())),
            Err(e) => {
                let err = Error::from_nats(&format!("reading stream {stream}"), &e);
                if err.kind() == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn ensure_stream(&self, config: stream::Config) -> Result<()> {
        let name = config.name.clone();
        match self.inner.js.create_stream(config).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = Error::from_nats(&format!("creating stream {name}"), &e);
                Err(err)
            }
        }
    }
}

pub(crate) fn unknown_station(name: &str) -> Error {
    Error::not_found(format!(
        "station {name:?} does not exist; create it first with create_station"
    ))
}
