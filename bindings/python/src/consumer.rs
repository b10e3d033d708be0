//! The `Consumer` class (an async iterator of `Delivery`).

use pyo3::{
    exceptions::PyStopAsyncIteration,
    prelude::*,
    types::{PyBytes, PyDict},
};

use crate::{
    error::{IntoPy, invalid},
    runtime::{Owner, awaitable},
};

/// Consumer options from keyword arguments (unknown names are refused).
pub(crate) fn consumer_options(
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<jetstation::ConsumerOptions> {
    use jetstation::convert::seconds;
    let mut o = jetstation::ConsumerOptions::default();
    let Some(kwargs) = kwargs else { return Ok(o) };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "concurrency" => o.concurrency = v.extract()?,
            "start" => o.start = start_position(&v)?,
            "ack_wait" => o.ack_wait = seconds("ack_wait", v.extract()?).py_err()?,
            "max_ack_pending" => o.max_ack_pending = v.extract()?,
            "redelivery_delay" => {
                o.redelivery_delay = seconds("redelivery_delay", v.extract()?).py_err()?
            }
            "max_redelivery_delay" => {
                o.max_redelivery_delay = seconds("max_redelivery_delay", v.extract()?).py_err()?
            }
            "fetch_batch" => o.fetch_batch = v.extract()?,
            "handover_timeout" => {
                o.handover_timeout = seconds("handover_timeout", v.extract()?).py_err()?
            }
            "exactly_once" => o.exactly_once = v.extract()?,
            "exactly_once_retention" => {
                o.exactly_once_retention =
                    seconds("exactly_once_retention", v.extract()?).py_err()?
            }
            other => return Err(invalid(format!("unknown consumer option {other:?}"))),
        }
    }
    Ok(o)
}

/// `"earliest"`, `"latest"`, `"snapshot"`, a sequence (int) or a timezone-aware datetime.
fn start_position(v: &Bound<'_, PyAny>) -> PyResult<jetstation::StartPosition> {
    use jetstation::StartPosition;
    if let Ok(s) = v.extract::<String>() {
        return s.parse::<StartPosition>().py_err();
    }
    if let Ok(seq) = v.extract::<u64>() {
        return StartPosition::sequence(seq).py_err();
    }
    match v.call_method0("timestamp").and_then(|t| t.extract::<f64>()) {
        Ok(ts) => StartPosition::unix_seconds(ts).py_err(),
        Err(_) => Err(invalid(format!(
            "start must be \"earliest\", \"latest\", \"snapshot\", a sequence (int) or a datetime, got {v}"
        ))),
    }
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

    /// Messages of this member's partitions the broker has not delivered yet.
    #[getter]
    fn lag(&self) -> u64 {
        self.inner.lag()
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

/// One received message; settle it once with `ack`, `nack`, `term` or
/// `release` (plain calls: the core settles without waiting).
#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Delivery {
    inner: jetstation::Delivery,
}

impl Delivery {
    fn new(inner: jetstation::Delivery) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Delivery {
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.payload)
    }
    #[getter]
    fn key(&self) -> Option<String> {
        self.inner.key.clone()
    }
    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.inner.headers.clone()
    }
    #[getter]
    fn station(&self) -> String {
        self.inner.station.clone()
    }
    #[getter]
    fn partition(&self) -> u32 {
        self.inner.partition
    }
    #[getter]
    fn sequence(&self) -> u64 {
        self.inner.sequence
    }
    #[getter]
    fn deliveries(&self) -> u64 {
        self.inner.deliveries
    }
    #[getter]
    fn msg_id(&self) -> Option<String> {
        self.inner.msg_id.clone()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name).map(String::from)
    }

    /// A tombstone: its key was deleted.
    #[getter]
    fn is_delete(&self) -> bool {
        self.inner.is_delete()
    }

    fn ack(&self) -> PyResult<()> {
        self.inner.ack().py_err()
    }

    #[pyo3(signature = (delay=None, reason=None))]
    fn nack(&self, delay: Option<f64>, reason: Option<String>) -> PyResult<()> {
        let delay = delay
            .map(|s| jetstation::convert::seconds("delay", s))
            .transpose()
            .py_err()?;
        self.inner
            .settle(jetstation::Settlement::Nack { delay, reason })
            .py_err()
    }

    #[pyo3(signature = (reason=None))]
    fn term(&self, reason: Option<String>) -> PyResult<()> {
        self.inner
            .settle(jetstation::Settlement::Term { reason })
            .py_err()
    }

    fn release(&self) -> PyResult<()> {
        self.inner.release().py_err()
    }

    /// Whether the message is still this member's to run: false once the
    /// process stopped after it was handed out and the group gave its
    /// partition to another member meanwhile (do not run it; settling it
    /// does nothing). Waits while the member asks the broker after such a
    /// stop. `async for` and `consume` ask before they hand a message on.
    fn claim<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // Most calls have their answer at once, and get it without a turn
        // of the event loop: one turn is time in which the process can stop.
        match self.inner.claim_now() {
            Some(ours) => crate::runtime::ready(py, ours),
            None => {
                let fut = self.inner.claim_future();
                awaitable(py, async move { Ok(fut.await) })
            }
        }
    }

    /// `claim()` without waiting, answered on the calling thread: `None`
    /// while the member asks the broker after a stop of its process (await
    /// `claim()` then). For code that runs a message on a thread other than
    /// the event loop's (the blocking `jetstation.sync` facade).
    fn claim_now(&self) -> Option<bool> {
        self.inner.claim_now()
    }

    fn in_progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.inner.in_progress_future().py_err()?;
        awaitable(py, async move { fut.await.py_err() })
    }

    fn __repr__(&self) -> String {
        format!(
            "Delivery(station={:?}, partition={}, sequence={}, key={:?}, deliveries={})",
            self.inner.station,
            self.inner.partition,
            self.inner.sequence,
            self.inner.key,
            self.inner.deliveries
        )
    }
}
