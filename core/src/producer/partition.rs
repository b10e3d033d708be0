//! The ordered pipeline of one partition (see the parent module for why it
//! is correct).
//!
//! States: *sending* (messages leave in order, each guarded by its
//! predecessor's id while that one is unconfirmed) and *recovering* (after an
//! error: stop sending, collect every in-flight answer, then resend from the
//! first unconfirmed message or fail it and everything behind it).

use std::{collections::VecDeque, time::Instant};

use async_nats::jetstream::{
    self,
    context::{PublishError, PublishErrorKind},
    message::PublishMessage,
    publish::PublishAck,
};
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder, backoff::Backoff};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesOrdered};
use tokio::sync::mpsc;

use super::{Pending, ProducerOptions, Receipt};
use crate::{
    error::{Error, ErrorKind, Result},
    headers,
};

type AckFuture = BoxFuture<'static, Result<PublishAck, PublishError>>;

/// Why the first unconfirmed message failed.
enum Failure {
    /// Retry after a backoff.
    Transient(Error),
    /// Another producer's message landed between ours: retry at once.
    Interleaved,
    /// The partition stream may be gone: check, then retry or fail.
    NoStream(Error),
    /// Fail this message and everything behind it.
    Permanent(Error),
}

pub(super) struct Worker {
    js: jetstream::Context,
    station: String,
    stream: String,
    partition: u32,
    options: ProducerOptions,
    rx: mpsc::UnboundedReceiver<Pending>,
    /// Sent, unconfirmed, in send order; `acks` answers in the same order.
    window: VecDeque<Pending>,
    acks: FuturesOrdered<AckFuture>,
    /// To send before anything new (the unconfirmed tail after a failure).
    resend: VecDeque<Pending>,
    /// Set from the first failed answer until the window is drained.
    failure: Option<Failure>,
    failed: Vec<Pending>,
    backoff: ExponentialBackoff,
    channel_open: bool,
}

