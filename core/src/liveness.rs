//! Whether the server a client is connected to still answers.
//!
//! A frozen server (a stopped process, a peer cut off without a reset)
//! keeps its socket open: the connection looks alive, and async-nats would
//! only notice when its pings go unanswered (minutes, with its default ping
//! interval). Until then every request on the connection times out and every
//! pull is silent, whatever the rest of the cluster does. So a part that
//! gets no answer from the broker asks here: a message published to an
//! inbox of this connection's own must come back through the server within
//! [`PROBE_TIMEOUT`]; when it does not, the connection is dropped and made
//! again (to another node of a cluster). A server that only elects a leader
//! still echoes at once, so an election does not reconnect anyone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;

/// How long the echo may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One probe at a time per connection (clones share it).
#[derive(Debug, Default, Clone)]
pub(crate) struct Liveness {
    probing: Arc<AtomicBool>,
}

impl Liveness {
    /// Checks the connection in the background (nothing when a check is
    /// already under way).
    pub(crate) fn check(&self, nats: &async_nats::Client) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (nats, probing) = (nats.clone(), self.probing.clone());
        tokio::spawn(async move {
            if !echoes(&nats).await {
                tracing::warn!("the server does not answer (frozen or cut off); connecting again");
                if let Err(e) = nats.force_reconnect().await {
                    tracing::debug!(error = %e, "cannot reconnect now");
                }
            }
            probing.store(false, Ordering::Release);
        });
    }
}

/// Whether a message sent to this connection's own inbox comes back.
async fn echoes(nats: &async_nats::Client) -> bool {
    let inbox = nats.new_inbox();
    let Ok(mut echo) = nats.subscribe(inbox.clone()).await else {
        return true; // not connected now: async-nats is reconnecting already
    };
    if nats.publish(inbox, "".into()).await.is_err() {
        return true;
    }
    match tokio::time::timeout(PROBE_TIMEOUT, echo.next()).await {
        Ok(_) => true,
        Err(_) => matches!(
            nats.connection_state(),
            async_nats::connection::State::Disconnected | async_nats::connection::State::Pending
        ),
    }
}
