//! Plain values of other languages into the core's types, checked once here
//! so that every binding refuses the same bad input with the same words.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};

/// A duration given in seconds: refuses negative, NaN and infinite values.
pub fn seconds(what: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Error::invalid(format!(
            "{what} must be a finite, non-negative number of seconds, got {value}"
        ))
    })
}

/// A duration given in milliseconds (JavaScript's unit).
pub fn millis(what: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value / 1000.0).map_err(|_| {
        Error::invalid(format!(
            "{what} must be a finite, non-negative number of milliseconds, got {value}"
        ))
    })
}

/// A count given as a signed or floating number (JavaScript and Swift hand
/// those over): refuses negative and fractional values.
pub fn count(what: &str, value: i64) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| Error::invalid(format!("{what} must be 0 or more, got {value}")))
}

/// The payloads of a batch handed over as one buffer, one after another,
/// `lengths[i]` bytes each, each copied on its own: a slice of one shared
/// copy would keep the whole batch in memory while any of its messages
/// waits (say, for a partition's new leader), beyond what the producer's
/// buffer counts.
pub fn split_payloads(payloads: &[u8], lengths: &[u32]) -> Result<Vec<Bytes>> {
    let total: usize = lengths.iter().map(|&n| n as usize).sum();
    if total != payloads.len() {
        return Err(Error::invalid(format!(
            "the payloads hold {} bytes, their lengths add up to {total}",
            payloads.len()
        )));
    }
    let mut start = 0;
    Ok(lengths
        .iter()
        .map(|&length| {
            let end = start + length as usize;
            let payload = Bytes::copy_from_slice(&payloads[start..end]);
            start = end;
            payload
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_splits_into_payloads_of_their_own() {
        let payloads = split_payloads(b"onetwothree", &[3, 0, 3, 5]).unwrap();
        assert_eq!(payloads, [&b"one"[..], b"", b"two", b"three"]);
        // Unique: no payload keeps another's bytes alive (an empty one holds
        // none).
        assert!(
            payloads
                .iter()
                .filter(|p| !p.is_empty())
                .all(Bytes::is_unique)
        );
        for lengths in [&[3, 3][..], &[3, 3, 6]] {
            let err = split_payloads(b"onetwothree", lengths).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let err = seconds("ack_wait", bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(err.message().contains("ack_wait"));
        }
        assert_eq!(seconds("d", 1.5).unwrap(), Duration::from_millis(1500));
        assert_eq!(millis("d", 250.0).unwrap(), Duration::from_millis(250));
        assert!(count("n", -1).is_err());
    }
}
