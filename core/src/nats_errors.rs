//! Which [`ErrorKind`] an async-nats error is, read from its typed kind.
//!
//! async-nats gives every operation its own error type, `Error<SomeKind>`.
//! [`classify`] walks an error's source chain and matches each link against
//! the types the core meets; a kind that only says "the request failed"
//! defers to the link below it. JetStream API errors (with the broker's
//! status and `err_code`) are found either as a link or inside a kind.

use async_nats::jetstream::{self, context, kv, stream};

use crate::error::ErrorKind;

/// What one link of a chain says.
pub(crate) enum Found {
    /// A JetStream API error: the broker answered with a code.
    Api(jetstream::Error),
    Kind(ErrorKind),
}

type Link<'a> = &'a (dyn std::error::Error + 'static);

/// The first link of `err`'s chain that says what went wrong.
pub(crate) fn classify(err: Link<'_>) -> Option<Found> {
    let mut cause = Some(err);
    while let Some(link) = cause {
        if let Some(found) = link_kind(link) {
            return Some(found);
        }
        cause = link.source();
    }
    None
}

/// Kinds shared by most types: `TimedOut`, `NoResponders`, `JetStream(e)`.
macro_rules! kinds {
    ($link:ident, $( $ty:ty => |$k:ident| $body:expr ),+ $(,)?) => {
        $(
            if let Some(e) = $link.downcast_ref::<$ty>() {
                let $k = e.kind();
                #[allow(unused_imports)]
                use ErrorKind::*;
                return $body;
            }
        )+
    };
}

fn link_kind(link: Link<'_>) -> Option<Found> {
    use Found::Kind as K;
    if let Some(api) = link.downcast_ref::<jetstream::Error>() {
        return Some(Found::Api(api.clone()));
    }
    // Kinds that carry the broker's answer.
    macro_rules! api_in {
        ($ty:ty, $variant:path) => {
            if let Some(e) = link.downcast_ref::<$ty>()
                && let $variant(api) = e.kind()
            {
                return Some(Found::Api(api));
            }
        };
    }
    api_in!(
        context::ConsumerInfoError,
        context::ConsumerInfoErrorKind::JetStream
    );
    api_in!(
        context::CreateStreamError,
        context::CreateStreamErrorKind::JetStream
    );
    api_in!(
        context::GetStreamError,
        context::GetStreamErrorKind::JetStream
    );
    api_in!(
        context::GetStreamByNameError,
        context::GetStreamByNameErrorKind::JetStream
    );
    api_in!(context::AccountError, context::AccountErrorKind::JetStream);
    api_in!(
        stream::DeleteMessageError,
        stream::DeleteMessageErrorKind::JetStream
    );
    api_in!(stream::PurgeError, stream::PurgeErrorKind::JetStream);
    api_in!(
        stream::LastRawMessageError,
        stream::LastRawMessageErrorKind::JetStream
    );
    api_in!(stream::ConsumerError, stream::ConsumerErrorKind::JetStream);
    api_in!(
        stream::ConsumerCreateStrictError,
        stream::ConsumerCreateStrictErrorKind::JetStream
    );
    api_in!(
        stream::ConsumerUpdateError,
        stream::ConsumerUpdateErrorKind::JetStream
    );
    api_in!(kv::StatusError, kv::StatusErrorKind::JetStream);
    kinds!(link,
        async_nats::RequestError => |k| match k {
            async_nats::RequestErrorKind::TimedOut => Some(K(Timeout)),
            async_nats::RequestErrorKind::NoResponders => Some(K(Connection)),
            async_nats::RequestErrorKind::InvalidSubject => Some(K(InvalidArgument)),
            async_nats::RequestErrorKind::MaxPayloadExceeded => Some(K(PayloadTooLarge)),
            _ => None,
        },
        context::RequestError => |k| match k {
            context::RequestErrorKind::TimedOut => Some(K(Timeout)),
            context::RequestErrorKind::NoResponders => Some(K(Connection)),
            context::RequestErrorKind::InvalidSubject => Some(K(InvalidArgument)),
            _ => None,
        },
        async_nats::PublishError => |k| match k {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => Some(K(PayloadTooLarge)),
            async_nats::client::PublishErrorKind::InvalidSubject => Some(K(InvalidArgument)),
            _ => Some(K(Connection)),
        },
        context::PublishError => |k| match k {
            context::PublishErrorKind::StreamNotFound => Some(K(NotFound)),
            context::PublishErrorKind::TimedOut => Some(K(Timeout)),
            context::PublishErrorKind::BrokenPipe => Some(K(Connection)),
            context::PublishErrorKind::MaxPayloadExceeded => Some(K(PayloadTooLarge)),
            context::PublishErrorKind::Other => None,
            _ => Some(K(Broker)),
        },
        async_nats::ConnectError => |k| match k {
            async_nats::ConnectErrorKind::Authentication
            | async_nats::ConnectErrorKind::AuthorizationViolation => Some(K(Auth)),
            async_nats::ConnectErrorKind::TimedOut => Some(K(Timeout)),
            async_nats::ConnectErrorKind::ServerParse => Some(K(InvalidArgument)),
            _ => Some(K(Connection)),
        },
        context::ConsumerInfoError => |k| match k {
            context::ConsumerInfoErrorKind::NotFound
            | context::ConsumerInfoErrorKind::StreamNotFound => Some(K(NotFound)),
            context::ConsumerInfoErrorKind::TimedOut => Some(K(Timeout)),
            context::ConsumerInfoErrorKind::NoResponders
            | context::ConsumerInfoErrorKind::Offline => Some(K(Connection)),
            context::ConsumerInfoErrorKind::InvalidName => Some(K(InvalidArgument)),
            _ => None,
        },
        context::CreateStreamError => |k| match k {
            context::CreateStreamErrorKind::TimedOut => Some(K(Timeout)),
            context::CreateStreamErrorKind::NotFound => Some(K(NotFound)),
            context::CreateStreamErrorKind::JetStreamUnavailable => Some(K(Connection)),
            context::CreateStreamErrorKind::EmptyStreamName
            | context::CreateStreamErrorKind::InvalidStreamName
            | context::CreateStreamErrorKind::DomainAndExternalSet => Some(K(InvalidArgument)),
            _ => Some(K(Broker)),
        },
        context::GetStreamError => |k| match k {
            context::GetStreamErrorKind::EmptyName
            | context::GetStreamErrorKind::InvalidStreamName => Some(K(InvalidArgument)),
            _ => None,
        },
        context::GetStreamByNameError => |k| match k {
            context::GetStreamByNameErrorKind::NotFound => Some(K(NotFound)),
            context::GetStreamByNameErrorKind::InvalidSubject => Some(K(InvalidArgument)),
            _ => None,
        },
        context::AccountError => |k| match k {
            context::AccountErrorKind::TimedOut => Some(K(Timeout)),
            context::AccountErrorKind::JetStreamUnavailable => Some(K(Connection)),
            _ => None,
        },
        stream::DeleteMessageError => |k| match k {
            stream::DeleteMessageErrorKind::TimedOut => Some(K(Timeout)),
            _ => None,
        },
        stream::PurgeError => |k| match k {
            stream::PurgeErrorKind::TimedOut => Some(K(Timeout)),
            _ => None,
        },
        stream::LastRawMessageError => |k| match k {
            stream::LastRawMessageErrorKind::NoMessageFound => Some(K(NotFound)),
            stream::LastRawMessageErrorKind::InvalidSubject => Some(K(InvalidArgument)),
            _ => None,
        },
        stream::ConsumerError => |k| match k {
            stream::ConsumerErrorKind::TimedOut => Some(K(Timeout)),
            stream::ConsumerErrorKind::InvalidName
            | stream::ConsumerErrorKind::InvalidConsumerType => Some(K(InvalidArgument)),
            _ => None,
        },
        stream::ConsumerCreateStrictError => |k| match k {
            stream::ConsumerCreateStrictErrorKind::TimedOut => Some(K(Timeout)),
            stream::ConsumerCreateStrictErrorKind::AlreadyExists => Some(K(AlreadyExists)),
            _ => None,
        },
        stream::ConsumerUpdateError => |k| match k {
            stream::ConsumerUpdateErrorKind::TimedOut => Some(K(Timeout)),
            stream::ConsumerUpdateErrorKind::DoesNotExist => Some(K(NotFound)),
            _ => None,
        },
        kv::EntryError => |k| match k {
            kv::EntryErrorKind::TimedOut => Some(K(Timeout)),
            kv::EntryErrorKind::InvalidKey => Some(K(InvalidArgument)),
            _ => None,
        },
        kv::CreateError => |k| match k {
            kv::CreateErrorKind::AlreadyExists => Some(K(AlreadyExists)),
            kv::CreateErrorKind::InvalidKey => Some(K(InvalidArgument)),
            _ => None,
        },
        kv::UpdateError => |k| match k {
            kv::UpdateErrorKind::TimedOut => Some(K(Timeout)),
            kv::UpdateErrorKind::InvalidKey => Some(K(InvalidArgument)),
            kv::UpdateErrorKind::WrongLastRevision => Some(K(AlreadyExists)),
            _ => None,
        },
        kv::StatusError => |k| match k {
            kv::StatusErrorKind::TimedOut => Some(K(Timeout)),
            _ => None,
        },
        context::KeyValueError => |k| match k {
            context::KeyValueErrorKind::InvalidStoreName => Some(K(InvalidArgument)),
            _ => None,
        },
        context::CreateKeyValueError => |k| match k {
            context::CreateKeyValueErrorKind::InvalidStoreName
            | context::CreateKeyValueErrorKind::TooLongHistory => Some(K(InvalidArgument)),
            context::CreateKeyValueErrorKind::TimedOut => Some(K(Timeout)),
            _ => None,
        },
        jetstream::consumer::StreamError => |k| match k {
            jetstream::consumer::StreamErrorKind::TimedOut => Some(K(Timeout)),
            _ => None,
        },
    );
    None
}
