//! `connect()` and the `Client` class: stations, dead letters, schemas.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::{
    consumer::{Consumer, ConsumerOptions},
    error::{IntoJs, invalid},
    producer::{Producer, ProducerOptions},
    types::{DeadLetter, Receipt, SchemaInfo, SchemaVersion, Station},
};

/// How to connect. Durations are milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct ConnectOptions {
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub nkey_seed: Option<String>,
    pub creds_file: Option<String>,
    pub tls_required: Option<bool>,
    pub tls_ca: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Prefix of every station this client creates or sees.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub connect_timeout_ms: Option<f64>,
    pub request_timeout_ms: Option<f64>,
    pub max_reconnect_delay_ms: Option<f64>,
}

/// Settings of a station. Durations are milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct StationConfig {
    pub partitions: Option<u32>,
    pub replicas: Option<u32>,
    /// "file" (default) or "memory".
    pub storage: Option<String>,
    pub max_age_ms: Option<f64>,
    pub max_bytes: Option<i64>,
    pub max_messages: Option<i64>,
    pub dedup_window_ms: Option<f64>,
    pub max_deliveries: Option<u32>,
    pub compaction: Option<bool>,
    /// How long a deleted key's tombstone stays (compacted stations; default
    /// maxAgeMs, or one day).
    pub delete_grace_ms: Option<f64>,
    /// Name of the schema every message must match.
    pub schema: Option<String>,
    /// A pinned schema version (default: follow the latest).
    pub schema_version: Option<u32>,
}

fn station_config(c: StationConfig) -> napi::Result<jetstation::StationConfig> {
    use jetstation::convert::{count, millis};
    let d = jetstation::StationConfig::default();
    Ok(jetstation::StationConfig {
        partitions: c.partitions.unwrap_or(d.partitions),
        replicas: c.replicas.map_or(d.replicas, |r| r as usize),
        storage: c.storage.map_or(Ok(d.storage), |s| s.parse()).js()?,
        max_age: c
            .max_age_ms
            .map(|m| millis("maxAgeMs", m))
            .transpose()
            .js()?,
        max_bytes: c.max_bytes.map(|b| count("maxBytes", b)).transpose().js()?,
        max_messages: c
            .max_messages
            .map(|m| count("maxMessages", m))
            .transpose()
            .js()?,
        dedup_window: c
            .dedup_window_ms
            .map_or(Ok(d.dedup_window), |m| millis("dedupWindowMs", m))
            .js()?,
        max_deliveries: c.max_deliveries.unwrap_or(d.max_deliveries),
        compaction: c.compaction.unwrap_or(d.compaction),
        delete_grace: c
            .delete_grace_ms
            .map(|m| millis("deleteGraceMs", m))
            .transpose()
            .js()?,
        schema: c.schema.map(|name| jetstation::SchemaBinding {
            name,
            version: c.schema_version,
        }),
    })
}

/// Connects and checks the server (2.12 or newer, JetStream enabled).
#[napi]
pub async fn connect(urls: Vec<String>, options: Option<ConnectOptions>) -> napi::Result<Client> {
    let o = options.unwrap_or_default();
    let mut c = jetstation::ConnectOptions::with_urls(urls);
    let millis = |what: &str, ms: f64| jetstation::convert::millis(what, ms).js();
    if let Some(ms) = o.connect_timeout_ms {
        c.connect_timeout = millis("connectTimeoutMs", ms)?;
    }
    if let Some(ms) = o.request_timeout_ms {
        c.request_timeout = millis("requestTimeoutMs", ms)?;
    }
    if let Some(ms) = o.max_reconnect_delay_ms {
        c.max_reconnect_delay = millis("maxReconnectDelayMs", ms)?;
    }
    c.auth = jetstation::Auth::from_parts(
        o.token,
        o.user,
        o.password,
        o.nkey_seed,
        o.creds_file.map(Into::into),
    )
    .js()?;
    c.tls = jetstation::Tls {
        required: o.tls_required.unwrap_or(false),
        root_certificates: o.tls_ca.map(Into::into),
        client_certificate: o.tls_cert.map(Into::into).zip(o.tls_key.map(Into::into)),
    };
    c.namespace = o.namespace;
    c.name = o.name;
    let inner = jetstation::Client::connect(c).await.js()?;
    Ok(Client { inner })
}

#[napi]
pub struct Client {
    inner: jetstation::Client,
}

#[napi]
impl Client {
    #[napi(getter)]
    pub fn server_version(&self) -> String {
        self.inner.server_version()
    }

    /// Starts keeping send durations and consumed counts for `drainTelemetry`.
    #[napi]
    pub fn enable_telemetry(&self) {
        self.inner.enable_telemetry();
    }

    /// The measurements kept since the last call.
    #[napi]
    pub fn drain_telemetry(&self) -> crate::types::Telemetry {
        self.inner.drain_telemetry().into()
    }

    #[napi]
    pub async fn create_station(
        &self,
        name: String,
        config: Option<StationConfig>,
    ) -> napi::Result<Station> {
        let config = station_config(config.unwrap_or_default())?;
        Ok(self.inner.create_station(&name, config).await.js()?.into())
    }

    #[napi]
    pub async fn update_station(
        &self,
        name: String,
        config: Option<StationConfig>,
    ) -> napi::Result<Station> {
        let config = station_config(config.unwrap_or_default())?;
        Ok(self.inner.update_station(&name, config).await.js()?.into())
    }

    #[napi]
    pub async fn station(&self, name: String) -> napi::Result<Station> {
        Ok(self.inner.station(&name).await.js()?.into())
    }