impl Worker {
    pub(super) fn new(
        js: jetstream::Context,
        station: String,
        stream: String,
        partition: u32,
        options: ProducerOptions,
        rx: mpsc::UnboundedReceiver<Pending>,
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
            station,
            stream,
            partition,
            options,
            rx,
            window: VecDeque::new(),
            acks: FuturesOrdered::new(),
            resend: VecDeque::new(),
            failure: None,
            failed: Vec::new(),
            backoff,
            channel_open: true,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            if self.failure.is_some() && self.window.is_empty() {
                self.recover().await;
                continue;
            }
            if self.failure.is_none() && !self.resend.is_empty() {
                self.send_resends().await;
            }
            let can_send = self.failure.is_none()
                && self.resend.is_empty()
                && self.window.len() < self.options.max_in_flight;
            if self.window.is_empty() && !can_send {
                continue;
            }
            if self.window.is_empty() && !self.channel_open {
                return;
            }
            tokio::select! {
                biased;
                Some(answer) = self.acks.next(), if !self.window.is_empty() => {
                    self.on_answer(answer);
                }
                next = self.rx.recv(), if can_send && self.channel_open => match next {
                    Some(first) => self.send_batch(first).await,
                    None => self.channel_open = false,
                },
            }
        }
    }

    /// Sends `first` and whatever else is queued, up to the batch limits,
    /// waiting up to `linger` for a batch to fill.
    async fn send_batch(&mut self, first: Pending) {
        let mut batch = vec![first];
        let mut bytes = batch[0].payload.len();
        let room = self.options.max_in_flight - self.window.len();
        let limit = self.options.max_batch_messages.min(room);
        let linger_until = Instant::now() + self.options.linger;
        while batch.len() < limit && bytes < self.options.max_batch_bytes {
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
                    batch.push(p);
                }
                None => break,
            }
        }
        let span = tracing::debug_span!(
            "batch",
            station = %self.station,
            partition = self.partition,
            messages = batch.len(),
            bytes
        );
        let _guard = span.enter();
        for p in batch {
            self.send_one(p).await;
        }
    }

    async fn send_resends(&mut self) {
        while self.window.len() < self.options.max_in_flight {
            match self.resend.pop_front() {
                Some(p) => self.send_one(p).await,
                None => break,
            }
        }
    }

    async fn send_one(&mut self, pending: Pending) {
        let mut headers = pending.headers.clone();
        if let Some(previous) = self.window.back() {
            headers.insert(headers::EXPECTED_LAST_MSG_ID, previous.msg_id.as_str());
        }
        let publish = PublishMessage::build()
            .payload(pending.payload.clone())
            .headers(headers);
        let answer: AckFuture = match self.js.send_publish(pending.subject.clone(), publish).await {
            Ok(ack) => ack.into_future().boxed(),
            Err(e) => futures::future::ready(Err(e)).boxed(),
        };
        self.acks.push_back(answer);
        self.window.push_back(pending);
    }

    fn on_answer(&mut self, answer: Result<PublishAck, PublishError>) {
        let pending = self
            .window
            .pop_front()
            .expect("an answer always has its message in the window");
        match answer {
            Ok(ack) => {
                if self.failure.is_none() {
                    self.backoff.reset();
                }
                let receipt = Receipt {
                    station: self.station.clone(),
                    partition: self.partition,
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                    msg_id: pending.msg_id,
                };
                let _ = pending.reply.send(Ok(receipt));
            }
            Err(e) => {
                if self.failure.is_none() {
                    tracing::debug!(
                        station = %self.station,
                        partition = self.partition,
                        msg_id = %pending.msg_id,
                        error = %e,
                        "publish failed; recovering"
                    );
                    self.failure = Some(classify(&self.stream, &e));
                }
                self.failed.push(pending);
            }
        }
    }

    /// Everything in flight has answered; retry the unconfirmed tail or fail it.
    async fn recover(&mut self) {
        let failure = self.failure.take().expect("recover runs after a failure");
        let mut tail: VecDeque<Pending> = self.failed.drain(..).collect();
        tail.extend(self.resend.drain(..));
        let Some(first) = tail.front() else {
            return;
        };
        let cause = match failure {
            Failure::Permanent(e) => Some(e),
            Failure::NoStream(e) => match self.js.get_stream(&self.stream).await {
                Err(err) if Error::from_nats("", &err).kind() == ErrorKind::NotFound => {
                    Some(Error::not_found(format!(
                        "station {:?} (partition {}) no longer exists; it was deleted while \
                         this producer was sending",
                        self.station, self.partition
                    )))
                }
                _ => self.wait_or_expire(first.deadline, e).await,
            },
            Failure::Transient(e) => self.wait_or_expire(first.deadline, e).await,
            Failure::Interleaved => None,
        };
        match cause {
            None => self.resend = tail,
            Some(cause) => self.fail_tail(tail, cause),
        }
    }

    /// Backs off before a retry; returns the error to fail with when the
    /// first message's delivery timeout passes first.
    async fn wait_or_expire(&mut self, deadline: Instant, cause: Error) -> Option<Error> {
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
        // The exponential backoff (with jitter) between two attempts.
        tokio::time::sleep(delay).await;
        None
    }

    /// Fails the first message with `cause`, and every message behind it in
    /// this partition (the tail and everything queued now) with an error
    /// naming it.
    fn fail_tail(&mut self, mut tail: VecDeque<Pending>, cause: Error) {
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
        let _ = first.reply.send(Err(cause));
        for p in tail {
            let _ = p.reply.send(Err(behind.clone()));
        }
        self.backoff.reset();
    }
}

fn classify(stream: &str, err: &PublishError) -> Failure {
    let context = format!("publishing to {stream}");
    match err.kind() {
        PublishErrorKind::WrongLastMessageId => Failure::Interleaved,
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Failure::Transient(Error::from_nats(&context, err)),
        PublishErrorKind::StreamNotFound => Failure::NoStream(Error::new(
            ErrorKind::Connection,
            format!("{context}: no responders (the stream is unavailable)"),
        )),
        PublishErrorKind::MaxPayloadExceeded => Failure::Permanent(Error::new(
            ErrorKind::PayloadTooLarge,
            format!("{context}: {err}; split the message or raise the server's max_payload"),
        )),
        _ => {
            let e = Error::from_nats(&context, err);
            // 503-like answers (no leader yet, storage catching up) pass; the
            // rest (limits with discard new, permissions…) will not.
            let text = err.to_string();
            if text.contains("code 503") || e.kind() == ErrorKind::Timeout {
                Failure::Transient(e)
            } else {
                Failure::Permanent(e)
            }
        }
    }
}
