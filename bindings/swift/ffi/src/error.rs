//! Core errors as one Swift error enum whose cases are the stable kinds.

/// Errors with the stable kinds shared by every language.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum JetstationError {
    #[error("{message}")]
    Connection { message: String },
    #[error("{message}")]
    Timeout { message: String },
    #[error("{message}")]
    Auth { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    AlreadyExists { message: String },
    #[error("{message}")]
    InvalidArgument { message: String },
    #[error("{message}")]
    PayloadTooLarge { message: String },
    #[error("{message}")]
    ServerTooOld { message: String },
    #[error("{message}")]
    Closed { message: String },
    #[error("{message}")]
    BufferFull { message: String },
    #[error("{message}")]
    SchemaValidation { message: String },
    #[error("{message}")]
    IncompatibleSchema { message: String },
    #[error("{message}")]
    Broker { message: String },
}

impl From<jetstation::Error> for JetstationError {
    fn from(e: jetstation::Error) -> Self {
        use jetstation::ErrorKind as K;
        let message = e.message().to_string();
        match e.kind() {
            K::Connection => Self::Connection { message },
            K::Timeout => Self::Timeout { message },
            K::Auth => Self::Auth { message },
            K::NotFound => Self::NotFound { message },
            K::AlreadyExists => Self::AlreadyExists { message },
            K::InvalidArgument => Self::InvalidArgument { message },
            K::PayloadTooLarge => Self::PayloadTooLarge { message },
            K::ServerTooOld => Self::ServerTooOld { message },
            K::Closed => Self::Closed { message },
            K::BufferFull => Self::BufferFull { message },
            K::SchemaValidation => Self::SchemaValidation { message },
            K::IncompatibleSchema => Self::IncompatibleSchema { message },
            _ => Self::Broker { message },
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, JetstationError>;

pub(crate) fn invalid(message: impl Into<String>) -> JetstationError {
    JetstationError::InvalidArgument {
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::JetstationError;

    #[test]
    fn every_core_kind_maps_to_the_case_of_the_same_name() {
        for kind in jetstation::ErrorKind::ALL {
            let mapped = JetstationError::from(jetstation::Error::new(kind, "m"));
            let case = format!("{mapped:?}");
            let expected: String = kind
                .as_str()
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert!(
                case.starts_with(&format!("{expected} {{")),
                "{kind}: {case}"
            );
        }
    }
}
