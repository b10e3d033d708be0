//! Core errors to Python exceptions: one class per stable error kind, defined
//! in `jetstation/errors.py` (so they pickle), with builtin bases where they
//! fit (`ConnectionError`, `TimeoutError`, `ValueError`, …).

use pyo3::{exceptions::PyRuntimeError, prelude::*, sync::PyOnceLock, types::PyType};

/// Python class name of each error kind.
fn class_name(kind: jetstation::ErrorKind) -> &'static str {
    use jetstation::ErrorKind as K;
    match kind {
        K::Connection => "ConnectionFailedError",
        K::Timeout => "TimedOutError",
        K::Auth => "AuthError",
        K::NotFound => "NotFoundError",
        K::AlreadyExists => "AlreadyExistsError",
        K::InvalidArgument => "InvalidArgumentError",
        K::PayloadTooLarge => "PayloadTooLargeError",
        K::ServerTooOld => "ServerTooOldError",
        K::Closed => "ClosedError",
        K::BufferFull => "BufferFullError",
        K::SchemaValidation => "SchemaValidationError",
        K::IncompatibleSchema => "IncompatibleSchemaError",
        _ => "BrokerError",
    }
}

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module =
        ERRORS.get_or_try_init(py, || py.import("jetstation.errors").map(|m| m.unbind()))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// The Python exception for a core error.
pub(crate) fn to_py(err: jetstation::Error) -> PyErr {
    Python::try_attach(|py| match class(py, class_name(err.kind())) {
        Ok(cls) => match cls.call1((err.message().to_string(),)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(e) => PyRuntimeError::new_err(format!("{} ({e})", err.message())),
    })
    // The interpreter is shutting down: a lazy error, built without it.
    .unwrap_or_else(|| PyRuntimeError::new_err(err.message().to_string()))
}

pub(crate) fn closed_after_fork() -> PyErr {
    to_py(jetstation::Error::new(
        jetstation::ErrorKind::Closed,
        "this object was created before fork(); its connection belongs to the parent \
         process: call jetstation.connect() again in the child",
    ))
}

pub(crate) trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, jetstation::Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// An `InvalidArgumentError` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    to_py(jetstation::Error::new(
        jetstation::ErrorKind::InvalidArgument,
        message,
    ))
}
