//! The ordered pipeline of one partition (see the parent module for why it
//! is correct).
//!
//! One unit is in flight at a time: a single message, or a batch of the
//! messages that queued up while the previous unit was on its way (a fast
//! batch once the partition's last sequence is known, see [`super::fast`];
//! an atomic batch otherwise). The next unit leaves only once the broker
//! confirmed the previous one, so nothing of ours can be missing before it,
//! and an atomic batch is stored whole or not at all, contiguously. What a
//! fast batch's answer does not prove stored is read back from the
//! partition (its generated ids have no deduplication record), and the rest
//! is sent again as an atomic batch, or, while the batch may still be
//! arriving, one message at a time expecting the partition's end. A failed
//! unit is sent again (after a
//! backoff when the failure is transient); a unit the broker refuses as a
//! batch is sent again one message at a time, so that a permanent failure is
//! pinned on the message that caused it, and that message and everything
//! behind it fail.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use async_nats::{
    HeaderMap, HeaderName,
    jetstream::{
        self,
        context::{PublishError, PublishErrorKind},
        message::PublishMessage,
        publish::PublishAck,
        stream::RawMessageErrorKind,
    },
};
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder, backoff::Backoff};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{
    Pending, ProducerOptions, Receipt,
    fast::{self, Outcome, Replies},
};
use crate::{
    elections::Election,
    error::{Error, ErrorKind},
    headers,
    telemetry::Recorder,
};

/// The server's largest atomic batch (nats-server's default
/// `max_batch_size`).
pub(super) const MAX_ATOMIC_BATCH: usize = 1000;

/// How long one attempt waits for the broker's answer before sending the
/// unit again. A leader that died with the unit is silent, and the replicas
/// that are not leaders drop publishes without answering, so waiting for the
/// client's full request timeout only lengthens the pause after a node loss;
/// sending again is safe (ids are deduplicated).
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a pipeline sends atomic batches only after a fast batch found
/// another producer's message where it expected its own last one: while
/// producers share a partition, each fast batch would be refused at its
/// first message.
const FAST_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a unit failed.
enum Failure {
    /// Retry after a backoff.
    Transient(Error),
    /// The partition stream may be gone: check, then retry or fail.
    NoStream(Error),
    /// The broker refused the batch as a whole (a message in it is refused,
    /// or the batch repeats an id that is already stored): send its messages
    /// one at a time.
    Unbatchable(Error),
    /// The stream does not take atomic batches (created by an older
    /// version): send every message on its own from now on.
    BatchesDisabled(Error),
    /// Fail the message and everything behind it.
    Permanent(Error),
}

pub(super) struct Worker {
    js: jetstream::Context,
    station: String,
    /// The station's name shared by every telemetry sample.
    station_name: Arc<str>,
    stream: String,
    partition: u32,
    options: ProducerOptions,
    rx: mpsc::UnboundedReceiver<Pending>,
    /// The unit being sent: unconfirmed, in send order.
    unit: VecDeque<Pending>,
    /// Send `unit` one message at a time (after a batch was refused).
    singly: bool,
    /// The stream refused batches (created without atomic publish): every
    /// unit is a single message from now on.
    no_batches: bool,
    /// Fast batches are possible: the server has them (2.14+) and the
    /// stream has not refused them.
    fast_batches: bool,
    /// The partition's last sequence as this pipeline last confirmed it
    /// (its own message, not a duplicate): what a fast batch expects.
    /// `None` until known, and after anything that leaves it unsure.
    last_sequence: Option<u64>,
    /// No fast batch before this instant (another producer writes here).
    fast_paused_until: Option<Instant>,
    /// The next unit goes as an atomic batch: a fast batch stopped at a
    /// refused message, or was refused for a reason that says nothing
    /// about the stream.
    atomic_next: bool,
    /// The reply inbox of the fast batches, subscribed at the first one.
    replies: Option<Replies>,
    /// The `base` of a fast batch of the unit whose answer did not prove
    /// what it stored: looked up before anything of the unit is sent again
    /// (see [`Worker::settle`]).
    unsettled: Option<u64>,
    /// After such a batch: the sequence the partition must end at for the
    /// unit's first message, which is sent alone expecting it (see
    /// [`Worker::send_first_guarded`]).
    guard: Option<u64>,
    backoff: ExponentialBackoff,
    telemetry: Arc<Recorder>,
    /// Checks the connection after a send the broker did not answer.
    liveness: crate::liveness::Liveness,
    /// New leaders of the partition's stream: an attempt waiting for an
    /// answer, or a backoff, ends when one is announced (see
    /// [`crate::elections`]).
    election: Election,
}

