//! `connect()` and the `Client` class: stations, dead letters, schemas.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::{
    consumer::{Consumer, consumer_options},
    error::{IntoPy, invalid},
    producer::{Producer, producer_options},
    runtime::{Owner, awaitable},
    types::{DeadLetter, Receipt, SchemaInfo, SchemaVersion, Station},
};

#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (urls, *, token=None, user=None, password=None, nkey_seed=None, creds_file=None,
    tls_required=false, tls_ca=None, tls_cert=None, tls_key=None, namespace=None, name=None,
    connect_timeout=None, request_timeout=None, max_reconnect_delay=None))]
pub(crate) fn connect<'py>(
    py: Python<'py>,
    urls: Vec<String>,
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
    nkey_seed: Option<String>,
    creds_file: Option<PathBuf>,
    tls_required: bool,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    namespace: Option<String>,
    name: Option<String>,
    connect_timeout: Option<f64>,
    request_timeout: Option<f64>,
    max_reconnect_delay: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    use jetstation::convert::seconds;
    let mut options = jetstation::ConnectOptions::with_urls(urls);
    if let Some(s) = connect_timeout {
        options.connect_timeout = seconds("connect_timeout", s).py_err()?;
    }
    if let Some(s) = request_timeout {
        options.request_timeout = seconds("request_timeout", s).py_err()?;
    }
    if let Some(s) = max_reconnect_delay {
        options.max_reconnect_delay = seconds("max_reconnect_delay", s).py_err()?;
    }
    options.auth =
        jetstation::Auth::from_parts(token, user, password, nkey_seed, creds_file).py_err()?;
    options.tls = jetstation::Tls {
        required: tls_required,
        root_certificates: tls_ca,
        client_certificate: tls_cert.zip(tls_key),
    };
    options.namespace = namespace;
    options.name = name;
    awaitable(py, async move {
        let inner = jetstation::Client::connect(options).await.py_err()?;
        Ok(Client {
            inner,
            owner: Owner::current(),
        })
    })
}

#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Client {
    inner: jetstation::Client,
    owner: Owner,
}

impl Client {
    fn client(&self) -> PyResult<jetstation::Client> {
        self.owner.check()?;
        Ok(self.inner.clone())
    }
}

/// Station settings from keyword arguments (unknown names are refused;
/// what is not given keeps the core's default).
fn station_config(
    kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<(jetstation::StationConfig, bool)> {
    use jetstation::convert::seconds;
    let mut c = jetstation::StationConfig::default();
    let mut update = false;
    let Some(kwargs) = kwargs else {
        return Ok((c, update));
    };
    let mut schema_version = None;
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "partitions" => c.partitions = v.extract()?,
            "replicas" => c.replicas = v.extract()?,
            "storage" => c.storage = v.extract::<String>()?.parse().py_err()?,
            "max_age" => {
                c.max_age = v
                    .extract::<Option<f64>>()?
                    .map(|s| seconds("max_age", s))
                    .transpose()
                    .py_err()?
            }
            "delete_grace" => {
                c.delete_grace = v
                    .extract::<Option<f64>>()?
                    .map(|s| seconds("delete_grace", s))
                    .transpose()
                    .py_err()?
            }
            "max_bytes" => c.max_bytes = v.extract()?,
            "max_messages" => c.max_messages = v.extract()?,
            "dedup_window" => c.dedup_window = seconds("dedup_window", v.extract()?).py_err()?,
            "max_deliveries" => c.max_deliveries = v.extract()?,
            "compaction" => c.compaction = v.extract()?,
            "schema" => {
                c.schema = v
                    .extract::<Option<String>>()?
                    .map(|name| jetstation::SchemaBinding {
                        name,
                        version: None,
                    })
            }
            "schema_version" => schema_version = v.extract()?,
            "update" => update = v.extract()?,
            other => return Err(invalid(format!("unknown station setting {other:?}"))),
        }
    }
    match (&mut c.schema, schema_version) {
        (Some(binding), version) => binding.version = version,
        (None, Some(_)) => return Err(invalid("schema_version needs schema")),
        (None, None) => {}
    }
    Ok((c, update))
}

