//! Core `tracing` events to Python's `logging`, under the `jetstation`
//! logger (child loggers per module: `jetstation.producer`, …).

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{EnvFilter, Layer, layer::Context, prelude::*};

struct PythonLogging;

/// Set at interpreter exit: from then on, events are no longer forwarded
/// (runtime threads must not enter a finalizing interpreter).
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Stops forwarding events, then stops the runtime; registered with
/// `atexit` by the package.
#[pyfunction]
pub(crate) fn shutdown(py: Python<'_>) {
    STOPPED.store(true, Ordering::SeqCst);
    crate::runtime::shutdown(py);
}

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if STOPPED.load(Ordering::SeqCst) {
            return;
        }
        let level = match *event.metadata().level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            _ => 10,
        };
        let module = event
            .metadata()
            .target()
            .trim_start_matches("jetstation")
            .trim_start_matches("::")
            .split("::")
            .next()
            .unwrap_or("");
        let name = if module.is_empty() {
            "jetstation".to_string()
        } else {
            format!("jetstation.{module}")
        };
        Python::try_attach(|py| {
            let Ok(logging) = py.import("logging") else {
                return;
            };
            let Ok(logger) = logging.call_method1("getLogger", (name,)) else {
                return;
            };
            if logger
                .call_method1("isEnabledFor", (level,))
                .and_then(|b| b.extract::<bool>())
                .unwrap_or(false)
            {
                let _ = logger.call_method1("log", (level, jetstation::log::event_text(event)));
            }
        });
    }
}

/// Starts forwarding core events at `level` and above (a tracing filter such
/// as "info" or "jetstation=debug"). Called once by the package at import.
#[pyfunction]
#[pyo3(signature = (filter = "info"))]
pub(crate) fn init_logging(filter: &str) -> PyResult<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let _ = tracing_subscriber::registry()
        .with(PythonLogging.with_filter(filter))
        .try_init();
    Ok(())
}