impl Worker {
    pub(super) fn new(
        js: jetstream::Context,
        station: String,
        stream: String,
        partition: u32,
        options: ProducerOptions,
        rx: mpsc::UnboundedReceiver<Pending>,
        telemetry: Arc<Recorder>,
    ) -> Self {
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_interval(options.retry_initial)
            .with_max_interval(options.retry_max)
            .with_multiplier(2.0)
            .with_randomization_factor(0.3)
            .with_max_elapsed_time(None)
            .build();
        Self {
            js,
            station_name: station.as_str().into(),
            station,
            stream,
            partition,
            options,
            rx,
            unit: VecDeque::new(),
            singly: false,
            no_batches: false,
            fast_batches: false,
            last_sequence: None,
            fast_paused_until: None,
            atomic_next: false,
            replies: None,
            unsettled: None,
            guard: None,
            backoff,
            telemetry,
            liveness: Default::default(),
            election: Election::never(),
        }
    }

    /// Checks the client's connection with `liveness` when a send gets no
    /// answer (see [`crate::liveness`]).
    pub(super) fn with_liveness(mut self, liveness: crate::liveness::Liveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// Watches the partition stream's elections with `election`.
    pub(super) fn with_election(mut self, election: Election) -> Self {
        self.election = election;
        self
    }

    /// Lets the pipeline send fast batches (the server has them).
    pub(super) fn with_fast_batches(mut self, on: bool) -> Self {
        self.fast_batches = on;
        self
    }

    pub(super) async fn run(mut self) {
        loop {
            if self.unit.is_empty() {
                match self.rx.recv().await {
                    Some(first) => self.fill_unit(first).await,
                    None => return,
                }
                self.singly = self.no_batches;
            }
            // An election before this attempt is no reason to end it.
            self.election.mark_seen();
            let attempt = if let Some(base) = self.unsettled {
                self.settle(base).await
            } else if let Some(expected) = self.guard {
                self.send_first_guarded(expected).await
            } else if self.singly || self.unit.len() == 1 || self.learns_alone() {
                self.send_first_alone().await
            } else if let Some(base) = self.fast_base() {
                self.send_fast(base).await
            } else {
                self.send_batch().await
            };
            if let Err(failure) = attempt {
                self.on_failure(failure).await;
            }
        }
    }

    /// Takes `first` and whatever else is queued, up to the batch limits,
    /// waiting up to `linger` for the unit to fill.
    async fn fill_unit(&mut self, first: Pending) {
        let limit = self
            .options
            .max_batch_messages
            .min(self.options.max_in_flight);
        let mut bytes = first.payload.len();
        self.unit.push_back(first);
        let linger_until = Instant::now() + self.options.linger;
        while self.unit.len() < limit && bytes < self.options.max_batch_bytes {
            let next = match self.rx.try_recv() {
                Ok(p) => Some(p),
                Err(_) if self.options.linger.is_zero() => None,
                Err(_) => {
                    let left = linger_until.saturating_duration_since(Instant::now());
                    tokio::time::timeout(left, self.rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
            match next {
                Some(p) => {
                    bytes += p.payload.len();
                    self.unit.push_back(p);
                }
                None => break,
            }
        }
    }

    /// Sends the unit's first message on its own and resolves it.
    async fn send_first_alone(&mut self) -> std::result::Result<(), Failure> {
        let first = self.unit.front().expect("a unit is never empty here");
        let publish = PublishMessage::build()
            .payload(first.payload.clone())
            .headers(first.header_map());
        let ack = self.publish(first.subject.clone(), publish, false).await?;
        let pending = self.unit.pop_front().expect("checked above");
        self.confirmed(pending, ack.sequence, ack.duplicate);
        if self.unit.is_empty() {
            self.singly = self.no_batches;
        }
        Ok(())
    }

    /// Sends the unit's first [`MAX_ATOMIC_BATCH`] messages (all of a unit
    /// that is not longer) as one atomic batch: every message but the last
    /// without a reply (a message lost on the way shows as a gap that makes
    /// the broker refuse the commit), the last one committing the batch. The
    /// rest of a longer unit stays for the next attempt.
    async fn send_batch(&mut self) -> std::result::Result<(), Failure> {
        let span = tracing::debug_span!(
            "batch",
            station = %self.station,
            partition = self.partition,
            messages = self.unit.len().min(MAX_ATOMIC_BATCH),
        );
        // Instrumented, not entered: a span entered across an await is
        // entered on whatever thread polls next (and closed twice).
        self.send_batch_in_span().instrument(span).await
    }

    async fn send_batch_in_span(&mut self) -> std::result::Result<(), Failure> {
        let batch_id = nuid::next().to_string();
        let count = self.unit.len().min(MAX_ATOMIC_BATCH);
        let nats = self.js.client();
        for (i, pending) in self.unit.iter().enumerate().take(count - 1) {
            let headers = batch_headers(pending, &batch_id, i + 1, false);
            if let Err(e) = nats
                .publish_with_headers(pending.subject.clone(), headers, pending.payload.clone())
                .await
            {
                return Err(Failure::Transient(Error::new(
                    ErrorKind::Connection,
                    format!("publishing a batch to {}: {e}", self.stream),
                )));
            }
        }
        let last = &self.unit[count - 1];
        let publish = PublishMessage::build()
            .payload(last.payload.clone())
            .headers(batch_headers(last, &batch_id, count, true));
        let ack = self.publish(last.subject.clone(), publish, true).await?;
        self.atomic_next = false;
        // An atomic batch is stored contiguously, ending at the ack's sequence.
        self.confirm_front(count, ack.sequence + 1 - count as u64);
        Ok(())
    }

    /// Fast batches may be sent now.
    fn fast_open(&mut self) -> bool {
        if !self.fast_batches || self.no_batches {
            return false;
        }
        if let Some(until) = self.fast_paused_until {
            if Instant::now() < until {
                return false;
            }
            self.fast_paused_until = None;
        }
        true
    }

    /// The sequence a fast batch can expect, if one may be sent now.
    fn fast_base(&mut self) -> Option<u64> {
        if !self.fast_open() {
            return None;
        }
        self.last_sequence
    }

    /// Where the partition ends is unknown (the first unit, or after a
    /// failure) while fast batches may be sent: the unit's first message
    /// goes alone and its acknowledgement tells, so that the rest can go as
    /// a fast batch. An atomic batch instead would be staged by a
    /// one-replica file stream in a file store of its own, created and
    /// removed for each batch (milliseconds before it is answered).
    fn learns_alone(&mut self) -> bool {
        self.last_sequence.is_none() && !self.atomic_next && self.fast_open()
    }

    /// Sends the unit as a fast batch whose messages expect the partition
    /// to end at `base`, `base + 1`, … (see [`fast`]). What the answer
    /// proves is confirmed; anything else stays in the unit for the atomic
    /// path, which is taken at once (the partition's last sequence is
    /// unknown until it confirms a message).
    async fn send_fast(&mut self, base: u64) -> std::result::Result<(), Failure> {
        let span = tracing::debug_span!(
            "fast_batch",
            station = %self.station,
            partition = self.partition,
            messages = self.unit.len(),
        );
        self.send_fast_in_span(base).instrument(span).await
    }

    async fn send_fast_in_span(&mut self, base: u64) -> std::result::Result<(), Failure> {
        let nats = self.js.client();
        if self.replies.is_none() {
            let replies = Replies::new(&nats).await.map_err(|e| {
                Failure::Transient(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "subscribing to the fast batch answers of {}: {e}",
                        self.stream
                    ),
                ))
            })?;
            self.replies = Some(replies);
        }
        let replies = self.replies.as_mut().expect("set above");
        let outcome = fast::send(&nats, replies, &self.unit, base, ATTEMPT_TIMEOUT).await;
        self.last_sequence = None;
        // Messages with generated ids went without a deduplication id: until
        // it is known which of them the broker stored, none is sent again.
        let without_dedup = self.unit.iter().any(|p| p.generated_id);
        match outcome {
            Ok(Outcome::Stored { count }) => {
                self.confirm_front(count, base + 1);
                if !self.unit.is_empty() {
                    // The batch stopped at a refused message: the atomic
                    // path sends the rest and pins the refusal.
                    self.last_sequence = None;
                    self.atomic_next = true;
                }
                Ok(())
            }
            Ok(Outcome::Unproven { code, detail }) => {
                // A refusal can come for a later message of the batch (its
                // batch unknown to a restarted server or a new leader) after
                // earlier ones were stored: only a stream that takes no fast
                // batches at all has surely stored none of them.
                if without_dedup && code != Some(fast::BATCH_PUBLISH_DISABLED) {
                    self.unsettled = Some(base);
                }
                self.fast_refused(code, &detail);
                Ok(())
            }
            Err(detail) => {
                if without_dedup {
                    self.unsettled = Some(base);
                }
                Err(Failure::Transient(Error::new(
                    ErrorKind::Timeout,
                    format!("{}: {detail}", self.stream),
                )))
            }
        }
    }

    /// What a fast batch that stored nothing proven says about the next
    /// ones: none on this stream, none for a while, or no change.
    fn fast_refused(&mut self, code: Option<u64>, detail: &str) {
        match code {
            Some(fast::BATCH_PUBLISH_DISABLED) => {
                tracing::info!(
                    station = %self.station, partition = self.partition,
                    "the partition stream does not take fast batches (created by an older \
                     version or server): atomic batches only; update_station enables them"
                );
                self.fast_batches = false;
            }
            Some(fast::WRONG_LAST_SEQUENCE) => {
                tracing::debug!(
                    station = %self.station, partition = self.partition, %detail,
                    "another producer writes this partition; atomic batches for a while"
                );
                self.fast_paused_until = Some(Instant::now() + FAST_PAUSE);
            }
            _ => {
                tracing::debug!(
                    station = %self.station, partition = self.partition, %detail,
                    "fast batch not proven stored; the rest of the unit goes as an atomic batch"
                );
                self.atomic_next = true;
            }
        }
    }

    /// Finds which of the unit's messages an unproven fast batch stored
    /// and confirms them. Its messages with generated ids carried no
    /// deduplication id, so sending one again before knowing whether the
    /// broker stored it could store it twice. What the broker stored of the
    /// batch is a prefix of the unit at `base + 1`, `base + 2`, … (each
    /// message expected the one before it, see [`fast`]), so reading from
    /// `base + 1` until a message is not the unit's next one tells how many.
    ///
    /// Messages of the batch still on their way (or proposed to the
    /// replicas and not yet applied, so not readable) can only extend that
    /// prefix, and only while the partition ends with it. So when nothing
    /// follows the prefix, the unit's next message is sent alone expecting
    /// the partition to end with the prefix ([`Self::send_first_guarded`]):
    /// whichever copy comes first is stored, the other is refused. When
    /// another message follows, nothing more of the batch can be stored and
    /// the rest goes the usual way, with deduplication ids.
    async fn settle(&mut self, base: u64) -> std::result::Result<(), Failure> {
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| Failure::Permanent(Error::invalid(e.to_string())))?;
        let mut stored = 0usize;
        let nothing_after = loop {
            let Some(expected) = self.unit.get(stored) else {
                // All of the unit is stored: nothing of it is left to send.
                break true;
            };
            let sequence = base + 1 + stored as u64;
            let read = self
                .until_elected(ATTEMPT_TIMEOUT, stream.get_raw_message(sequence))
                .await;
            let unread = |detail: String| {
                Failure::Transient(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "reading {} at {sequence} to find what a fast batch stored: {detail}",
                        self.stream
                    ),
                ))
            };
            match read {
                Some(Ok(message)) if stored_id(&message.headers) == Some(&expected.msg_id) => {
                    stored += 1;
                }
                // Another message: another producer's, or one of ours that
                // failed before.
                Some(Ok(_)) => break false,
                Some(Err(e)) if e.kind() == RawMessageErrorKind::NoMessageFound => break true,
                Some(Err(e)) => return Err(unread(e.to_string())),
                None => return Err(unread(format!("no answer within {ATTEMPT_TIMEOUT:?}"))),
            }
        };
        tracing::debug!(
            station = %self.station, partition = self.partition, stored, nothing_after,
            "looked up what an unproven fast batch stored"
        );
        self.confirm_front(stored, base + 1);
        self.unsettled = None;
        self.guard = (nothing_after && !self.unit.is_empty()).then_some(base + stored as u64);
        if !nothing_after {
            self.last_sequence = None;
        }
        Ok(())
    }

    /// Sends the unit's first message alone, with its deduplication id and
    /// expecting the partition to end at `expected` (after an unproven fast
    /// batch, see [`Self::settle`]). Refused for another last sequence, the
    /// partition is read again from `expected`.
    async fn send_first_guarded(&mut self, expected: u64) -> std::result::Result<(), Failure> {
        static EXPECTED: HeaderName = HeaderName::from_static(headers::EXPECTED_LAST_SEQUENCE);
        let first = self.unit.front().expect("a unit is never empty here");
        let mut h = first.header_map();
        h.insert(EXPECTED.clone(), expected.to_string());
        let publish = PublishMessage::build()
            .payload(first.payload.clone())
            .headers(h);
        let ack = match self.publish_answer(first.subject.clone(), publish).await {
            Ok(ack) => ack,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                self.guard = None;
                self.unsettled = Some(expected);
                return Ok(());
            }
            Err(e) => return Err(classify(&self.stream, &e, false)),
        };
        let pending = self.unit.pop_front().expect("checked above");
        // A duplicate right where the batch would have put it is the batch's
        // own copy: the rest of the batch may still follow it.
        let own_copy = ack.duplicate && ack.sequence == expected + 1;
        self.guard = (own_copy && !self.unit.is_empty()).then_some(ack.sequence);
        self.confirmed(pending, ack.sequence, ack.duplicate);
        if own_copy {
            self.last_sequence = Some(ack.sequence);
        }
        Ok(())
    }

    async fn publish(
        &self,
        subject: async_nats::Subject,
        publish: PublishMessage,
        batch: bool,
    ) -> std::result::Result<PublishAck, Failure> {
        self.publish_answer(subject, publish)
            .await
            .map_err(|e| classify(&self.stream, &e, batch))
    }

    /// Publishes and waits up to [`ATTEMPT_TIMEOUT`] for the broker's answer.
    async fn publish_answer(
        &self,
        subject: async_nats::Subject,
        publish: PublishMessage,
    ) -> std::result::Result<PublishAck, PublishError> {
        match self.js.send_publish(subject, publish).await {
            Ok(ack) => match self.until_elected(ATTEMPT_TIMEOUT, ack.into_future()).await {
                Some(answer) => answer,
                None => Err(PublishError::new(PublishErrorKind::TimedOut)),
            },
            Err(e) => Err(e),
        }
    }

    /// `answer`, unless `limit` passes first or a new leader of the stream
    /// is announced meanwhile: then the request went to no leader (or a
    /// dead one) and no answer will come; `None` as for a timeout.
    async fn until_elected<T>(
        &self,
        limit: std::time::Duration,
        answer: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            answer = tokio::time::timeout(limit, answer) => answer.ok(),
            _ = self.election.next() => {
                tracing::debug!(
                    station = %self.station, partition = self.partition,
                    "a new leader was announced while waiting for an answer; asking it"
                );
                None
            }
        }
    }

    /// The first `count` messages of the unit are stored, from `first` on.
    fn confirm_front(&mut self, count: usize, first: u64) {
        self.backoff.reset();
        // One clock reading for the run's send durations.
        let now = Instant::now();
        for i in 0..count {
            let pending = self.unit.pop_front().expect("count <= unit length");
            self.confirmed_at(pending, first + i as u64, false, now);
        }
    }

    fn confirmed(&mut self, pending: Pending, sequence: u64, duplicate: bool) {
        self.backoff.reset();
        self.confirmed_at(pending, sequence, duplicate, Instant::now());
    }

    fn confirmed_at(&mut self, pending: Pending, sequence: u64, duplicate: bool, now: Instant) {
        // A duplicate names where the first copy went, not where the
        // partition ends.
        self.last_sequence = (!duplicate).then_some(sequence);
        self.record(&pending, None, now);
        let receipt = Receipt {
            station: self.station.clone(),
            partition: self.partition,
            sequence,
            duplicate,
            msg_id: pending.msg_id,
        };
        let _ = pending.reply.send(Ok(receipt));
    }

    /// A send's duration: its deadline is its enqueue time plus the
    /// delivery timeout.
    fn record(&self, pending: &Pending, error: Option<ErrorKind>, now: Instant) {
        let enqueued = pending.deadline - self.options.delivery_timeout;
        self.telemetry.sent(
            &self.station_name,
            self.partition,
            now.saturating_duration_since(enqueued),
            error,
        );
    }

    async fn on_failure(&mut self, failure: Failure) {
        let Some(first) = self.unit.front() else {
            return;
        };
        let deadline = first.deadline;
        let cause = match failure {
            Failure::Unbatchable(e) => {
                tracing::debug!(
                    station = %self.station, partition = self.partition, error = %e,
                    "batch refused; sending its messages one at a time"
                );
                self.singly = true;
                None
            }
            Failure::BatchesDisabled(e) => {
                tracing::warn!(
                    station = %self.station, partition = self.partition, error = %e,
                    "the partition stream does not take atomic batches (created by an older \
                     version): every message is sent on its own; update_station enables batches"
                );
                self.no_batches = true;
                self.singly = true;
                None
            }
            Failure::Permanent(e) => Some(e),
            // No responders: the stream has no leader for now (an election)
            // or was deleted. Asked briefly: without a leader the question
            // times out too, and the unit is simply sent again.
            Failure::NoStream(e) => {
                match self
                    .until_elected(ATTEMPT_TIMEOUT, self.js.get_stream(&self.stream))
                    .await
                {
                    Some(Err(err)) if Error::from_nats("", &err).kind() == ErrorKind::NotFound => {
                        Some(Error::not_found(format!(
                            "station {:?} (partition {}) no longer exists; it was deleted while \
                         this producer was sending",
                            self.station, self.partition
                        )))
                    }
                    _ => self.wait_or_expire(deadline, e).await,
                }
            }
            Failure::Transient(e) => {
                tracing::debug!(
                    station = %self.station, partition = self.partition, error = %e,
                    "send failed; retrying"
                );
                if e.kind() == ErrorKind::Timeout {
                    // The connected server itself may be frozen.
                    self.liveness.check(&self.js.client());
                }
                self.wait_or_expire(deadline, e).await
            }
        };
        if let Some(cause) = cause {
            self.fail_tail(cause);
        }
    }

    /// Backs off before a retry; returns the error to fail with when the
    /// first message's delivery timeout passes first.
    async fn wait_or_expire(&mut self, deadline: Instant, cause: Error) -> Option<Error> {
        if self.election.take() {
            // The attempt ended because a new leader was announced: the
            // waits start again from the first step.
            self.backoff.reset();
        }
        let delay = self
            .backoff
            .next_backoff()
            .unwrap_or(self.options.retry_max);
        if Instant::now() + delay >= deadline {
            return Some(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the broker did not confirm the message within the delivery timeout of \
                     {:?} (last error: {}); it may or may not be stored: sending it again with \
                     the same msg_id is safe within the station's dedup window",
                    self.options.delivery_timeout,
                    cause.message()
                ),
            ));
        }
        tracing::debug!(station = %self.station, partition = self.partition, ?delay, "retrying");
        // The exponential backoff (with jitter) between two attempts, cut
        // short by a new leader: then only the first step is waited, which
        // leaves the leader the moment between its announcement and taking
        // publishes.
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.election.next() => {
                self.election.mark_seen();
                self.backoff.reset();
                let step = self.backoff.next_backoff().unwrap_or(self.options.retry_initial);
                tracing::debug!(
                    station = %self.station, partition = self.partition, ?step,
                    "a new leader was announced; retrying"
                );
                tokio::time::sleep(step).await;
            }
        }
        None
    }

    /// Fails the unit's first message with `cause`, and every message behind
    /// it in this partition (the rest of the unit and everything queued now)
    /// with an error naming it.
    fn fail_tail(&mut self, cause: Error) {
        let mut tail = std::mem::take(&mut self.unit);
        while let Ok(p) = self.rx.try_recv() {
            tail.push_back(p);
        }
        let Some(first) = tail.pop_front() else {
            return;
        };
        tracing::warn!(
            station = %self.station,
            partition = self.partition,
            msg_id = %first.msg_id,
            error = %cause,
            behind = tail.len(),
            "message failed; failing the messages behind it"
        );
        let behind = Error::new(
            cause.kind(),
            format!(
                "not stored: an earlier message of station {:?} partition {} (msg_id {}) \
                 failed, and nothing is stored after a gap; that failure: {}",
                self.station,
                self.partition,
                first.msg_id,
                cause.message()
            ),
        );
        let now = Instant::now();
        self.record(&first, Some(cause.kind()), now);
        let _ = first.reply.send(Err(cause));
        for p in tail {
            self.record(&p, Some(behind.kind()), now);
            let _ = p.reply.send(Err(behind.clone()));
        }
        self.singly = self.no_batches;
        self.unsettled = None;
        self.guard = None;
        self.last_sequence = None;
        self.atomic_next = false;
        self.backoff.reset();
    }
}

