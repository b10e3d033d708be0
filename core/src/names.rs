//! How jetstation names map onto JetStream names and subjects — the one place
//! where this mapping lives.
//!
//! | jetstation                      | JetStream                                   |
//! |---------------------------------|---------------------------------------------|
//! | station `s`, partition `p`      | stream `JST__[ns__]s__P<p>`                  |
//! | its subjects                    | `jst.<ns or _>.s.<p>.*`                      |
//! | a message (key token `t`)       | subject `jst.<ns or _>.s.<p>.<t>`            |
//! | dead-letter station of `s`      | stream `JST__[ns__]s__DLS`, subject `jst.<ns or _>.s.dls` |
//! | consumer group `g`              | durable pull consumer `g` on every partition stream |
//!
//! The key token is `m` for every message, except on stations with key
//! compaction, where it is the lowercase hex of the key so that the stream
//! keeps one message per subject (per key).
//!
//! Names (stations, groups, namespaces) are 1 to 64 characters of ASCII
//! letters, digits, `-` and `_`, start with a letter or digit, and never
//! contain `__`. That keeps every derived name a valid stream, consumer and
//! subject token, and makes `__` an unambiguous separator.

use crate::error::{Error, Result};

/// Longest accepted station, group or namespace name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest accepted message key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

const STREAM_PREFIX: &str = "JST__";
const SUBJECT_ROOT: &str = "jst";

/// Checks a station, group or namespace name. `what` names it in the error.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "it has {} characters, the limit is {MAX_NAME_LEN}",
            name.len()
        ))
    } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
        Some("it must start with a letter or a digit".to_string())
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(format!("it contains {c:?}"))
    } else if name.contains("__") {
        Some("it contains \"__\", which is reserved".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(Error::invalid(format!(
            "invalid {what} name {name:?}: {p}; use 1-{MAX_NAME_LEN} ASCII letters, digits, \
             '-' or '_', starting with a letter or digit (e.g. \"employee-changes\")"
        ))),
    }
}

/// Checks a message key: at most [`MAX_KEY_LEN`] bytes, and no line break
/// (a key travels as a header value, where one would end the header).
pub fn validate_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "message key is {} bytes long, the limit is {MAX_KEY_LEN}; use a shorter \
             identifier (e.g. the employee id) as key",
            key.len()
        )));
    }
    if key.contains(['\r', '\n']) {
        return Err(Error::invalid(
            "a message key must not contain a line break; use an identifier (e.g. the \
             employee id) as key",
        ));
    }
    Ok(())
}

/// The naming scheme of one client (its optional namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    namespace: Option<String>,
}

/// What a stream name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamRole {
    Partition(u32),
    DeadLetters,
}

impl Names {
    pub(crate) fn new(namespace: Option<String>) -> Result<Self> {
        if let Some(ns) = &namespace {
            validate_name("namespace", ns)?;
        }
        Ok(Self { namespace })
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn stream_base(&self, station: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{STREAM_PREFIX}{ns}__{station}"),
            None => format!("{STREAM_PREFIX}{station}"),
        }
    }

    fn subject_base(&self, station: &str) -> String {
        let ns = self.namespace.as_deref().unwrap_or("_");
        format!("{SUBJECT_ROOT}.{ns}.{station}")
    }

    pub(crate) fn partition_stream(&self, station: &str, partition: u32) -> String {
        format!("{}__P{partition}", self.stream_base(station))
    }

    /// The state view of one partition of a compacted station: the latest
    /// message per key.
    pub(crate) fn state_stream(&self, station: &str, partition: u32) -> String {
        format!("{}__S{partition}", self.stream_base(station))
    }

    pub(crate) fn dead_letter_stream(&self, station: &str) -> String {
        format!("{}__DLS", self.stream_base(station))
    }

    /// Wildcard subject captured by a partition's stream.
    pub(crate) fn partition_subjects(&self, station: &str, partition: u32) -> String {
        format!("{}.{partition}.*", self.subject_base(station))
    }

    /// Subject of one message.
    pub(crate) fn message_subject(
        &self,
        station: &str,
        partition: u32,
        key: Option<&str>,
        compaction: bool,
    ) -> String {
        let token = match (compaction, key) {
            (true, Some(k)) if !k.is_empty() => hex(k.as_bytes()),
            _ => "m".to_string(),
        };
        format!("{}.{partition}.{token}", self.subject_base(station))
    }

    pub(crate) fn dead_letter_subject(&self, station: &str) -> String {
        format!("{}.dls", self.subject_base(station))
    }

    /// Prefix shared by the streams of this namespace (used to list them).
    pub(crate) fn list_prefix(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{STREAM_PREFIX}{ns}__"),
            None => STREAM_PREFIX.to_string(),
        }
    }

    /// Reads a stream name back into (station, role), if it belongs to this
    /// namespace.
    pub(crate) fn parse_stream(&self, stream: &str) -> Option<(String, StreamRole)> {
        let rest = stream.strip_prefix(STREAM_PREFIX)?;
        let parts: Vec<&str> = rest.split("__").collect();
        let (station, tail) = match (&self.namespace, parts.as_slice()) {
            (Some(ns), [n, s, t]) if n == ns => (*s, *t),
            (None, [s, t]) => (*s, *t),
            _ => return None,
        };
        let role = if tail == "DLS" {
            StreamRole::DeadLetters
        } else {
            StreamRole::Partition(tail.strip_prefix('P')?.parse().ok()?)
        };
        Some((station.to_string(), role))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Partition of a key: a stable hash (xxh3-64) modulo the partition count.
/// Stable across processes, versions and languages, because it lives here.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_with_a_reason() {
        for ok in ["a", "employee-changes", "A1_b-2", &"x".repeat(64)] {
            validate_name("station", ok).unwrap();
        }
        for (bad, reason) in [
            ("", "empty"),
            ("-a", "start with"),
            ("a.b", "'.'"),
            ("a b", "' '"),
            ("a__b", "reserved"),
            (&"x".repeat(65), "limit is 64"),
            ("é", "start with"),
        ] {
            let err = validate_name("station", bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
            assert!(err.message().contains(reason), "{bad:?}: {err}");
        }
    }

    #[test]
    fn streams_round_trip_with_and_without_namespace() {
        let plain = Names::new(None).unwrap();
        let acme = Names::new(Some("acme".into())).unwrap();
        assert_eq!(plain.partition_stream("hr", 3), "JST__hr__P3");
        assert_eq!(acme.partition_stream("hr", 0), "JST__acme__hr__P0");
        assert_eq!(
            plain.parse_stream("JST__hr__P3"),
            Some(("hr".into(), StreamRole::Partition(3)))
        );
        assert_eq!(
            acme.parse_stream("JST__acme__hr__DLS"),
            Some(("hr".into(), StreamRole::DeadLetters))
        );
        // Streams of another namespace are not ours.
        assert_eq!(plain.parse_stream("JST__acme__hr__P0"), None);
        assert_eq!(acme.parse_stream("JST__hr__P0"), None);
        assert_eq!(acme.parse_stream("JST__other__hr__P0"), None);
        assert_eq!(
            plain.message_subject("hr", 1, Some("ab"), true),
            "jst._.hr.1.6162"
        );
        assert_eq!(
            acme.message_subject("hr", 1, Some("ab"), false),
            "jst.acme.hr.1.m"
        );
    }

    #[test]
    fn partitioning_is_stable_and_spread() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            let key = format!("employee-{i}");
            let p = partition_of(&key, 4);
            assert_eq!(p, partition_of(&key, 4));
            counts[p as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
        assert_eq!(partition_of("anything", 1), 0);
    }
}
