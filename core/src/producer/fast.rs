//! Fast-ingest batches (nats-server 2.14+): one partition's unit sent as a
//! flow-controlled, pipelined batch in which every message also names the
//! sequence it must be stored after.
//!
//! The server learns the batch from each publish's reply subject,
//! `<inbox>.<batch id>.<flow>.fail.<position>.<operation>.$FI`, and answers on
//! it: a flow acknowledgement every few messages, and, once the batch is
//! committed, a publish acknowledgement naming the stream sequence of the
//! last stored message and how many messages of the batch it took
//! (`count`). Gap mode `fail` makes the server stop the batch at the first
//! message that is lost or refused: what it stored is a prefix of the batch,
//! in order, and nothing of the batch after that message is stored.
//!
//! The prefix alone does not say at which sequences the messages went:
//! another producer's message may land between two of ours. So every message
//! also carries `Nats-Expected-Last-Sequence`: the `i`-th (from 1) expects the
//! partition to end at `base + i - 1`, where `base` is the sequence the
//! producer last confirmed. The stream leader checks it before proposing, as
//! for any publish; a mismatch refuses that message and so ends the batch.
//! Every stored message `i` is therefore at `base + i`, and an acknowledgement
//! with `seq == base + count` proves that the first `count` messages were all
//! stored there (a message skipped as a duplicate would have made the next
//! one mismatch and the numbers disagree). Anything else is left to the
//! pipeline, which reads back what the batch stored and sends the rest again.
//!
//! A message whose id the producer generated carries it as `Jst-Id`, not as
//! `Nats-Msg-Id`: the broker keeps no deduplication record of it, which is
//! most of what a deduplicated publish costs the broker (see the design
//! notes for the figures). No second copy can be stored:
//! any copy expects the partition to end right before it, so whichever copy
//! comes second is refused. Application ids stay `Nats-Msg-Id`: they are
//! deduplicated against other senders too.

use async_nats::{HeaderMap, HeaderName, Subscriber};
use futures::StreamExt;
use serde_json::Value;

use super::Pending;
use crate::headers;

/// The flow acknowledgement interval asked of the server (it caps this at
/// 500 messages, and lowers it while other fast batches share the stream).
const FLOW: u16 = 500;
/// How many flow intervals may be unacknowledged before the sender waits.
const OUTSTANDING_FLOWS: u64 = 2;
/// The flow interval assumed before the server's first acknowledgement.
const INITIAL_FLOW: u64 = 100;

/// nats-server error codes (`server/errors.json`) this path tells apart.
pub(super) const BATCH_PUBLISH_DISABLED: u64 = 10205;
pub(super) const WRONG_LAST_SEQUENCE: u64 = 10071;

/// How a fast batch ended.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    /// The first `count` messages are stored at `base + 1 ..= base + count`
    /// (all of them when `count` is the batch's length).
    Stored { count: usize },
    /// The server's answer does not prove where the messages went (a
    /// duplicate, an error before any message was stored…): nothing is
    /// confirmed; the atomic path sends the unit again.
    Unproven { code: Option<u64>, detail: String },
}

/// A reply inbox of one partition's pipeline: every batch's answers arrive
/// under it, told apart by the batch id in the subject.
pub(super) struct Replies {
    prefix: String,
    subscriber: Subscriber,
}

impl Replies {
    pub(super) async fn new(nats: &async_nats::Client) -> Result<Self, async_nats::SubscribeError> {
        let prefix = nats.new_inbox();
        let subscriber = nats.subscribe(format!("{prefix}.>")).await?;
        Ok(Self { prefix, subscriber })
    }

    /// The next answer about `batch`, or `None` when none came within
    /// `timeout` (or the subscription ended).
    async fn next(&mut self, batch: &str, timeout: std::time::Duration) -> Option<Answer> {
        let marker = format!(".{batch}.");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.subscriber.next())
                .await
                .ok()??;
            // Answers of an earlier batch (late flow acknowledgements) are
            // not about this one.
            if message.subject.contains(&marker) {
                return Some(Answer::parse(&message.payload));
            }
        }
    }
}

