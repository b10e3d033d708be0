//! Header names jetstation reads and writes. Names starting with `Nats-` or
//! `Jst-` are reserved: applications cannot set them.

/// JetStream's deduplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The id the producer generated for a message it sends in a fast batch.
/// The broker keeps no record of it, unlike a `Nats-Msg-Id` (that record is
/// most of what a deduplicated publish costs the broker); a second copy is
/// kept out by the sequence every fast-batch message expects instead (see
/// `producer::fast`). Deliveries show it as `Nats-Msg-Id`.
pub const PRODUCER_ID: &str = "Jst-Id";
/// Atomic batch publish (nats-server 2.12+): the batch, each message's
/// position in it, and the commit marker on the last one.
pub const BATCH_ID: &str = "Nats-Batch-Id";
pub const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
pub const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// The sequence a partition must end at for a message to be stored; the
/// producer's fast batches carry it on every message.
pub const EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
/// Set by the broker on each delivery to a pinned member; not kept on the
/// messages applications see.
pub const PIN_ID: &str = "Nats-Pin-Id";
/// The message key (routing and per-key order).
pub const KEY: &str = "Jst-Key";
/// [`KEY`] as a header name: looking a header up by `&str` builds (and
/// allocates) the name each time.
pub(crate) static KEY_NAME: async_nats::HeaderName = async_nats::HeaderName::from_static(KEY);
/// `delete` on a tombstone: the key was deleted (`Producer::delete`).
pub const OP: &str = "Jst-Op";
/// Per-message time to live (seconds, e.g. `86400s`), set on tombstones.
pub const TTL: &str = "Nats-TTL";

/// Dead letters: where the message came from and why it failed.
pub const ORIGIN_STATION: &str = "Jst-Origin-Station";
pub const ORIGIN_PARTITION: &str = "Jst-Origin-Partition";
pub const ORIGIN_SEQUENCE: &str = "Jst-Origin-Sequence";
pub const ORIGIN_GROUP: &str = "Jst-Origin-Group";
pub const DELIVERIES: &str = "Jst-Deliveries";
pub const LAST_ERROR: &str = "Jst-Last-Error";
pub const DEAD_LETTERED_AT: &str = "Jst-Dead-Lettered-At";
/// The original message id of a dead letter.
pub const ORIGIN_MSG_ID: &str = "Jst-Origin-Msg-Id";

/// Whether an application may set this header.
pub fn is_reserved(name: &str) -> bool {
    starts_with_any(name, &["nats-", "jst-"])
}

/// Whether `name` starts with one of `prefixes`, ignoring ASCII case (header
/// names are case-insensitive).
fn starts_with_any(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| {
        name.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    })
}

/// Whether a stored message's header belongs to how it travelled, not to the
/// message: the producer's batch and order-guard headers (which the server
/// stores with the message) and the pin of one delivery. Members do not see
/// them, so a message shows the same headers whichever way it was stored.
pub fn is_transport(name: &str) -> bool {
    name.eq_ignore_ascii_case(PIN_ID) || starts_with_any(name, &["nats-batch-", "nats-expected-"])
}

/// The name a stored header has on a delivered message, or `None` when it
/// is not shown ([`is_transport`]): the producer's id of a fast-batch
/// message shows as `Nats-Msg-Id`, so a message looks the same whichever way
/// it was stored.
pub fn shown(name: &str) -> Option<&str> {
    if is_transport(name) {
        None
    } else if name.eq_ignore_ascii_case(PRODUCER_ID) {
        Some(MSG_ID)
    } else {
        Some(name)
    }
}

/// Whether `name` holds a message's id (either way it was stored).
pub fn is_message_id(name: &str) -> bool {
    name.eq_ignore_ascii_case(MSG_ID) || name.eq_ignore_ascii_case(PRODUCER_ID)
}
