//! The `Consumer` class (an async iterator of `Delivery`).

use std::sync::Mutex;

use pyo3::{
    exceptions::PyStopAsyncIteration,
    prelude::*,
    types::{PyBytes, PyDict},
};

use crate::{
    error::{IntoPy, invalid, seconds, to_py},
    runtime::{Owner, awaitable},
};

/// Consumer options from keyword arguments (unknown names are refused).
pub(crate) fn consumer_options(
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<jetstation::ConsumerOptions> {
    let mut o = jetstation::ConsumerOptions::default();
    let Some(kwargs) = kwargs else { return Ok(o) };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "concurrency" => o.concurrency = v.extract()?,
            "start" => {
                o.start = if let Ok(s) = v.extract::<String>() {
                    match s.as_str() {
                        "earliest" => jetstation::StartPosition::Earliest,
                        "latest" => jetstation::StartPosition::Latest,
                        other => {
                            return Err(invalid(format!(
                                "start must be \"earliest\", \"latest\", a sequence (int) or a \
                                 datetime, got {other:?}"
                            )));
                        }
                    }
                } else if let Ok(seq) = v.extract::<u64>() {
                    jetstation::StartPosition::Sequence(seq)
                } else {
                    // A timezone-aware datetime, read as a POSIX timestamp.
                    let ts: f64 = v.call_method0("timestamp")?.extract()?;
                    let t = time::OffsetDateTime::from_unix_timestamp_nanos((ts * 1e9) as i128)
                        .map_err(|e| invalid(format!("start time out of range: {e}")))?;
                    jetstation::StartPosition::Time(t)
                }
            }
            "ack_wait" => o.ack_wait = seconds(v.extract()?, "ack_wait")?,
            "max_ack_pending" => o.max_ack_pending = v.extract()?,
            "redelivery_delay" => o.redelivery_delay = seconds(v.extract()?, "redelivery_delay")?,
            "max_redelivery_delay" => {
                o.max_redelivery_delay = seconds(v.extract()?, "max_redelivery_delay")?
            }
            "fetch_batch" => o.fetch_batch = v.extract()?,
            "handover_timeout" => o.handover_timeout = seconds(v.extract()?, "handover_timeout")?,
            other => return Err(invalid(format!("unknown consumer option {other:?}"))),
        }
    }
    Ok(o)
}

#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Consumer {
    inner: jetstation::Consumer,
    owner: Owner,
}

impl Consumer {
    pub(crate) fn new(inner: jetstation::Consumer, owner: Owner) -> Self {
        Self { inner, owner }
    }

    fn consumer(&self) -> PyResult<jetstation::Consumer> {
        self.owner.check()?;
        Ok(self.inner.clone())
    }
}

#[pymethods]
impl Consumer {
    #[getter]
    fn station(&self) -> String {
        self.inner.station().to_string()
    }

    #[getter]
    fn group(&self) -> String {
        self.inner.group().to_string()
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next delivery; raises `StopAsyncIteration` once closed.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let consumer = self.consumer()?;
        awaitable(py, async move {
            match consumer.next().await {
                Some(d) => Ok(Delivery::new(d.py_err()?)),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let consumer = self.consumer()?;
        awaitable(py, async move { consumer.close().await.py_err() })
    }

    /// How each partition of this member is doing.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let consumer = self.consumer()?;
        awaitable(py, async move {
            let parts = consumer.health().await.py_err()?;
            Ok(parts
                .into_iter()
                .map(crate::types::PartitionHealth::from)
                .collect::<Vec<_>>())
        })
    }
}

/// One received message; settle it with `ack`, `nack` or `term`.
#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Delivery {
    message: jetstation::ReceivedMessage,
    delivery: Mutex<Option<jetstation::Delivery>>,
}

impl Delivery {
    fn new(d: jetstation::Delivery) -> Self {
        Self {
            message: d.message().clone(),
            delivery: Mutex::new(Some(d)),
        }
    }

    fn take(&self) -> PyResult<jetstation::Delivery> {
        self.delivery.lock().unwrap().take().ok_or_else(|| {
            to_py(jetstation::Error::new(
                jetstation::ErrorKind::InvalidArgument,
                "this message was already acked, nacked or terminated",
            ))
        })
    }
}

#[pymethods]
impl Delivery {
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.message.payload)
    }
    #[getter]
    fn key(&self) -> Option<String> {
        self.message.key.clone()
    }
    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.message.headers.clone()
    }
    #[getter]
    fn station(&self) -> String {
        self.message.station.clone()
    }
    #[getter]
    fn partition(&self) -> u32 {
        self.message.partition
    }
    #[getter]
    fn sequence(&self) -> u64 {
        self.message.sequence
    }
    #[getter]
    fn deliveries(&self) -> u64 {
        self.message.deliveries
    }
    #[getter]
    fn msg_id(&self) -> Option<String> {
        self.message.msg_id.clone()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.message.header(name).map(String::from)
    }

    fn ack<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = self.take()?;
        awaitable(py, async move { d.ack().py_err() })
    }

    #[pyo3(signature = (delay=None, reason=None))]
    fn nack<'py>(
        &self,
        py: Python<'py>,
        delay: Option<f64>,
        reason: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let delay = delay.map(|s| seconds(s, "delay")).transpose()?;
        let d = self.take()?;
        let reason = reason.unwrap_or_else(|| "nacked by the application".into());
        awaitable(
            py,
            async move { d.nack_with_reason(reason, delay).py_err() },
        )
    }

    #[pyo3(signature = (reason=None))]
    fn term<'py>(&self, py: Python<'py>, reason: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let d = self.take()?;
        let reason = reason.unwrap_or_else(|| "terminated by the application".into());
        awaitable(py, async move { d.term(reason).py_err() })
    }

    fn in_progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let raw = self.delivery.lock().unwrap();
        let Some(d) = raw.as_ref() else {
            return Err(invalid("this message was already settled"));
        };
        let fut = d.in_progress_future();
        drop(raw);
        awaitable(py, async move { fut.await.py_err() })
    }

    fn __repr__(&self) -> String {
        format!(
            "Delivery(station={:?}, partition={}, sequence={}, key={:?}, deliveries={})",
            self.message.station,
            self.message.partition,
            self.message.sequence,
            self.message.key,
            self.message.deliveries
        )
    }
}
