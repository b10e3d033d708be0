//! The `Producer` class.

use std::sync::Mutex;

use pyo3::{prelude::*, pybacked::PyBackedBytes, types::PyDict};

use crate::{
    error::{IntoPy, invalid, to_py},
    runtime::{Owner, awaitable, runtime},
    types::Receipt,
};

/// Producer options from keyword arguments (unknown names are refused).
pub(crate) fn producer_options(
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<jetstation::ProducerOptions> {
    use jetstation::convert::seconds;
    let mut o = jetstation::ProducerOptions::default();
    let Some(kwargs) = kwargs else { return Ok(o) };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "max_batch_messages" => o.max_batch_messages = v.extract()?,
            "max_batch_bytes" => o.max_batch_bytes = v.extract()?,
            "linger" => o.linger = seconds("linger", v.extract()?).py_err()?,
            "max_in_flight" => o.max_in_flight = v.extract()?,
            "buffer_bytes" => o.buffer_bytes = v.extract()?,
            "when_full" => o.when_full = v.extract::<String>()?.parse().py_err()?,
            "delivery_timeout" => {
                o.delivery_timeout = seconds("delivery_timeout", v.extract()?).py_err()?
            }
            "producer_id" => o.producer_id = v.extract()?,
            other => return Err(invalid(format!("unknown producer option {other:?}"))),
        }
    }
    Ok(o)
}

/// The payload stays the Python `bytes` object it came as (kept alive until
/// the message is stored or has failed): no copy, whatever its size.
fn message(
    payload: PyBackedBytes,
    key: Option<String>,
    headers: Option<Vec<(String, String)>>,
    msg_id: Option<String>,
) -> jetstation::Message {
    jetstation::Message {
        payload: bytes::Bytes::from_owner(payload),
        key,
        headers: headers.unwrap_or_default(),
        msg_id,
    }
}

/// One message of a `send_batch` chunk: payload, key and headers (the trace
/// context when telemetry is on).
type BatchItem = (PyBackedBytes, Option<String>, Option<Vec<(String, String)>>);

#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Producer {
    inner: jetstation::Producer,
    owner: Owner,
}

impl Producer {
    pub(crate) fn new(inner: jetstation::Producer, owner: Owner) -> Self {
        Self { inner, owner }
    }

    fn producer(&self) -> PyResult<jetstation::Producer> {
        self.owner.check()?;
        Ok(self.inner.clone())
    }
}

#[pymethods]
impl Producer {
    #[getter]
    fn station(&self) -> String {
        self.inner.station().to_string()
    }

    #[getter]
    fn producer_id(&self) -> String {
        self.inner.producer_id().to_string()
    }

