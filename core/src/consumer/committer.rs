//! Sends a member's commits from one task, in order, coalescing.
//!
//! A commit is an `AckAll` acknowledgement of the last message of a
//! partition's finished prefix, and acknowledging sequence `s` commits every
//! message before it too. So when commits of a partition queue up faster than
//! they leave, only the latest of them needs to be sent: under load one
//! acknowledgement covers many messages, and the scheduler never spawns a
//! task per message. One task also keeps each partition's acknowledgements in
//! the order they were decided (the broker ignores an `AckAll` whose delivery
//! sequence is not above the last one it applied).

use std::{collections::BTreeMap, sync::Arc};

use async_nats::jetstream::{self, AckKind};
use tokio::sync::{mpsc, oneshot};

enum Command {
    Commit {
        partition: u32,
        message: Arc<jetstream::Message>,
    },
    Flush(oneshot::Sender<()>),
}

/// Handle to the commit task; the task ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<Command>,
}

impl Committer {
    /// `confirmed`: each commit waits for the broker's confirmation (a
    /// double ack) before the next is sent.
    pub(crate) fn start(client: async_nats::Client, confirmed: bool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, client, confirmed));
        Self { tx }
    }

    /// Commits `partition` up to `message` (and everything before it).
    pub(crate) fn commit(&self, partition: u32, message: Arc<jetstream::Message>) {
        let _ = self.tx.send(Command::Commit { partition, message });
    }

    /// Waits until every commit decided so far is written to the server.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Command>,
    client: async_nats::Client,
    confirmed: bool,
) {
    let mut latest: BTreeMap<u32, Arc<jetstream::Message>> = BTreeMap::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                Command::Commit { partition, message } => {
                    latest.insert(partition, message);
                }
                Command::Flush(done) => flushes.push(done),
            }
            next = rx.try_recv().ok();
        }
        for (_, message) in std::mem::take(&mut latest) {
            let sent = match confirmed {
                true => message.double_ack().await,
                false => message.ack_with(AckKind::Ack).await,
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "commit not confirmed; a later one or a redelivery covers it");
            }
        }
        if !flushes.is_empty() {
            if let Err(e) = client.flush().await {
                tracing::debug!(error = %e, "commits not flushed");
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
}
