//! New stream leaders, as the broker announces them.
//!
//! When a node of a cluster dies, every stream it led is without a leader
//! until the other replicas elect one; nats-server's replicas wait 4 to 9 s
//! (its raft election timeout) before one stands. Meanwhile nothing answers
//! a publish to the stream or a read of it, and a producer's pipeline that
//! waits for an answer would only try again once its attempt timed out
//! (2 s) and its backoff ended (up to `retry_max`): seconds on top of the
//! election. The new leader announces itself on
//! `$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.<stream>`; a pipeline that
//! watches its stream here ends the attempt and the backoff it waits in, and
//! tries again after the first backoff step (the announcement leaves the
//! new leader a moment before it takes publishes).
//!
//! One subscription per client, made when the first pipeline watches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use tokio::sync::watch;

const ANNOUNCED: &str = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED";

/// The client's watch on leader announcements.
#[derive(Debug, Default)]
pub(crate) struct Elections {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The task reading the announcements, once subscribed.
    reader: Option<tokio::task::AbortHandle>,
    /// One counter per watched stream, raised at each of its elections.
    streams: HashMap<String, watch::Sender<u64>>,
}

impl Elections {
    /// A watch on `stream`'s elections. Without the subscription (refused,
    /// for example by the user's permissions) the watch never fires, and
    /// the pipeline only has its timeouts, as before.
    pub(crate) async fn watch(&self, nats: &async_nats::Client, stream: &str) -> Election {
        let subscribe = self.state.lock().unwrap().reader.is_none();
        if subscribe {
            match nats.subscribe(format!("{ANNOUNCED}.*")).await {
                Ok(subscriber) => {
                    let mut state = self.state.lock().unwrap();
                    if state.reader.is_none() {
                        let task = tokio::spawn(read(subscriber, Arc::downgrade(&self.state)));
                        state.reader = Some(task.abort_handle());
                    }
                    // Else another watch subscribed meanwhile: this
                    // subscriber is dropped, which unsubscribes it.
                }
                Err(e) => tracing::debug!(error = %e, "cannot watch leader elections"),
            }
        }
        let mut state = self.state.lock().unwrap();
        let sender = state
            .streams
            .entry(stream.to_string())
            .or_insert_with(|| watch::channel(0).0);
        Election {
            seen: sender.subscribe(),
        }
    }
}

impl Drop for Elections {
    fn drop(&mut self) {
        if let Some(reader) = &self.state.lock().unwrap().reader {
            reader.abort();
        }
    }
}

/// Raises the counter of each stream whose new leader is announced.
async fn read(mut subscriber: async_nats::Subscriber, state: std::sync::Weak<Mutex<State>>) {
    while let Some(message) = subscriber.next().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut state = state.lock().unwrap();
        // Streams no pipeline watches any more are forgotten.
        state.streams.retain(|_, s| s.receiver_count() > 0);
        let stream = message
            .subject
            .as_str()
            .strip_prefix(ANNOUNCED)
            .and_then(|s| s.strip_prefix('.'));
        if let Some(sender) = stream.and_then(|s| state.streams.get(s)) {
            tracing::debug!(stream = stream.unwrap_or_default(), "new stream leader");
            sender.send_modify(|n| *n += 1);
        }
    }
}

/// One pipeline's watch on its stream's elections.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    seen: watch::Receiver<u64>,
}

impl Election {
    /// A watch that never fires (a pipeline without a client's watch).
    pub(crate) fn never() -> Self {
        // Its sender is gone at once: `next` waits forever.
        Self {
            seen: watch::channel(0).1,
        }
    }

    /// Counts every election so far as seen: [`Self::next`] waits for a
    /// later one.
    pub(crate) fn mark_seen(&mut self) {
        self.seen.mark_unchanged();
    }

    /// Whether an election happened since the last look; counts it seen.
    pub(crate) fn take(&mut self) -> bool {
        let happened = self.seen.has_changed().unwrap_or(false);
        self.seen.mark_unchanged();
        happened
    }

    /// Completes at the first election not yet seen (at once if one
    /// happened since [`Self::mark_seen`]); never when nothing watches.
    pub(crate) async fn next(&self) {
        let mut seen = self.seen.clone();
        if seen.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
