//! The `Snapshot` class: a compacted station's state view, key by key.

use std::sync::Arc;

use pyo3::{exceptions::PyStopAsyncIteration, prelude::*};
use tokio::sync::Mutex;

use crate::{error::IntoPy, runtime::awaitable, types::StateEntry};

#[pyclass(module = "jetstation._native", frozen)]
pub(crate) struct Snapshot {
    inner: Arc<Mutex<jetstation::Snapshot>>,
}

impl Snapshot {
    pub(crate) fn new(inner: jetstation::Snapshot) -> Self {
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }
}

#[pymethods]
impl Snapshot {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        awaitable(py, async move {
            match inner.lock().await.next().await {
                Some(entry) => Ok(StateEntry::from(entry.py_err()?)),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}