    #[napi]
    pub async fn stations(&self) -> napi::Result<Vec<Station>> {
        Ok(self
            .inner
            .stations()
            .await
            .js()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    #[napi]
    pub async fn delete_station(&self, name: String) -> napi::Result<()> {
        self.inner.delete_station(&name).await.js()
    }

    #[napi]
    pub async fn producer(
        &self,
        station: String,
        options: Option<ProducerOptions>,
    ) -> napi::Result<Producer> {
        let options = crate::producer::producer_options(options.unwrap_or_default())?;
        Ok(Producer::new(
            self.inner.producer(&station, options).await.js()?,
        ))
    }

    #[napi]
    pub async fn consumer(
        &self,
        station: String,
        group: String,
        options: Option<ConsumerOptions>,
    ) -> napi::Result<Consumer> {
        let options = crate::consumer::consumer_options(options.unwrap_or_default())?;
        Ok(Consumer::new(
            self.inner.consumer(&station, &group, options).await.js()?,
        ))
    }

    #[napi]
    pub async fn delete_group(&self, station: String, group: String) -> napi::Result<()> {
        self.inner.delete_group(&station, &group).await.js()
    }

    #[napi]
    pub async fn dead_letters(&self, station: String) -> napi::Result<Vec<DeadLetter>> {
        Ok(self
            .inner
            .dead_letters(&station)
            .await
            .js()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    #[napi]
    pub async fn replay_dead_letter(
        &self,
        station: String,
        sequence: i64,
    ) -> napi::Result<Receipt> {
        Ok(self
            .inner
            .replay_dead_letter(
                &station,
                jetstation::convert::count("sequence", sequence).js()?,
            )
            .await
            .js()?
            .into())
    }

    /// Registers a version: format is "json_schema", "protobuf" or "avro".
    #[napi]
    pub async fn register_schema(
        &self,
        name: String,
        format: String,
        source: String,
        message_type: Option<String>,
        compatibility: Option<String>,
    ) -> napi::Result<SchemaVersion> {
        let definition = jetstation::SchemaDefinition {
            format: format.parse().js()?,
            source,
            message_type,
        };
        let mode: jetstation::Compatibility = compatibility
            .as_deref()
            .unwrap_or("backward")
            .parse()
            .js()?;
        Ok(self
            .inner
            .register_schema_with(&name, definition, mode)
            .await
            .js()?
            .into())
    }

    #[napi]
    pub async fn schema(&self, name: String, version: Option<u32>) -> napi::Result<SchemaVersion> {
        Ok(self.inner.schema(&name, version).await.js()?.into())
    }

    #[napi]
    pub async fn schemas(&self) -> napi::Result<Vec<SchemaInfo>> {
        Ok(self
            .inner
            .schemas()
            .await
            .js()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// A station's partitions, dead letters and schema.
    #[napi]
    pub async fn station_stats(&self, station: String) -> napi::Result<crate::stats::StationStats> {
        Ok(self.inner.station_stats(&station).await.js()?.into())
    }

    /// A station's consumer groups: members, owners and lag per partition.
    #[napi]
    pub async fn groups(&self, station: String) -> napi::Result<Vec<crate::stats::GroupStats>> {
        Ok(self
            .inner
            .groups(&station)
            .await
            .js()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The latest message of `key` in a compacted station, or null.
    #[napi]
    pub async fn latest(
        &self,
        station: String,
        key: String,
    ) -> napi::Result<Option<crate::types::StateEntry>> {
        Ok(self
            .inner
            .latest(&station, &key)
            .await
            .js()?
            .map(Into::into))
    }

    /// Every key's latest message in a compacted station.
    #[napi]
    pub async fn snapshot(&self, station: String) -> napi::Result<crate::types::Snapshot> {
        Ok(crate::types::Snapshot::new(
            self.inner.snapshot(&station).await.js()?,
        ))
    }

    /// Removes every dead letter of `station` for good; returns how many.
    #[napi]
    pub async fn purge_dead_letters(&self, station: String) -> napi::Result<i64> {
        Ok(self.inner.purge_dead_letters(&station).await.js()? as i64)
    }

    /// Replays every dead letter of `station`, oldest first.
    #[napi]
    pub async fn replay_dead_letters(&self, station: String) -> napi::Result<Vec<Receipt>> {
        let receipts = self.inner.replay_dead_letters(&station).await.js()?;
        Ok(receipts.into_iter().map(Into::into).collect())
    }

    /// "none", "backward", "forward" or "full".
    #[napi]
    pub async fn set_schema_compatibility(&self, name: String, mode: String) -> napi::Result<()> {
        let mode: jetstation::Compatibility = mode.parse().js()?;
        self.inner.set_schema_compatibility(&name, mode).await.js()
    }

    #[napi]
    pub async fn delete_schema_version(&self, name: String, version: u32) -> napi::Result<()> {
        self.inner.delete_schema_version(&name, version).await.js()
    }

    /// `valueJson` is JSON text; returns the encoded bytes.
    #[napi]
    pub async fn encode_with_schema(
        &self,
        name: String,
        value_json: String,
        version: Option<u32>,
    ) -> napi::Result<Buffer> {
        let value: serde_json::Value = serde_json::from_str(&value_json)
            .map_err(|e| invalid(format!("value is not JSON: {e}")))?;
        Ok(self
            .inner
            .encode_with_schema(&name, version, &value)
            .await
            .js()?
            .into())
    }

    /// Returns JSON text.
    #[napi]
    pub async fn decode_with_schema(
        &self,
        name: String,
        payload: Buffer,
        version: Option<u32>,
    ) -> napi::Result<String> {
        let payload = payload.to_vec();
        Ok(self
            .inner
            .decode_with_schema(&name, version, &payload)
            .await
            .js()?
            .to_string())
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.clone().close().await.js()
    }
}
