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
//! One failure is different: missed idle heartbeats while the broker still
//! pins the partition to this member. The broker stopped sending for a while
//! (a pause under load, a stopped process), but it still holds the pull's
//! waiting requests and knows this pull by the `Nats-Pin-Id` its messages
//! carried. A new pull would not carry that id (the client keeps it inside
//! each pull), and the broker would hold the new pull back until the old pin
//! expired, a whole handover timeout. So the loop first asks the broker who
//! holds the pin (the scheduler hands out nothing of the partition until
//! the answer: the member itself may be cut off, and the broker would then
//! give the pin to another member; see `Event::Doubted`), and reads the
//! same pull on when it is still this one with
//! requests waiting (or when the broker does not answer: the next missed
//! heartbeats ask again, and the pull itself asks anew after a reconnect or
//! when its requests expire, where a broker that lost the pin tells it to
//! pull without one). When the pin is this pull's but the broker holds no
//! request of it (the pull would ask again only when its requests expire),
//! the loop unpins the consumer and opens a new pull, which nobody else
//! waits before. A pull that gives nothing for a moment while its last
//! message said more wait behind it is treated the same way, without
//! waiting for its heartbeats (see [`QUIET`]: async-nats can lose count of
//! the requests it made).
//!
//! Nothing here decides about messages. Without a schema, the open pull
//! itself goes to the scheduler, which reads it beside its other events: a
//! message then reaches the scheduler with no task hand-over on the way
//! (each one is a thread wake-up at a moderate rate). When the pull fails,
//! the scheduler hands the failure back here for the recovery above. With a
//! schema, this task reads the pull and checks each message before handing
//! it over, so a registry look-up never blocks the scheduler.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
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
    elections::Election,
    error::{Error, ErrorKind},
    schema::{SCHEMA_HEADER, SCHEMA_VERSION_HEADER, SchemaBinding},
};

/// What a fetch task needs.
pub(crate) struct Fetch {
    pub(crate) partition: u32,
    /// Which start of the partition's pulls this task is (the scheduler
    /// ignores a pull handed over by a task it has stopped since).
    pub(crate) generation: u64,
    /// Clear the consumer's pin before the first pull (it may still be held
    /// by a pull the scheduler dropped).
    pub(crate) unpin_first: bool,
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
    /// The member's client, whose connection is checked when the broker
    /// does not answer.
    pub(crate) client: Client,
    /// New leaders of the consumer (see [`crate::elections`]).
    pub(crate) election: Election,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    /// Where the pin id of the partition's latest message is kept for the
    /// scheduler (see [`super::fence`]).
    pub(crate) pin: Arc<Mutex<Option<String>>>,
}

/// Pause between two attempts to open a pull after a failure.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Longest wait for the broker's answer about the durable consumer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between a new consumer leader's announcement and asking it about
/// the pin (it announces itself just before it takes requests).
const AFTER_ELECTION: Duration = Duration::from_millis(100);