#[pymethods]
impl Client {
    #[getter]
    fn server_version(&self) -> String {
        self.inner.server_version()
    }

    #[getter]
    fn namespace(&self) -> Option<String> {
        self.inner.namespace().map(String::from)
    }

    /// Starts keeping send durations and consumed counts for
    /// `drain_telemetry` (used by `jetstation.telemetry`).
    fn enable_telemetry(&self) {
        self.inner.enable_telemetry();
    }

    /// `(sends, consumed, dropped)`: each send as `(station, partition,
    /// seconds, error kind or None)`, consumed counts as `(station, group,
    /// partition, count)`, and the send samples dropped for want of a drain.
    #[allow(clippy::type_complexity)]
    fn drain_telemetry(
        &self,
    ) -> (
        Vec<(String, u32, f64, Option<&'static str>)>,
        Vec<(String, String, u32, u64)>,
        u64,
    ) {
        let drained = self.inner.drain_telemetry();
        (
            drained
                .sends
                .into_iter()
                .map(|s| {
                    (
                        s.station.to_string(),
                        s.partition,
                        s.seconds,
                        s.error.map(|k| k.as_str()),
                    )
                })
                .collect(),
            drained
                .consumed
                .into_iter()
                .map(|c| (c.station, c.group, c.partition, c.count))
                .collect(),
            drained.dropped,
        )
    }

    #[pyo3(signature = (name, **settings))]
    fn create_station<'py>(
        &self,
        py: Python<'py>,
        name: String,
        settings: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let (config, update) = station_config(settings)?;
        awaitable(py, async move {
            let station = if update {
                client.update_station(&name, config).await
            } else {
                client.create_station(&name, config).await
            };
            Ok(Station::from(station.py_err()?))
        })
    }