/// One answer of the server on a batch's reply subject.
#[derive(Debug, PartialEq)]
enum Answer {
    /// Flow acknowledgement: the server took messages up to `seq`, and will
    /// acknowledge every `msgs` messages from now on.
    Flow { seq: u64, msgs: u64 },
    /// The batch's publish acknowledgement.
    Committed {
        seq: u64,
        count: u64,
        duplicate: bool,
    },
    /// The batch was refused as a whole (its first message, or the batch
    /// itself): nothing follows.
    Refused { code: Option<u64>, detail: String },
    /// A message of the batch was refused (`err`): the batch stops there and
    /// its acknowledgement, for the prefix before it, follows.
    MessageRefused { code: Option<u64>, detail: String },
    /// A gap report (the acknowledgement with the stored prefix follows).
    Gap,
    /// Not a fast-batch answer: a server that does not know fast batches
    /// answered as for a single publish.
    Unexpected(String),
}

impl Answer {
    fn parse(payload: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<Value>(payload) else {
            return Self::Unexpected(String::from_utf8_lossy(payload).into_owned());
        };
        let code = |e: &Value| e.get("err_code").and_then(Value::as_u64);
        let detail = |e: &Value| {
            e.get("description")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_string()
        };
        match value.get("type").and_then(Value::as_str) {
            Some("ack") => Self::Flow {
                seq: value.get("seq").and_then(Value::as_u64).unwrap_or(0),
                msgs: value
                    .get("msgs")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1),
            },
            Some("gap") => Self::Gap,
            Some("err") => {
                let e = value.get("error").unwrap_or(&Value::Null);
                Self::MessageRefused {
                    code: code(e),
                    detail: detail(e),
                }
            }
            _ => {
                if let Some(e) = value.get("error") {
                    return Self::Refused {
                        code: code(e),
                        detail: detail(e),
                    };
                }
                match (
                    value.get("seq").and_then(Value::as_u64),
                    value.get("count").and_then(Value::as_u64),
                    value.get("batch"),
                ) {
                    (Some(seq), Some(count), Some(_)) => Self::Committed {
                        seq,
                        count,
                        duplicate: value.get("duplicate").and_then(Value::as_bool) == Some(true),
                    },
                    _ => Self::Unexpected(value.to_string()),
                }
            }
        }
    }
}

/// Sends `unit` as one fast batch expecting the partition to end at `base`,
/// and waits for its acknowledgement. `Err` is a connection failure or
/// silence for `timeout`: nothing is known about what was stored.
pub(super) async fn send(
    nats: &async_nats::Client,
    replies: &mut Replies,
    unit: &std::collections::VecDeque<Pending>,
    base: u64,
    timeout: std::time::Duration,
) -> Result<Outcome, String> {
    let batch = nuid::next().to_string();
    let count = unit.len();
    // Until the server's first flow acknowledgement says otherwise, up to
    // `OUTSTANDING_FLOWS * INITIAL_FLOW` messages leave without waiting: a
    // small unit costs no extra round trip, and a batch refused at its first
    // message wastes at most that many sends (refused as unknown batch).
    let (mut acknowledged, mut every) = (0u64, INITIAL_FLOW);
    let mut early: Option<Answer> = None;
    for (i, pending) in unit.iter().enumerate() {
        let position = i as u64 + 1;
        // The server's flow control: at most a few intervals unacknowledged.
        while early.is_none() && acknowledged + every * OUTSTANDING_FLOWS < position {
            match replies.next(&batch, timeout).await {
                Some(Answer::Flow { seq, msgs }) => {
                    acknowledged = acknowledged.max(seq);
                    every = msgs;
                }
                Some(Answer::Gap) => {}
                Some(other) => early = Some(other),
                None => return Err(silent(timeout)),
            }
        }
        if early.is_some() {
            // The batch ended (refused or cut short): what follows would
            // only be refused.
            break;
        }
        let operation: u8 = match (position, position == count as u64) {
            (_, true) => 2,
            (1, false) => 0,
            _ => 1,
        };
        let reply = reply_subject(&replies.prefix, &batch, position, operation);
        let headers = expecting(pending, base + i as u64);
        nats.publish_with_reply_and_headers(
            pending.subject.clone(),
            reply,
            headers,
            pending.payload.clone(),
        )
        .await
        .map_err(|e| format!("publishing a fast batch: {e}"))?;
    }
    let mut refusal: Option<(Option<u64>, String)> = None;
    let mut next = early;
    loop {
        let answer = match next.take() {
            Some(a) => a,
            None => match replies.next(&batch, timeout).await {
                Some(a) => a,
                None => return Err(silent(timeout)),
            },
        };
        match answer {
            Answer::Flow { .. } | Answer::Gap => {}
            // A refused message: the acknowledgement of the prefix follows.
            Answer::MessageRefused { code, detail } => {
                if refusal.is_none() {
                    refusal = Some((code, detail));
                }
            }
            Answer::Refused { code, detail } => return Ok(Outcome::Unproven { code, detail }),
            Answer::Committed {
                seq,
                count: stored,
                duplicate,
            } => {
                let stored = stored as usize;
                if !duplicate && stored <= count && seq == base + stored as u64 {
                    return Ok(Outcome::Stored { count: stored });
                }
                let (code, detail) = refusal.unwrap_or((None, String::new()));
                return Ok(Outcome::Unproven {
                    code,
                    detail: format!(
                        "acknowledged {stored} of {count} at sequence {seq} (expected {}){}{detail}",
                        base + stored as u64,
                        if detail.is_empty() { "" } else { ": " }
                    ),
                });
            }
            Answer::Unexpected(text) => {
                return Ok(Outcome::Unproven {
                    code: None,
                    detail: format!("not a fast-batch answer: {text}"),
                });
            }
        }
    }
}