impl Fetch {
    pub(crate) async fn run(mut self) {
        if self.unpin_first {
            let unpin = super::handover::unpin(&self.stream, self.name());
            let _ = tokio::time::timeout(ASK_TIMEOUT, unpin).await;
        }
        let inner = &self.client.inner;
        inner.elections.subscribe(&inner.nats).await;
        let mut kept: Option<Reading> = None;
        loop {
            let opened = match kept.take() {
                Some(reading) => Ok(reading),
                None => self.open().await.map(|messages| {
                    Reading::new(messages, self.election.clone(), self.pin.clone())
                }),
            };
            let ended = match opened {
                Ok(reading) if self.validation.is_none() => self.hand_over(reading).await,
                Ok(reading) => self.drain(reading).await,
                Err(error) => Some(Ended {
                    error,
                    resumable: None,
                    elected: false,
                    missed: false,
                }),
            };
            let Some(Ended {
                error,
                resumable,
                elected,
                missed,
            }) = ended
            else {
                return; // the scheduler is gone
            };
            if missed && !self.doubt(true) {
                return;
            }
            if elected {
                // The announcement leaves a moment before the new leader
                // answers.
                tokio::time::sleep(AFTER_ELECTION).await;
            }
            let pin = match resumable.as_ref().and_then(|r| r.pin.as_deref()) {
                Some(pin) => self.pin_state(pin).await,
                None => PinState::Elsewhere,
            };
            if pin == PinState::Ours
                && let Some(r) = resumable
            {
                tracing::debug!(
                    partition = self.partition,
                    why = %error,
                    "the broker still pins this pull and holds requests of it, reading it on"
                );
                if missed && !self.doubt(false) {
                    return;
                }
                kept = Some(r);
                continue;
            }
            tracing::debug!(partition = self.partition, error = %error, "pull ended");
            if self
                .events
                .send(Event::FetchFailed {
                    partition: self.partition,
                    error: error.to_string(),
                })
                .is_err()
            {
                return;
            }
            match (pin, resumable) {
                (PinState::NoAnswer, Some(r)) => {
                    // The connected server itself may be frozen.
                    self.client.check_connection();
                    // The pull is kept (see the module's notes), and the
                    // scheduler checks where the partition stands as after
                    // any failure.
                    tracing::debug!(
                        partition = self.partition,
                        "no answer about the pin; reading the pull on"
                    );
                    kept = Some(r);
                    continue;
                }
                (PinState::OursUnasked, _) => {
                    // The pin outlives the pull's requests: a new pull would
                    // wait for it to expire. Nobody else is waiting, so the
                    // new pull gets the partition at once.
                    tracing::debug!(
                        partition = self.partition,
                        "the broker holds no request of this pinned pull; unpinning"
                    );
                    let unpin = super::handover::unpin(&self.stream, self.name());
                    let _ = tokio::time::timeout(ASK_TIMEOUT, unpin).await;
                    continue;
                }
                _ => {}
            }
            tracing::debug!(partition = self.partition, "pulling again");
            // The pause between two pulls while the broker recovers.
            tokio::time::sleep(RETRY_PAUSE).await;
            if self.ensure_durable().await.is_break() {
                return;
            }
        }
    }

    /// Tells the scheduler that the partition's pin is in doubt, or no
    /// longer; false when the scheduler is gone.
    fn doubt(&self, doubted: bool) -> bool {
        let event = Event::Doubted {
            partition: self.partition,
            generation: self.generation,
            doubted,
        };
        self.events.send(event).is_ok()
    }

    async fn open(&self) -> Result<pull::Stream, Error> {
        self.consumer
            .stream()
            .group(PIN_GROUP)
            .max_messages_per_batch(self.batch)
            .expires(self.expires)
            .heartbeat(self.heartbeat)
            .messages()
            .await
            .map_err(|e| Error::from_nats("opening a pull", &e))
    }

    /// The group's durable consumer on this partition.
    fn name(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }

    /// Where the broker stands with the pin of the pull that was last
    /// delivered under `pin`.
    async fn pin_state(&self, pin: &str) -> PinState {
        let asked = self.stream.consumer_info(self.name());
        let info = match tokio::time::timeout(ASK_TIMEOUT, asked).await {
            Err(_) => return PinState::NoAnswer,
            Ok(Err(_)) => return PinState::Elsewhere,
            Ok(Ok(info)) => info,
        };
        let ours = super::pinned(&info) == Some(pin);
        match (ours, info.num_waiting) {
            (false, _) => PinState::Elsewhere,
            (true, 0) => PinState::OursUnasked,
            (true, _) => PinState::Ours,
        }
    }

    /// Gives the open pull to the scheduler and waits until it ends; `None`
    /// when the scheduler is gone or dropped the pull (it stops this task
    /// then too).
    async fn hand_over(&self, reading: Reading) -> Option<Ended> {
        let (ended, failure) = oneshot::channel();
        let event = Event::Opened {
            partition: self.partition,
            generation: self.generation,
            pull: Box::new(Pull { reading, ended }),
        };
        self.events.send(event).ok()?;
        failure.await.ok()
    }