/// A stored message's id: its deduplication id or the producer's.
fn stored_id(map: &HeaderMap) -> Option<&str> {
    map.get(headers::PRODUCER_ID)
        .or_else(|| map.get(headers::MSG_ID))
        .map(|v| v.as_str())
}

/// The message's headers plus the atomic batch ones.
fn batch_headers(pending: &Pending, batch_id: &str, sequence: usize, commit: bool) -> HeaderMap {
    let mut h = pending.header_map();
    h.insert(BATCH_ID_HEADER.clone(), batch_id);
    h.insert(BATCH_SEQUENCE_HEADER.clone(), sequence.to_string());
    if commit {
        h.insert(BATCH_COMMIT_HEADER.clone(), "1");
    }
    h
}

static BATCH_ID_HEADER: HeaderName = HeaderName::from_static(headers::BATCH_ID);
static BATCH_SEQUENCE_HEADER: HeaderName = HeaderName::from_static(headers::BATCH_SEQUENCE);
static BATCH_COMMIT_HEADER: HeaderName = HeaderName::from_static(headers::BATCH_COMMIT);

/// The broker's API error behind a publish error, if it answered with one.
fn api_error(err: &PublishError) -> Option<&jetstream::Error> {
    std::error::Error::source(err).and_then(|s| s.downcast_ref::<jetstream::Error>())
}

