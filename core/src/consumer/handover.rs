//! Handing a partition over: what a member does with what it still holds of
//! a partition that moves to another member (or when it closes).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind};

use super::{
    PIN_GROUP,
    book::{Entry, FORGOTTEN, commit_prefix},
    committer::Committer,
};
use crate::error::{Error, Result};

/// How often, and how far apart, a release re-checks that the broker applied
/// every settlement before committing.
const RELEASE_SYNC_ATTEMPTS: u32 = 5;
const RELEASE_SYNC_PAUSE: Duration = Duration::from_millis(50);

/// What a member still holds of a partition it gives away.
pub(crate) struct Release {
    pub(crate) committer: Committer,
    pub(crate) stream: jetstream::stream::Stream<()>,
    pub(crate) group: String,
    pub(crate) entries: BTreeMap<u64, Entry<Arc<jetstream::Message>>>,
    pub(crate) in_sync: bool,
    pub(crate) last_delivery: u64,
}

impl Release {
    /// Commits the finished prefix (after a last sync check if needed),
    /// gives back the rest at once, and unpins so the next owner starts now.
    pub(crate) async fn run(mut self) -> Result<()> {
        let mut result = Ok(());
        // Commits decided before the release reach the broker first.
        self.committer.flush().await;
        // Settlements sent just before (a dead letter's term, a nak) may not
        // be applied by the broker yet: check a few times before giving up.
        let mut attempts = 0;
        while !self.in_sync && !self.entries.is_empty() && attempts < RELEASE_SYNC_ATTEMPTS {
            if attempts > 0 {
                // Waiting for the broker to apply acknowledgements in flight.
                tokio::time::sleep(RELEASE_SYNC_PAUSE).await;
            }
            attempts += 1;
            if let Ok(info) = self.stream.consumer_info(&self.group).await {
                // A message held across a consumer reset is not pending at
                // the broker until it is delivered again.
                let ours = self
                    .entries
                    .values()
                    .filter(|e| e.delivery != FORGOTTEN)
                    .count();
                self.in_sync = info.delivered.consumer_sequence == self.last_delivery
                    && info.num_ack_pending == ours;
            }
        }
        if self.in_sync
            && let Some((_, last)) = commit_prefix(&mut self.entries, None)
            && let Err(e) = last.double_ack().await
        {
            result = Err(Error::from_nats(
                "committing a released partition",
                e.as_ref(),
            ));
        }
        // Everything not committed goes back at once, finished or not: the
        // next owner gets it now instead of after ack_wait (at least once).
        for entry in self.entries.values() {
            let _ = entry.raw.ack_with(AckKind::Nak(None)).await;
        }
        unpin(&self.stream, &self.group).await;
        result
    }
}

/// Clears the pin of `group`'s consumer on a partition, so the next pull
/// gets the partition now; on failure the pin expires by itself.
pub(crate) async fn unpin(stream: &jetstream::stream::Stream<()>, group: &str) {
    if let Err(e) = stream.unpin_consumer(group, PIN_GROUP).await {
        tracing::debug!(error = %e, "unpin failed; the pin expires by itself");
    }
}
