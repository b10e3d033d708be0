//! Core `tracing` events to a JavaScript logger: `setLogger(fn, filter)`.
//! Silent until a logger is set; the facade sets one writing to standard
//! error when DEBUG names jetstation.

use std::sync::{Mutex, OnceLock};

use napi::{
    Status,
    threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode},
};
use napi_derive::napi;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{EnvFilter, Layer, layer::Context, prelude::*, reload};

/// One log event of the core.
#[napi(object)]
pub struct LogRecord {
    /// "error", "warn", "info", "debug" or "trace".
    pub level: String,
    /// The core module (e.g. "jetstation::producer::partition").
    pub target: String,
    pub message: String,
}

type Logger = ThreadsafeFunction<LogRecord, (), LogRecord, Status, false, true>;

static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);
static FILTER: OnceLock<reload::Handle<EnvFilter, tracing_subscriber::Registry>> = OnceLock::new();

struct JsLogger;

impl<S: Subscriber> Layer<S> for JsLogger {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let guard = LOGGER.lock().unwrap();
        let Some(logger) = guard.as_ref() else { return };
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let record = LogRecord {
            level: level.into(),
            target: event.metadata().target().into(),
            message: jetstation::log::event_text(event),
        };
        logger.call(record, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Sends core log events at or above `filter` ("info", "jetstation=debug"…)
/// to `logger`; `null` silences them again. The logger never keeps the
/// process alive.
#[napi(ts_args_type = "logger: ((record: LogRecord) => void) | null, filter?: string")]
pub fn set_logger(logger: Option<Logger>, filter: Option<String>) -> napi::Result<()> {
    let filter = EnvFilter::try_new(filter.as_deref().unwrap_or("info"))
        .map_err(|e| crate::error::invalid(format!("bad log filter: {e}")))?;
    match FILTER.get() {
        Some(handle) => handle
            .reload(filter)
            .map_err(|e| crate::error::invalid(e.to_string()))?,
        None => {
            let (layer, handle) = reload::Layer::new(filter);
            let _ = FILTER.set(handle);
            let _ = tracing_subscriber::registry()
                .with(layer)
                .with(JsLogger)
                .try_init();
        }
    }
    *LOGGER.lock().unwrap() = logger;
    Ok(())
}