/// Error codes of nats-server (`server/errors.json`).
const ATOMIC_PUBLISH_DISABLED: u64 = 10174;

fn classify(stream: &str, err: &PublishError, batch: bool) -> Failure {
    let context = format!("publishing to {stream}");
    match err.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Failure::Transient(Error::from_nats(&context, err)),
        PublishErrorKind::StreamNotFound => Failure::NoStream(Error::new(
            ErrorKind::Connection,
            format!("{context}: no responders (the stream is unavailable)"),
        )),
        PublishErrorKind::MaxPayloadExceeded if !batch => Failure::Permanent(Error::new(
            ErrorKind::PayloadTooLarge,
            format!("{context}: {err}; split the message or raise the server's max_payload"),
        )),
        _ => {
            let e = Error::from_nats(&context, err);
            let api = api_error(err);
            if api.is_some_and(|a| a.error_code().0 == ATOMIC_PUBLISH_DISABLED) {
                return Failure::BatchesDisabled(e);
            }
            // 503: no leader yet, storage catching up; 409: an id still in
            // process (a copy of ours being proposed); 429: too many
            // batches at once. All pass.
            if api.is_some_and(|a| matches!(a.code(), 503 | 409 | 429))
                || e.kind() == ErrorKind::Timeout
            {
                Failure::Transient(e)
            } else if batch {
                // Incomplete (a message lost on the way), an id that is
                // already stored, or a message the stream refuses: sent one
                // at a time, each message is settled on its own.
                Failure::Unbatchable(e)
            } else {
                // Limits with discard new, permissions…: will not pass.
                Failure::Permanent(e)
            }
        }
    }
}
