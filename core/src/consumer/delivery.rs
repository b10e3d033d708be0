//! What the application holds: received messages and how they are settled.
//!
//! Every message handed out gets a [`DeliveryId`] and a place in the member's
//! [`Ledger`] until it is settled. Settling goes through the ledger, so it
//! happens once whoever does it: the [`Delivery`] itself, or
//! [`super::Consumer::settle`] with the id alone (what a binding or the gateway
//! keeps across a language boundary). A second settle is refused with
//! `InvalidArgument`; nothing reaches the scheduler twice.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    book::{Fast, Token},
    fence::Fence,
    scheduler::Event,
};
use crate::error::{Error, Result};

/// Reason recorded for a nack that gives none (shown on a dead letter).
pub const DEFAULT_NACK_REASON: &str = "nacked by the application";
/// Reason recorded for a term that gives none.
pub const DEFAULT_TERM_REASON: &str = "terminated by the application";
/// Reason recorded when a delivery is dropped unsettled.
const DROPPED_REASON: &str = "dropped without being settled";

/// A received message (what a handler sees).
#[derive(Debug, Clone, Default)]
pub struct ReceivedMessage {
    pub station: String,
    pub partition: u32,
    /// Sequence in its partition.
    pub sequence: u64,
    pub key: Option<String>,
    pub payload: Bytes,
    /// Every header stored with the message, application and jetstation ones
    /// (`Jst-…`, `Nats-Msg-Id`), sorted by name; not the producer's order
    /// guard (`Nats-Expected-Last-Sequence`).
    pub headers: Vec<(String, String)>,
    pub msg_id: Option<String>,
    /// 1 on the first delivery.
    pub deliveries: u64,
}

impl ReceivedMessage {
    /// A tombstone: its key was deleted (see [`crate::Producer::delete`]).
    pub fn is_delete(&self) -> bool {
        self.header(crate::headers::OP) == Some("delete")
    }

    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Identifies one hand-out of a message to the application, unique within a
/// member (a message handed out again gets a new id).
pub type DeliveryId = u64;

/// How the application settles a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Done: committed once every earlier message of its partition is done.
    Ack,
    /// Failed: redelivered after `delay` (or the growing default), or
    /// dead-lettered when this was the last allowed delivery.
    Nack {
        delay: Option<Duration>,
        reason: Option<String>,
    },
    /// Never process again: dead-lettered at once.
    Term { reason: Option<String> },
    /// Not processed, and not failed: handed out again (this member keeps it
    /// first in its key's line) without counting a delivery. For a loop that
    /// stops early; closing the member gives it back to the group.
    Release,
}

/// How a delivery was settled, as the scheduler sees it.
pub(crate) type Outcome = super::book::Settle;

impl From<Settlement> for Outcome {
    fn from(s: Settlement) -> Self {
        match s {
            Settlement::Ack => Outcome::Ack,
            Settlement::Nack { delay, reason } => Outcome::Nack {
                delay,
                reason: reason.unwrap_or_else(|| DEFAULT_NACK_REASON.into()),
            },
            Settlement::Term { reason } => Outcome::Term {
                reason: reason.unwrap_or_else(|| DEFAULT_TERM_REASON.into()),
            },
            Settlement::Release => Outcome::Release,
        }
    }
}

/// The deliveries a member has handed out and not yet had settled.
#[derive(Debug)]
pub(crate) struct Ledger {
    held: Mutex<HashMap<DeliveryId, Held, Fast>>,
    next_id: std::sync::atomic::AtomicU64,
    events: mpsc::UnboundedSender<Event>,
    fence: Arc<Fence>,
}

#[derive(Debug)]
struct Held {
    token: Token,
    raw: Arc<jetstream::Message>,
    /// Its partition was given up after a stall (see [`super::fence`]):
    /// settling it does nothing, and succeeds.
    given_up: bool,
}

impl Ledger {
    pub(crate) fn new(events: mpsc::UnboundedSender<Event>, fence: Arc<Fence>) -> Arc<Self> {
        Arc::new(Self {
            held: Mutex::default(),
            next_id: 1.into(),
            events,
            fence,
        })
    }

    /// Records a hand-out and returns the delivery the application gets;
    /// `given_up`: the fence's count of partitions given up, now.
    pub(crate) fn hand_out(
        self: &Arc<Self>,
        token: Token,
        raw: Arc<jetstream::Message>,
        message: ReceivedMessage,
        given_up: u64,
    ) -> Delivery {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let held = Held {
            token,
            raw,
            given_up: false,
        };
        self.held.lock().unwrap().insert(id, held);
        Delivery {
            message,
            id,
            ledger: self.clone(),
            detached: false,
            given_up,
        }
    }

    pub(crate) fn settle(&self, id: DeliveryId, outcome: Outcome) -> Result<()> {
        let Some(held) = self.held.lock().unwrap().remove(&id) else {
            return Err(Error::invalid(format!(
                "delivery {id} is unknown or already settled: a message is acked, nacked, \
                 terminated or released once"
            )));
        };
        if held.given_up {
            return Ok(());
        }
        self.events
            .send(Event::Settled {
                token: held.token,
                outcome,
            })
            .map_err(|_| Error::closed("consumer"))
    }

    fn is_held(&self, id: DeliveryId) -> bool {
        self.held.lock().unwrap().contains_key(&id)
    }

    /// Whether the partition of a delivery handed out under the fence's
    /// count `since` was given up after.
    fn is_given_up(&self, id: DeliveryId, since: u64) -> bool {
        // The count is an atomic; the lock is taken only once it moved.
        since != self.fence.given_up()
            && self
                .held
                .lock()
                .unwrap()
                .get(&id)
                .is_some_and(|held| held.given_up)
    }

