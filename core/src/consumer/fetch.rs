//! The pull loop of one partition of a group member.
//!
//! A pull can die in many ways on a cluster: the consumer's leader moves or
//! dies (idle heartbeats stop), the client reconnects to another node, the
//! pull expires unanswered, the server answers "no responders", or the
//! durable consumer is gone (deleted, or lost with its stream's state). The
//! loop treats each the same way: drop the pull, make sure the durable
//! exists (recreating it with the group's configuration when it does not),
//! and pull again. Every failure is reported to the scheduler, which shows
//! it in [`super::Consumer::health`] and asks the broker where the partition
//! stands (a resync), because a new consumer leader may not know what the
//! old one delivered.
//!
//! Nothing here decides about messages. Without a schema, the open pull
//! itself goes to the scheduler, which reads it beside its other events: a
//! message then reaches the scheduler with no task hand-over on the way
//! (each one is a thread wake-up at a moderate rate). When the pull fails,
//! the scheduler hands the failure back here for the recovery above. With a
//! schema, this task reads the pull and checks each message before handing
//! it over, so a registry look-up never blocks the scheduler.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::pull::{self, MessagesError, MessagesErrorKind},
    context::ConsumerInfoErrorKind,
};
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::{PIN_GROUP, scheduler::Event};
use crate::{
    client::Client,
    error::{Error, ErrorKind},
    schema::{SCHEMA_HEADER, SCHEMA_VERSION_HEADER, SchemaBinding},
};

/// What a fetch task needs.
pub(crate) struct Fetch {
    pub(crate) partition: u32,
    /// Which start of the partition's pulls this task is (the scheduler
    /// ignores a pull handed over by a task it has stopped since).
    pub(crate) generation: u64,
    pub(crate) stream: jetstream::stream::Stream<()>,
    pub(crate) consumer: jetstream::consumer::Consumer<pull::Config>,
    /// The group's consumer configuration, to recreate the durable with.
    pub(crate) config: pull::Config,
    /// Reading the snapshot lane (whose consumer goes when the lane is over).
    pub(crate) phase: Option<super::snapshot::Phase>,
    /// The partition's committed stream sequence, as the scheduler knows it:
    /// a recreated durable starts right after it.
    pub(crate) committed: Arc<AtomicU64>,
    pub(crate) batch: usize,
    pub(crate) expires: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) validation: Option<(Client, SchemaBinding)>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
}

/// Pause between two attempts to open a pull after a failure.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Longest wait for the broker's answer about the durable consumer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

impl Fetch {
    pub(crate) async fn run(mut self) {
        loop {
            let failure = match self.open().await {
                Ok(messages) if self.validation.is_none() => self.hand_over(messages).await,
                Ok(messages) => self.drain(messages).await,
                Err(e) => e,
            };
            let Some(failure) = failure else {
                return; // the scheduler is gone
            };
            tracing::debug!(partition = self.partition, error = %failure, "pull ended; pulling again");
            if self
                .events
                .send(Event::FetchFailed {
                    partition: self.partition,
                    error: failure.to_string(),
                })
                .is_err()
            {
                return;
            }
            // The pause between two pulls while the broker recovers.
            tokio::time::sleep(RETRY_PAUSE).await;
            if self.ensure_durable().await.is_break() {
                return;
            }
        }
    }

    async fn open(&self) -> Result<pull::Stream, Option<Error>> {
        self.consumer
            .stream()
            .group(PIN_GROUP)
            .max_messages_per_batch(self.batch)
            .expires(self.expires)
            .heartbeat(self.heartbeat)
            .messages()
            .await
            .map_err(|e| Some(Error::from_nats("opening a pull", &e)))
    }

    /// Gives the open pull to the scheduler and waits until it fails; `None`
    /// when the scheduler is gone or dropped the pull (it stops this task
    /// then too).
    async fn hand_over(&self, messages: pull::Stream) -> Option<Error> {
        let (ended, failure) = oneshot::channel();
        let event = Event::Opened {
            partition: self.partition,
            generation: self.generation,
            pull: Box::new(Pull { messages, ended }),
        };
        self.events.send(event).ok()?;
        failure.await.ok()
    }