fn silent(timeout: std::time::Duration) -> String {
    format!("no answer to a fast batch within {timeout:?}")
}

/// The message's headers plus the sequence the partition must end at.
fn expecting(pending: &Pending, last: u64) -> HeaderMap {
    static EXPECTED: HeaderName = HeaderName::from_static(headers::EXPECTED_LAST_SEQUENCE);
    let mut h = pending.fast_header_map();
    h.insert(EXPECTED.clone(), itoa::Buffer::new().format(last));
    h
}

/// `<prefix>.<batch>.<flow>.fail.<position>.<operation>.$FI`: the reply
/// subject of one message of a fast batch, built once per message without
/// the formatting machinery.
fn reply_subject(prefix: &str, batch: &str, position: u64, operation: u8) -> String {
    let (mut flow, mut digits) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (flow, position) = (flow.format(FLOW), digits.format(position));
    let mut s = String::with_capacity(prefix.len() + batch.len() + position.len() + 24);
    for part in [prefix, ".", batch, ".", flow, ".fail.", position, "."] {
        s.push_str(part);
    }
    s.push(char::from(b'0' + operation));
    s.push_str(".$FI");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subjects_read_as_the_server_expects() {
        for (position, operation) in [(1, 0u8), (2, 1), (10_000, 2)] {
            assert_eq!(
                reply_subject("_INBOX.abc", "BATCH1", position, operation),
                format!("_INBOX.abc.BATCH1.{FLOW}.fail.{position}.{operation}.$FI")
            );
        }
    }

    #[test]
    fn answers_are_told_apart() {
        assert_eq!(
            Answer::parse(br#"{"type":"ack","seq":500,"msgs":250}"#),
            Answer::Flow {
                seq: 500,
                msgs: 250
            }
        );
        assert_eq!(
            Answer::parse(br#"{"stream":"S","seq":1042,"batch":"b","count":42}"#),
            Answer::Committed {
                seq: 1042,
                count: 42,
                duplicate: false
            }
        );
        assert_eq!(
            Answer::parse(br#"{"stream":"S","seq":7,"duplicate": true,"batch":"b","count":1}"#),
            Answer::Committed {
                seq: 7,
                count: 1,
                duplicate: true
            }
        );
        assert_eq!(
            Answer::parse(
                br#"{"type":"err","seq":3,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 9"}}"#
            ),
            Answer::MessageRefused {
                code: Some(10071),
                detail: "wrong last sequence: 9".into()
            }
        );
        assert_eq!(
            Answer::parse(
                br#"{"stream":"S","error":{"code":400,"err_code":10205,"description":"batch publish is disabled"}}"#
            ),
            Answer::Refused {
                code: Some(10205),
                detail: "batch publish is disabled".into()
            }
        );
        assert_eq!(
            Answer::parse(br#"{"type":"gap","last_seq":4,"seq":6}"#),
            Answer::Gap
        );
        // A server without fast batches answers as for a single publish.
        assert!(matches!(
            Answer::parse(br#"{"stream":"S","seq":8}"#),
            Answer::Unexpected(_)
        ));
    }
}