    /// Every delivery of `partition` the application holds is given up:
    /// its settlement will do nothing.
    pub(crate) fn give_up(&self, partition: u32) {
        for held in self.held.lock().unwrap().values_mut() {
            held.given_up |= held.token.partition == partition;
        }
    }

    pub(crate) fn in_progress(
        &self,
        id: DeliveryId,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        let raw = self
            .held
            .lock()
            .unwrap()
            .get(&id)
            .map(|held| (!held.given_up).then(|| held.raw.clone()))
            .ok_or_else(|| {
                Error::invalid(format!("delivery {id} is unknown or already settled"))
            })?;
        Ok(async move {
            match raw {
                Some(raw) => raw
                    .ack_with(AckKind::Progress)
                    .await
                    .map_err(|e| Error::from_nats("sending in-progress", e.as_ref())),
                None => Ok(()),
            }
        })
    }
}

/// A message handed to the application. Settle it once with `ack`, `nack`,
/// `term` or `release`; dropping it unsettled counts as a `nack`.
pub struct Delivery {
    message: ReceivedMessage,
    id: DeliveryId,
    ledger: Arc<Ledger>,
    /// Settled by id through the consumer: dropping it does nothing.
    detached: bool,
    /// The fence's count of partitions given up when it was handed out.
    pub(crate) given_up: u64,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("message", &self.message)
            .finish()
    }
}

impl std::ops::Deref for Delivery {
    type Target = ReceivedMessage;
    fn deref(&self) -> &ReceivedMessage {
        &self.message
    }
}

impl Delivery {
    pub fn message(&self) -> &ReceivedMessage {
        &self.message
    }

    pub fn id(&self) -> DeliveryId {
        self.id
    }

    /// Its partition was given up after a stall since it was handed out.
    pub(crate) fn is_given_up(&self) -> bool {
        self.ledger.is_given_up(self.id, self.given_up)
    }

    /// Whether the delivery is still this member's to run, asked right
    /// before its handler starts by code that takes it on another thread
    /// or event loop than the one that handed it out (a binding's language
    /// runtime). The process may stop between the hand-out and the start,
    /// and the group may run the message elsewhere meanwhile (see
    /// [`super::Consumer::next`]). `None` while the member checks its
    /// partitions after such a stall: wait with [`Self::claim`]. `Some(false)`:
    /// its partition was given up, so the message must not run here, and
    /// settling it does nothing.
    pub fn claim_now(&self) -> Option<bool> {
        self.ledger.fence.open().then(|| !self.is_given_up())
    }

    /// [`Self::claim_now`], waiting for the member's verdict after a stall;
    /// false also once the consumer is closed.
    pub async fn claim(&self) -> bool {
        self.claim_future().await
    }

    /// [`Delivery::claim`] as a future that owns what it needs.
    pub fn claim_future(&self) -> impl Future<Output = bool> + Send + 'static {
        let (ledger, id, given_up) = (self.ledger.clone(), self.id, self.given_up);
        async move {
            let events = &ledger.events;
            ledger.fence.until_open(|| events.is_closed()).await
                && !ledger.is_given_up(id, given_up)
        }
    }

    /// Moves the message out (for a handler that owns it); the delivery
    /// keeps only what settling needs.
    pub fn take_message(&mut self) -> ReceivedMessage {
        std::mem::take(&mut self.message)
    }

    /// Keeps only the id: the message stays held until
    /// [`super::Consumer::settle`] settles it (or the member closes).
    pub fn detach(mut self) -> (DeliveryId, ReceivedMessage) {
        self.detached = true;
        (self.id, self.take_message())
    }

    /// Settles the delivery; a second settle is refused with `InvalidArgument`.
    pub fn settle(&self, settlement: Settlement) -> Result<()> {
        self.ledger.settle(self.id, settlement.into())
    }

    /// Done: counted as finished; committed once every earlier message of
    /// its partition is finished too.
    pub fn ack(&self) -> Result<()> {
        self.settle(Settlement::Ack)
    }

    /// Failed: redelivered after `delay` (or the growing default), or
    /// dead-lettered when this was the last allowed delivery.
    pub fn nack(&self, delay: Option<Duration>) -> Result<()> {
        self.settle(Settlement::Nack {
            delay,
            reason: None,
        })
    }

    /// Like [`Delivery::nack`], recording why (shown on the dead letter).
    pub fn nack_with_reason(
        &self,
        reason: impl Into<String>,
        delay: Option<Duration>,
    ) -> Result<()> {
        self.settle(Settlement::Nack {
            delay,
            reason: Some(reason.into()),
        })
    }

    /// Never process this message again: it goes to the dead-letter station
    /// at once, with `reason`.
    pub fn term(&self, reason: impl Into<String>) -> Result<()> {
        self.settle(Settlement::Term {
            reason: Some(reason.into()),
        })
    }

    /// Gives the message back unprocessed without counting a failed delivery.
    pub fn release(&self) -> Result<()> {
        self.settle(Settlement::Release)
    }

    /// Still working: postpones the redelivery of this message by `ack_wait`.
    pub async fn in_progress(&self) -> Result<()> {
        self.in_progress_future()?.await
    }

    /// [`Delivery::in_progress`] as a future that owns what it needs.
    pub fn in_progress_future(&self) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        self.ledger.in_progress(self.id)
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.detached && self.ledger.is_held(self.id) {
            let _ = self.ledger.settle(
                self.id,
                Outcome::Nack {
                    delay: None,
                    reason: DROPPED_REASON.into(),
                },
            );
        }
    }
}