    fn station<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            Ok(Station::from(client.station(&name).await.py_err()?))
        })
    }

    fn stations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let all = client.stations().await.py_err()?;
            Ok(all.into_iter().map(Station::from).collect::<Vec<_>>())
        })
    }

    fn delete_station<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(
            py,
            async move { client.delete_station(&name).await.py_err() },
        )
    }

    #[pyo3(signature = (station, **options))]
    fn producer<'py>(
        &self,
        py: Python<'py>,
        station: String,
        options: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let options = producer_options(options)?;
        let owner = self.owner;
        awaitable(py, async move {
            let inner = client.producer(&station, options).await.py_err()?;
            Ok(Producer::new(inner, owner))
        })
    }

    #[pyo3(signature = (station, group, **options))]
    fn consumer<'py>(
        &self,
        py: Python<'py>,
        station: String,
        group: String,
        options: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let options = consumer_options(options)?;
        let owner = self.owner;
        awaitable(py, async move {
            let inner = client.consumer(&station, &group, options).await.py_err()?;
            Ok(Consumer::new(inner, owner))
        })
    }

    fn delete_group<'py>(
        &self,
        py: Python<'py>,
        station: String,
        group: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            client.delete_group(&station, &group).await.py_err()
        })
    }

    fn dead_letters<'py>(&self, py: Python<'py>, station: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let letters = client.dead_letters(&station).await.py_err()?;
            Ok(letters
                .into_iter()
                .map(DeadLetter::from)
                .collect::<Vec<_>>())
        })
    }

    /// The latest message of `key` in a compacted station, or `None`.
    fn latest<'py>(
        &self,
        py: Python<'py>,
        station: String,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            Ok(client
                .latest(&station, &key)
                .await
                .py_err()?
                .map(crate::types::StateEntry::from))
        })
    }

    /// A station's partitions, dead letters and schema.
    fn station_stats<'py>(&self, py: Python<'py>, station: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            Ok(crate::stats::StationStats::from(
                client.station_stats(&station).await.py_err()?,
            ))
        })
    }

    /// A station's consumer groups: members, owners and lag per partition.
    fn groups<'py>(&self, py: Python<'py>, station: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let groups = client.groups(&station).await.py_err()?;
            Ok(groups
                .into_iter()
                .map(crate::stats::GroupStats::from)
                .collect::<Vec<_>>())
        })
    }

    /// Every key's latest message in a compacted station (an async iterator).
    fn snapshot<'py>(&self, py: Python<'py>, station: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let snapshot = client.snapshot(&station).await.py_err()?;
            Ok(crate::snapshot::Snapshot::new(snapshot))
        })
    }

    /// Replays every dead letter of `station`, oldest first; one receipt each.
    fn purge_dead_letters<'py>(
        &self,
        py: Python<'py>,
        station: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            client.purge_dead_letters(&station).await.py_err()
        })
    }

    fn replay_dead_letters<'py>(
        &self,
        py: Python<'py>,
        station: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let receipts = client.replay_dead_letters(&station).await.py_err()?;
            Ok(receipts.into_iter().map(Receipt::from).collect::<Vec<_>>())
        })
    }

    fn replay_dead_letter<'py>(
        &self,
        py: Python<'py>,
        station: String,
        sequence: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            Ok(Receipt::from(
                client
                    .replay_dead_letter(&station, sequence)
                    .await
                    .py_err()?,
            ))
        })
    }

    #[pyo3(signature = (name, format, source, *, message_type=None, compatibility=None))]
    fn register_schema<'py>(
        &self,
        py: Python<'py>,
        name: String,
        format: &str,
        source: String,
        message_type: Option<String>,
        compatibility: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let definition = jetstation::SchemaDefinition {
            format: format.parse().py_err()?,
            source,
            message_type,
        };
        let mode: jetstation::Compatibility =
            compatibility.unwrap_or("backward").parse().py_err()?;
        awaitable(py, async move {
            let v = client
                .register_schema_with(&name, definition, mode)
                .await
                .py_err()?;
            Ok(SchemaVersion::from(v))
        })
    }

    #[pyo3(signature = (name, version=None))]
    fn schema<'py>(
        &self,
        py: Python<'py>,
        name: String,
        version: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            Ok(SchemaVersion::from(
                client.schema(&name, version).await.py_err()?,
            ))
        })
    }

    fn schemas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            Ok(client
                .schemas()
                .await
                .py_err()?
                .into_iter()
                .map(SchemaInfo::from)
                .collect::<Vec<_>>())
        })
    }

    fn set_schema_compatibility<'py>(
        &self,
        py: Python<'py>,
        name: String,
        mode: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let mode: jetstation::Compatibility = mode.parse().py_err()?;
        awaitable(py, async move {
            client.set_schema_compatibility(&name, mode).await.py_err()
        })
    }

    fn delete_schema_version<'py>(
        &self,
        py: Python<'py>,
        name: String,
        version: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            client.delete_schema_version(&name, version).await.py_err()
        })
    }

    /// `value_json` is JSON text; returns the encoded bytes.
    #[pyo3(signature = (name, value_json, version=None))]
    fn encode_with_schema<'py>(
        &self,
        py: Python<'py>,
        name: String,
        value_json: String,
        version: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let value: serde_json::Value = serde_json::from_str(&value_json).map_err(|e| {
                crate::error::to_py(jetstation::Error::new(
                    jetstation::ErrorKind::InvalidArgument,
                    format!("value is not JSON-serialisable: {e}"),
                ))
            })?;
            let bytes = client
                .encode_with_schema(&name, version, &value)
                .await
                .py_err()?;
            Ok(crate::types::Bytes(bytes.into()))
        })
    }

    /// Returns JSON text.
    #[pyo3(signature = (name, payload, version=None))]
    fn decode_with_schema<'py>(
        &self,
        py: Python<'py>,
        name: String,
        payload: Vec<u8>,
        version: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move {
            let value = client
                .decode_with_schema(&name, version, &payload)
                .await
                .py_err()?;
            Ok(value.to_string())
        })
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        awaitable(py, async move { client.close().await.py_err() })
    }
}