    /// Checks and hands messages over until the pull ends; `None` when the
    /// scheduler is gone.
    async fn drain(&self, mut reading: Reading) -> Option<Ended> {
        reading.moved();
        loop {
            let message = match futures::future::poll_fn(|cx| reading.poll_next(cx)).await {
                Ok(message) => message,
                Err(stop) => return Some(ended(stop, reading)),
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
        let name = self.name().to_owned();
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

/// What the broker says about the pin of a pull that missed its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinState {
    /// Pinned to the pull, with requests waiting: it reads on.
    Ours,
    /// Pinned to the pull, but no request waits (the broker holds none of
    /// the pull's, though the pull counts some as open: it would ask again
    /// only when they expire).
    OursUnasked,
    /// Pinned to another pull, or to none.
    Elsewhere,
    /// No answer in time.
    NoAnswer,
}

/// An open pull on its way to the scheduler, with where its end goes.
pub(crate) struct Pull {
    pub(crate) reading: Reading,
    pub(crate) ended: oneshot::Sender<Ended>,
}

/// An open pull, and the pin id its last message was delivered under.
pub(crate) struct Reading {
    messages: pull::Stream,
    pin: Option<String>,
    /// The partition's copy of `pin`, written when it changes.
    shared_pin: Arc<Mutex<Option<String>>>,
    /// The last message said more wait behind it: from the moment the pull
    /// has nothing more to give, it may stay quiet for [`QUIET`] only.
    expecting: bool,
    /// Runs out [`QUIET`] after it was last set (made at the first quiet
    /// moment, set again when it ran out and a message came meanwhile: a
    /// silence is told between one and two `QUIET` after the last message,
    /// without reading the clock for each message).
    quiet: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A message came since `quiet` was last set.
    seen: bool,
    /// New leaders of the consumer: the pull's requests went to the old
    /// one, so the pull stops at the announcement (see
    /// [`crate::elections`]).
    election: Election,
    /// The wait for the next announcement, made when the pull first waits.
    announced: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// How long a pull may give nothing while its last message said more wait
/// behind it, before the broker is asked whether it holds a request of the
/// pull. async-nats counts a pull request as open from the moment its
/// publish returned; the broker's answers to it that arrive before are
/// subtracted from a count that is still zero, and lost. The pull then
/// waits for messages the broker was never asked for: it holds no request,
/// so it sends no idle heartbeat either, and without this only the missed
/// heartbeats (two sixths of the handover timeout) would tell. A broker
/// that holds messages back (the group's `max_ack_pending` reached) still
/// holds the request: the pull is read on, and asked about again only after
/// its next message.
const QUIET: Duration = Duration::from_millis(200);

/// What a pull gave: a message, or the end of the pull (`None`: it ended;
/// `Some`: it stopped).
type Next = Result<jetstream::Message, Option<Stop>>;

/// Why a pull stopped: as async-nats tells, quiet while messages wait, or
/// a new consumer leader was announced.
enum Stop {
    Quiet,
    Elected,
    Failed(MessagesError),
}

impl Reading {
    fn new(
        messages: pull::Stream,
        mut election: Election,
        shared_pin: Arc<Mutex<Option<String>>>,
    ) -> Self {
        // Only a later election stops this pull.
        election.mark_seen();
        Self {
            messages,
            pin: None,
            shared_pin,
            expecting: false,
            quiet: None,
            seen: false,
            election,
            announced: None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        let next = self.poll_messages(cx);
        if next.is_pending() {
            // The wait for an announcement is polled once per reader (it
            // keeps that reader's waker); after that a look at the counter
            // is enough, and costs no lock on every quiet poll.
            let elected = match &mut self.announced {
                None => self
                    .announced
                    .insert(Box::pin(self.election.next()))
                    .as_mut()
                    .poll(cx)
                    .is_ready(),
                Some(_) => self.election.happened(),
            };
            if elected {
                self.announced = None;
                self.election.mark_seen();
                return Poll::Ready(Err(Some(Stop::Elected)));
            }
        }
        next
    }

    /// The pull is read by another task from now on: the wait for an
    /// announcement is made again for its waker.
    fn moved(&mut self) {
        self.announced = None;
    }

    fn poll_messages(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        match self.messages.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(message))) => {
                if note_pin(&mut self.pin, &message) {
                    *self.shared_pin.lock().unwrap_or_else(|e| e.into_inner()) = self.pin.clone();
                }
                self.expecting = message.reply.as_deref().is_some_and(more_waiting);
                self.seen = true;
                Poll::Ready(Ok(message))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(Some(Stop::Failed(e)))),
            Poll::Ready(None) => Poll::Ready(Err(None)),
            Poll::Pending if !self.expecting => Poll::Pending,
            Poll::Pending => {
                let timer = match &mut self.quiet {
                    Some(timer) => timer,
                    none => {
                        self.seen = false;
                        // The quiet deadline itself (polled beside the
                        // pull, never awaited on its own): not a wait.
                        none.insert(Box::pin(tokio::time::sleep(QUIET)))
                    }
                };
                loop {
                    futures::ready!(timer.as_mut().poll(cx));
                    if !std::mem::take(&mut self.seen) {
                        break;
                    }
                    timer.as_mut().reset(tokio::time::Instant::now() + QUIET);
                }
                // Asked about once per message that said more wait.
                self.expecting = false;
                self.quiet = None;
                Poll::Ready(Err(Some(Stop::Quiet)))
            }
        }
    }
}

/// Whether the broker said, delivering a message with the acknowledgement
/// subject `reply`, that more messages wait behind it: the count of
/// pending messages in that subject,
/// the last token (`$JS.ACK.<stream>.<consumer>.<deliveries>.<stream seq>.
/// <consumer seq>.<time>.<pending>`) or, in the form with a domain and an
/// account (12 tokens and more), the one before a last random token.
fn more_waiting(reply: &str) -> bool {
    let mut tokens = reply.rsplit('.');
    let last = tokens.next();
    let pending = if reply.bytes().filter(|b| *b == b'.').count() >= 11 {
        tokens.next()
    } else {
        last
    };
    pending.is_some_and(|p| p != "0")
}

/// Why a pull ended, with the pull itself when it may be read on (it missed
/// its idle heartbeats).
pub(crate) struct Ended {
    error: Error,
    resumable: Option<Reading>,
    /// A new consumer leader was announced.
    elected: bool,
    /// The pull missed its idle heartbeats: nothing came from the broker
    /// for two of them, the member may be cut off.
    missed: bool,
}

/// A pull read by the scheduler: its messages tagged with the partition, then
/// one last item (`Err` inside) when it ends or fails.
pub(crate) struct Open {
    partition: u32,
    reading: Option<Reading>,
}

/// What [`Open`] yields: the partition, and a message or how the pull ended.
pub(crate) type Pulled = (u32, Result<jetstream::Message, Ended>);

impl Open {
    pub(crate) fn new(partition: u32, mut reading: Reading) -> Self {
        reading.moved();
        Self {
            partition,
            reading: Some(reading),
        }
    }
}

impl Stream for Open {
    type Item = Pulled;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Pulled>> {
        let partition = self.partition;
        let Some(reading) = self.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let pulled = futures::ready!(reading.poll_next(cx))
            .map_err(|stop| ended(stop, self.reading.take().expect("polled above")));
        Poll::Ready(Some((partition, pulled)))
    }
}

/// Keeps the pin id the broker delivered `message` under (every message of
/// a pinned pull carries it; the broker's comes last); true when it changed.
fn note_pin(pin: &mut Option<String>, message: &jetstream::Message) -> bool {
    let id = message
        .headers
        .as_ref()
        .and_then(|h| h.get_last(async_nats::header::NATS_PIN_ID));
    if let Some(id) = id
        && pin.as_deref() != Some(id.as_str())
    {
        *pin = Some(id.as_str().to_owned());
        return true;
    }
    false
}

/// How a pull ended: one that missed its heartbeats or went quiet while
/// messages wait may be read on.
fn ended(stop: Option<Stop>, reading: Reading) -> Ended {
    let missed =
        matches!(&stop, Some(Stop::Failed(e)) if e.kind() == MessagesErrorKind::MissingHeartbeat);
    let resumable = missed || matches!(stop, Some(Stop::Quiet | Stop::Elected));
    Ended {
        elected: matches!(stop, Some(Stop::Elected)),
        missed,
        error: failure(stop),
        resumable: resumable.then_some(reading),
    }
}

/// Why a pull ended.
fn failure(stop: Option<Stop>) -> Error {
    let e = match stop {
        Some(Stop::Failed(e)) => e,
        Some(Stop::Quiet) => {
            return Error::new(
                ErrorKind::Timeout,
                "the pull went quiet while messages wait",
            );
        }
        Some(Stop::Elected) => {
            return Error::new(
                ErrorKind::Timeout,
                "a new consumer leader was elected (the pull's requests went to the old one)",
            );
        }
        None => return Error::new(ErrorKind::Connection, "the pull ended"),
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

#[cfg(test)]
mod tests {
    use super::more_waiting;

    #[test]
    fn the_pending_count_is_read_from_either_form_of_ack_subject() {
        assert!(more_waiting(
            "$JS.ACK.S.C.1.42.42.1796331415506950172.85408"
        ));
        assert!(!more_waiting("$JS.ACK.S.C.1.42.42.1796331415506950172.0"));
        assert!(more_waiting(
            "$JS.ACK.D.HASH.S.C.1.42.42.1796331415506950172.7.X1y2"
        ));
        assert!(!more_waiting(
            "$JS.ACK.D.HASH.S.C.1.42.42.1796331415506950172.0.X1y2"
        ));
    }
}
