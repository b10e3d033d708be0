//! Resetting a partition's consumer to its commit point (see
//! `Scheduler::check_lost`) without losing the delivery counts.
//!
//! After a reset the broker delivers everything uncommitted again and
//! counts deliveries from 1 (nats-server's `resetLocalStartingSeq` clears
//! them). A member that resets remembers what it held, but the messages may
//! reach another member first: the one that reset can vanish right after,
//! or lose the partition before its next pull. So before resetting, a
//! member records in the consumer's metadata the highest stream sequence
//! the broker had delivered: every message at or below it has been
//! delivered before. Every member reads it with the consumer info it asks
//! for anyway (see `Scheduler::on_synced`) and counts such a message as
//! delivered at least twice: the application sees it flagged, and exactly
//! once looks it up.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};

use super::committer::Committer;

/// Consumer metadata: every message at or below this stream sequence was
/// delivered before a reset.
const DELIVERED_THROUGH: &str = "jetstation.delivered_through";

/// Longest wait for the broker's answer to the reset.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the record before a reset. Writing it needs the leader
/// of the metadata layer, which answers at once when there is one; a
/// request sent while it is being elected gets no answer, and is better
/// sent again soon (see the scheduler's `RECORD_RETRY`).
const RECORD_TIMEOUT: Duration = Duration::from_secs(1);

/// What a consumer's configuration says was delivered before a reset (0:
/// nothing, or no reset yet).
pub(crate) fn delivered_through(config: &consumer::Config) -> u64 {
    config
        .metadata
        .get(DELIVERED_THROUGH)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets `group`'s consumer on `stream` to its commit point, after the
/// commits decided before and after recording where deliveries stood.
/// Returns that record (also on a failed reset: it is stored), or why
/// nothing was reset.
pub(crate) async fn reset(
    stream: &jetstream::stream::Stream<()>,
    group: &str,
    committer: &Committer,
) -> (Option<u64>, Option<String>) {
    // Commits decided before go first.
    committer.flush().await;
    let through = match step(RECORD_TIMEOUT, record(stream, group)).await {
        Ok(through) => through,
        Err(e) => {
            return (
                None,
                Some(format!("cannot record the deliveries before a reset: {e}")),
            );
        }
    };
    let reset = async {
        stream
            .reset_consumer(group, None)
            .await
            .map_err(|e| e.to_string())
    };
    let error = step(STEP_TIMEOUT, reset).await.err();
    let _ = tokio::time::timeout(STEP_TIMEOUT, super::handover::unpin(stream, group)).await;
    (Some(through), error)
}

/// Stores in the consumer's metadata the highest stream sequence delivered
/// so far (kept if an earlier reset stored a higher one).
async fn record(stream: &jetstream::stream::Stream<()>, group: &str) -> Result<u64, String> {
    let info = stream
        .consumer_info(group)
        .await
        .map_err(|e| e.to_string())?;
    let mut config = info.config.clone();
    let stored = delivered_through(&config);
    let through = stored.max(info.delivered.stream_sequence);
    if through > stored {
        config
            .metadata
            .insert(DELIVERED_THROUGH.to_string(), through.to_string());
        stream
            .update_consumer(config)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(through)
}

async fn step<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err("no answer from the broker".to_owned()))
}
