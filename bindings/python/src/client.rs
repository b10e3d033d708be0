//! `connect()` and the `Client` class: stations, dead letters, schemas.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::{
    consumer::{Consumer, consumer_options},
    error::{IntoPy, seconds},
    producer::{Producer, producer_options},
    runtime::{Owner, awaitable},
    types::{DeadLetter, Receipt, SchemaInfo, SchemaVersion, Station},
};

#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (urls, *, token=None, user=None, password=None, nkey_seed=None, creds_file=None,
    tls_required=false, tls_ca=None, tls_cert=None, tls_key=None, namespace=None, name=None,
    connect_timeout=5.0, request_timeout=5.0, max_reconnect_delay=2.0))]
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
    connect_timeout: f64,
    request_timeout: f64,
    max_reconnect_delay: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let mut options = jetstation::ConnectOptions::with_urls(urls)
        .connect_timeout(seconds(connect_timeout, "connect_timeout")?)
        .request_timeout(seconds(request_timeout, "request_timeout")?)
        .max_reconnect_delay(seconds(max_reconnect_delay, "max_reconnect_delay")?);
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

#[allow(clippy::too_many_arguments)]
fn station_config(
    partitions: u32,
    replicas: usize,
    storage: &str,
    max_age: Option<f64>,
    max_bytes: Option<u64>,
    max_messages: Option<u64>,
    dedup_window: f64,
    max_deliveries: u32,
    compaction: bool,
    schema: Option<String>,
    schema_version: Option<u32>,
) -> PyResult<jetstation::StationConfig> {
    let mut c = jetstation::StationConfig::default()
        .partitions(partitions)
        .replicas(replicas)
        .storage(match storage {
            "file" => jetstation::Storage::File,
            "memory" => jetstation::Storage::Memory,
            other => {
                return Err(crate::error::to_py(jetstation::Error::new(
                    jetstation::ErrorKind::InvalidArgument,
                    format!("storage must be \"file\" or \"memory\", got {other:?}"),
                )));
            }
        })
        .dedup_window(seconds(dedup_window, "dedup_window")?)
        .max_deliveries(max_deliveries)
        .compaction(compaction);
    c.max_age = max_age.map(|a| seconds(a, "max_age")).transpose()?;
    c.max_bytes = max_bytes;
    c.max_messages = max_messages;
    c.schema = schema.map(|name| jetstation::SchemaBinding {
        name,
        version: schema_version,
    });
    Ok(c)
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

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, *, partitions=1, replicas=1, storage="file", max_age=None,
        max_bytes=None, max_messages=None, dedup_window=120.0, max_deliveries=5,
        compaction=false, schema=None, schema_version=None, update=false))]
    fn create_station<'py>(
        &self,
        py: Python<'py>,
        name: String,
        partitions: u32,
        replicas: usize,
        storage: &str,
        max_age: Option<f64>,
        max_bytes: Option<u64>,
        max_messages: Option<u64>,
        dedup_window: f64,
        max_deliveries: u32,
        compaction: bool,
        schema: Option<String>,
        schema_version: Option<u32>,
        update: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let config = station_config(
            partitions,
            replicas,
            storage,
            max_age,
            max_bytes,
            max_messages,
            dedup_window,
            max_deliveries,
            compaction,
            schema,
            schema_version,
        )?;
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