    /// Checks and hands messages over until the pull fails; `None` when the
    /// scheduler is gone.
    async fn drain(&self, mut messages: pull::Stream) -> Option<Error> {
        loop {
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                other => return Some(failure(other)),
            };
            let invalid = match &self.validation {
                Some((client, binding)) => check_schema(client, binding, &message).await,
                None => None,
            };
            let event = Event::Fetched {
                partition: self.partition,
                message: Arc::new(message),
                invalid,
            };
            self.events.send(event).ok()?;
        }
    }

    /// Makes sure the group's durable consumer exists; recreates it with the
    /// same configuration when the broker says it does not.
    /// Breaks when the snapshot lane is over (the scheduler was told).
    async fn ensure_durable(&mut self) -> std::ops::ControlFlow<()> {
        let name = self.config.durable_name.clone().unwrap_or_default();
        // Bounded: without a consumer leader the question times out, and
        // pulling again soon is what brings the partition back.
        let found = tokio::time::timeout(ASK_TIMEOUT, self.stream.consumer_info(&name)).await;
        match found {
            // No answer (no leader yet), or the durable exists: pull again.
            Err(_) | Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() != ConsumerInfoErrorKind::NotFound => {}
            Ok(Err(_)) => {
                if let Some(phase) = &self.phase
                    && let Some(follow) = super::snapshot::followed(phase, &name).await
                {
                    // Another member ended the snapshot lane.
                    let _ = self.events.send(Event::SnapshotOver {
                        partition: self.partition,
                        follow: Box::new(Ok(follow)),
                    });
                    return std::ops::ControlFlow::Break(());
                }
                tracing::warn!(
                    partition = self.partition,
                    group = %name,
                    "the group's consumer is gone; creating it again"
                );
                let mut config = self.config.clone();
                let committed = self.committed.load(Ordering::Acquire);
                if committed > 0 {
                    config.deliver_policy = jetstream::consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: committed + 1,
                    };
                }
                match self.stream.create_consumer(config).await {
                    Ok(consumer) => {
                        self.consumer = consumer;
                        // Its delivery counts start again at 1.
                        let _ = self.events.send(Event::Recreated {
                            partition: self.partition,
                        });
                    }
                    Err(e) => tracing::warn!(
                        partition = self.partition,
                        error = %e,
                        "cannot create the group's consumer yet"
                    ),
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// An open pull on its way to the scheduler, with where its failure goes.
pub(crate) struct Pull {
    pub(crate) messages: pull::Stream,
    pub(crate) ended: oneshot::Sender<Error>,
}

/// A pull read by the scheduler: its messages tagged with the partition, then
/// one last item (`None` inside) when it ends or fails.
pub(crate) struct Open {
    partition: u32,
    messages: pull::Stream,
    over: bool,
}

/// What [`Open`] yields: the partition, and a message or why the pull ended.
pub(crate) type Pulled = (u32, Option<Result<jetstream::Message, MessagesError>>);

impl Open {
    pub(crate) fn new(partition: u32, messages: pull::Stream) -> Self {
        Self {
            partition,
            messages,
            over: false,
        }
    }
}

impl Stream for Open {
    type Item = Pulled;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Pulled>> {
        if self.over {
            return Poll::Ready(None);
        }
        let item = futures::ready!(self.messages.poll_next_unpin(cx));
        self.over = !matches!(item, Some(Ok(_)));
        Poll::Ready(Some((self.partition, item)))
    }
}

/// Why a pull ended, from its last item.
pub(crate) fn failure(item: Option<Result<jetstream::Message, MessagesError>>) -> Error {
    let e = match item {
        Some(Err(e)) => e,
        _ => return Error::new(ErrorKind::Connection, "the pull ended"),
    };
    match e.kind() {
        MessagesErrorKind::MissingHeartbeat => Error::new(
            ErrorKind::Timeout,
            "missed idle heartbeats (consumer leader moved or node lost)",
        ),
        MessagesErrorKind::ConsumerDeleted => Error::not_found("the group's consumer was deleted"),
        MessagesErrorKind::NoResponders => Error::new(
            ErrorKind::Connection,
            "no responders for the pull (no consumer leader)",
        ),
        _ => Error::from_nats("pulling messages", &e),
    }
}

/// Validates a fetched message against the schema its headers name (or the
/// station's binding, for messages from foreign producers). Returns why it
/// does not match.
pub(crate) async fn check_schema(
    client: &Client,
    binding: &SchemaBinding,
    message: &jetstream::Message,
) -> Option<String> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.to_string())
    };
    let name = header(SCHEMA_HEADER).unwrap_or_else(|| binding.name.clone());
    let version = header(SCHEMA_VERSION_HEADER)
        .and_then(|v| v.parse().ok())
        .or(binding.version);
    loop {
        match client.compiled_schema(&name, version).await {
            Ok((compiled, version)) => {
                return compiled.validate(&message.payload).err().map(|detail| {
                    format!("schema validation failed: schema {name:?} version {version}: {detail}")
                });
            }
            // Definitive: the schema or version does not exist, or is broken.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
                return Some(format!("schema validation failed: {}", e.message()));
            }
            // The registry is unreachable for now: the message waits.
            Err(e) => {
                tracing::warn!(error = %e, "cannot load schema; retrying");
                // Retry delay while the registry is unreachable; the message waits meanwhile.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
