//! The one error type of jetstation.
//!
//! Every failure carries a stable [`ErrorKind`] (what bindings map to their
//! own exception classes and codes), a message that says what was wrong and
//! what to do, and optionally the lower-level cause. Errors are `Clone` so that
//! one failure can be reported to every send that depended on it.

use std::{fmt, sync::Arc};

/// Stable error kinds. Their `as_str` names are part of the public contract
/// shared by every language binding and the gRPC gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The broker cannot be reached, or the connection broke.
    Connection,
    /// An operation did not complete in time; its effect is unknown.
    Timeout,
    /// Credentials were refused, or the user lacks a permission.
    Auth,
    /// A station, group or message does not exist.
    NotFound,
    /// Something exists already with other settings.
    AlreadyExists,
    /// An argument is malformed (names, options, headers…).
    InvalidArgument,
    /// A message is larger than the broker accepts.
    PayloadTooLarge,
    /// The server is older than the minimum jetstation supports.
    ServerTooOld,
    /// The client, producer or consumer was closed.
    Closed,
    /// The producer's buffer is full and the producer was told to fail fast.
    BufferFull,
    /// A payload does not match its station's schema (nothing was sent).
    SchemaValidation,
    /// A new schema version breaks the schema's compatibility mode.
    IncompatibleSchema,
    /// Any other error reported by the broker, with its code.
    Broker,
}

impl ErrorKind {
    /// The stable name of this kind (`"not_found"`, `"timeout"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::InvalidArgument => "invalid_argument",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ServerTooOld => "server_too_old",
            Self::Closed => "closed",
            Self::BufferFull => "buffer_full",
            Self::SchemaValidation => "schema_validation",
            Self::IncompatibleSchema => "incompatible_schema",
            Self::Broker => "broker",
        }
    }

    /// Every kind, in a fixed order (used by conformance checks).
    pub const ALL: [ErrorKind; 13] = [
        Self::Connection,
        Self::Timeout,
        Self::Auth,
        Self::NotFound,
        Self::AlreadyExists,
        Self::InvalidArgument,
        Self::PayloadTooLarge,
        Self::ServerTooOld,
        Self::Closed,
        Self::BufferFull,
        Self::SchemaValidation,
        Self::IncompatibleSchema,
        Self::Broker,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A jetstation error: a kind, an actionable message and an optional cause.
#[derive(Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// JetStream API error code (`err_code`) when the broker gave one.
    broker_code: Option<u16>,
    #[source]
    source: Option<Source>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(code) = self.broker_code {
            d.field("broker_code", &code);
        }
        if let Some(source) = &self.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

/// Result with the jetstation [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            broker_code: None,
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same error, its message led by where it happened.
    pub(crate) fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub(crate) fn with_broker_code(mut self, code: u16) -> Self {
        self.broker_code = Some(code);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn broker_code(&self) -> Option<u16> {
        self.broker_code
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn closed(what: &str) -> Self {
        Self::new(
            ErrorKind::Closed,
            format!("the {what} is closed; create a new one to continue"),
        )
    }

    /// Maps an error of the JetStream API (stream/consumer management).
    pub(crate) fn from_api(context: &str, err: &async_nats::jetstream::Error) -> Self {
        let code = err.error_code().0 as u16;
        Self::new(
            api_kind(err.code() as u16, code),
            format!("{context}: the broker answered: {err}"),
        )
        .with_broker_code(code)
    }

    /// Maps any async-nats error by the typed kinds in its chain (see
    /// [`crate::nats_errors`]); what no kind explains is a `Broker` error.
    pub(crate) fn from_nats(context: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        let kind = match crate::nats_errors::classify(err) {
            Some(crate::nats_errors::Found::Api(api)) => return Self::from_api(context, &api),
            Some(crate::nats_errors::Found::Kind(kind)) => kind,
            None => ErrorKind::Broker,
        };
        let hint = match kind {
            ErrorKind::Timeout => "; the broker may be restarting or overloaded, retry later",
            ErrorKind::Connection => {
                "; check that nats-server is running with JetStream enabled (-js)"
            }
            _ => "",
        };
        Self::new(kind, format!("{context}: {err}{hint}"))
    }
}

fn api_kind(status: u16, code: u16) -> ErrorKind {
    match (status, code) {
        (404, _) => ErrorKind::NotFound,
        (_, 10058 | 10148 | 10013) => ErrorKind::AlreadyExists,
        (403, _) | (_, 10076) => ErrorKind::Auth,
        (400, _) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Broker,
    }
}