    #[pyo3(signature = (payload, *, key=None, headers=None, msg_id=None))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        payload: PyBackedBytes,
        key: Option<String>,
        headers: Option<Vec<(String, String)>>,
        msg_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let producer = self.producer()?;
        let m = message(payload, key, headers, msg_id);
        awaitable(py, async move {
            Ok(Receipt::from(producer.send(m).await.py_err()?))
        })
    }

    /// Queues a message; the result is a `SendHandle` to await for the receipt.
    #[pyo3(signature = (payload, *, key=None, headers=None, msg_id=None))]
    fn enqueue<'py>(
        &self,
        py: Python<'py>,
        payload: PyBackedBytes,
        key: Option<String>,
        headers: Option<Vec<(String, String)>>,
        msg_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let producer = self.producer()?;
        let m = message(payload, key, headers, msg_id);
        awaitable(py, async move {
            let handle = producer.enqueue(m).await.py_err()?;
            Ok(SendHandle {
                handle: Mutex::new(Some(handle)),
            })
        })
    }

    /// Queues at once when the producer can take the message without
    /// waiting (buffer space free, schema loaded) and returns its handle;
    /// returns `None` when it would have to wait (then use `enqueue`).
    /// Saves the thread hop an awaitable costs.
    #[pyo3(signature = (payload, key=None, headers=None, msg_id=None))]
    fn try_enqueue(
        &self,
        payload: PyBackedBytes,
        key: Option<String>,
        headers: Option<Vec<(String, String)>>,
        msg_id: Option<String>,
    ) -> PyResult<Option<SendHandle>> {
        let producer = self.producer()?;
        let m = message(payload, key, headers, msg_id);
        let _context = runtime().enter();
        Ok(match producer.try_enqueue(m).py_err()? {
            jetstation::TryEnqueued::Queued(handle) => Some(SendHandle {
                handle: Mutex::new(Some(handle)),
            }),
            jetstation::TryEnqueued::WouldWait(_) => None,
        })
    }

    /// Queues one chunk of `send_batch` in order, waiting for room as
    /// `enqueue` does; resolves once all of it is queued, with a
    /// `BatchHandle` to await for the chunk's receipts. `send_batch` queues
    /// the next chunk after this one resolved, so chunks keep their order
    /// while the Python thread converts the next one and earlier ones are on
    /// their way. The chunk holds messages `first..` of a batch of `total`;
    /// a refused message raises, nothing of its chunk queued.
    fn enqueue_batch<'py>(
        &self,
        py: Python<'py>,
        messages: Vec<BatchItem>,
        first: usize,
        total: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let producer = self.producer()?;
        let messages = messages
            .into_iter()
            .map(|(payload, key, headers)| message(payload, key, headers, None))
            .collect();
        awaitable(py, async move {
            let handles = producer
                .enqueue_chunk(messages, first, total)
                .await
                .py_err()?;
            Ok(BatchHandle {
                handles: Mutex::new(Some(handles)),
            })
        })
    }

    /// Deletes `key` from a compacted station (a tombstone, in the key's order).
    fn delete<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let producer = self.producer()?;
        awaitable(py, async move {
            Ok(Receipt::from(producer.delete(key).await.py_err()?))
        })
    }

    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let producer = self.producer()?;
        awaitable(py, async move { producer.flush().await.py_err() })
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let producer = self.producer()?;
        awaitable(py, async move { producer.close().await.py_err() })
    }

    #[getter]
    fn outstanding(&self) -> usize {
        self.inner.outstanding()
    }
}

/// What a handle holds, taken by its first await; a second await is an
/// `InvalidArgumentError`.
fn take_once<T>(slot: &Mutex<Option<T>>, what: &str) -> PyResult<T> {
    slot.lock().unwrap().take().ok_or_else(|| {
        to_py(jetstation::Error::new(
            jetstation::ErrorKind::InvalidArgument,
            format!("this {what} was already awaited"),
        ))
    })
}

/// The pending result of `Producer.enqueue`; await it (once) for the receipt.
#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct SendHandle {
    handle: Mutex<Option<jetstation::SendHandle>>,
}

#[pymethods]
impl SendHandle {
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut handle = take_once(&self.handle, "send handle")?;
        if let Some(result) = handle.try_receipt() {
            // Already resolved: an iterator that ends at once with the
            // receipt (or raises its error), so the await neither suspends
            // nor asks the running loop for a future.
            let outcome = match result {
                Ok(receipt) => Ok(Receipt::from(receipt)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()),
                Err(e) => Err(to_py(e)),
            };
            return Ok(Bound::new(py, Ready(Mutex::new(Some(outcome))))?.into_any());
        }
        let fut = awaitable(py, async move { Ok(Receipt::from(handle.await.py_err()?)) })?;
        fut.call_method0("__await__")
    }
}

/// The queued messages of one `enqueue_batch` chunk; `wait()` resolves with
/// their receipts in order, or fails with the first failed message's error.
#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct BatchHandle {
    handles: Mutex<Option<Vec<jetstation::Result<jetstation::SendHandle>>>>,
}

#[pymethods]
impl BatchHandle {
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let handles = take_once(&self.handles, "batch handle")?;
        awaitable(py, async move {
            let mut receipts = Vec::with_capacity(handles.len());
            for handle in handles {
                receipts.push(Receipt::from(handle.py_err()?.await.py_err()?));
            }
            Ok(receipts)
        })
    }
}

/// What `await` iterates for a handle that was already resolved: its first
/// step ends the iteration with the receipt (`StopIteration(receipt)`), or
/// raises the message's error.
#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Ready(Mutex<Option<PyResult<Py<PyAny>>>>);

#[pymethods]
impl Ready {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self) -> PyResult<Py<PyAny>> {
        match self.0.lock().unwrap().take() {
            Some(Ok(receipt)) => Err(pyo3::exceptions::PyStopIteration::new_err((receipt,))),
            Some(Err(e)) => Err(e),
            None => Err(pyo3::exceptions::PyStopIteration::new_err(())),
        }
    }
}
