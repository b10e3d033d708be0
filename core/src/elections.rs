//! New stream and consumer leaders, as the broker announces them.
//!
//! When a node of a cluster dies, every stream and consumer it led is
//! without a leader until the other replicas elect one; nats-server's
//! replicas wait 4 to 9 s (its raft election timeout) before one stands.
//! Meanwhile nothing answers a publish to the stream, a read of it or a
//! pull, and a part that waits for an answer would only try again when its
//! own timeout ran out: a producer's pipeline when its attempt timed out
//! (2 s) and its backoff ended (up to `retry_max`), a group's pull when it
//! missed its idle heartbeats. That is seconds on top of the election. A new
//! leader announces itself on
//! `$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.<stream>` or
//! `$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.<stream>.<consumer>`; a part
//! that watches its stream or consumer here stops waiting then, and asks
//! again after a short pause (the announcement leaves the new leader a
//! moment before it takes requests).
//!
//! One subscription per client, made when the first part watches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use tokio::sync::watch;

/// The announcements' subjects: `<ADVISORIES><what>` where `what` is
/// `STREAM.LEADER_ELECTED.<stream>` or
/// `CONSUMER.LEADER_ELECTED.<stream>.<consumer>`.
const ADVISORIES: &str = "$JS.EVENT.ADVISORY.";

/// The client's watch on leader announcements.
#[derive(Debug, Default)]
pub(crate) struct Elections {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The task reading the announcements, once subscribed.
    reader: Option<tokio::task::AbortHandle>,
    /// One counter per watched stream or consumer (by the end of its
    /// announcements' subject), raised at each of its elections.
    watched: HashMap<String, watch::Sender<u64>>,
}

impl Elections {
    /// Subscribes to the announcements, once per client. Without the
    /// subscription (refused, for example by the user's permissions) no
    /// watch fires, and each part only has its own timeouts.
    pub(crate) async fn subscribe(&self, nats: &async_nats::Client) {
        if self.state.lock().unwrap().reader.is_some() {
            return;
        }
        match nats
            .subscribe(format!("{ADVISORIES}*.LEADER_ELECTED.>"))
            .await
        {
            Ok(subscriber) => {
                let mut state = self.state.lock().unwrap();
                if state.reader.is_none() {
                    let task = tokio::spawn(read(subscriber, Arc::downgrade(&self.state)));
                    state.reader = Some(task.abort_handle());
                }
                // Else another part subscribed meanwhile: this subscriber
                // is dropped, which unsubscribes it.
            }
            Err(e) => tracing::debug!(error = %e, "cannot watch leader elections"),
        }
    }

    /// A watch on `stream`'s elections.
    pub(crate) fn stream(&self, stream: &str) -> Election {
        self.watch(format!("STREAM.LEADER_ELECTED.{stream}"))
    }

    /// A watch on the elections of `stream`'s consumer `consumer`.
    pub(crate) fn consumer(&self, stream: &str, consumer: &str) -> Election {
        self.watch(format!("CONSUMER.LEADER_ELECTED.{stream}.{consumer}"))
    }

    fn watch(&self, what: String) -> Election {
        let mut state = self.state.lock().unwrap();
        let sender = state
            .watched
            .entry(what)
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

/// Raises the counter of each watched stream or consumer whose new leader
/// is announced.
async fn read(mut subscriber: async_nats::Subscriber, state: std::sync::Weak<Mutex<State>>) {
    while let Some(message) = subscriber.next().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut state = state.lock().unwrap();
        // What no part watches any more is forgotten.
        state.watched.retain(|_, s| s.receiver_count() > 0);
        let what = message.subject.as_str().strip_prefix(ADVISORIES);
        if let Some(sender) = what.and_then(|w| state.watched.get(w)) {
            tracing::debug!(what = what.unwrap_or_default(), "new leader");
            sender.send_modify(|n| *n += 1);
        }
    }
}

/// One part's watch on its stream's or consumer's elections.
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

    /// Whether an election happened since the last [`Self::mark_seen`]
    /// (one atomic read).
    pub(crate) fn happened(&self) -> bool {
        self.seen.has_changed().unwrap_or(false)
    }

    /// Whether an election happened since the last look; counts it seen.
    pub(crate) fn take(&mut self) -> bool {
        let happened = self.happened();
        self.seen.mark_unchanged();
        happened
    }

    /// Completes at the first election not yet seen (at once if one
    /// happened since [`Self::mark_seen`]); never when nothing watches.
    pub(crate) fn next(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut seen = self.seen.clone();
        async move {
            if seen.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
