//! One consume stream: a member of a consumer group whose deliveries are
//! bounded by the credit the client grants.
//!
//! When the stream ends — the client closed it, the connection broke, or the
//! gateway shuts down — the member leaves the group: what the client held
//! unsettled goes back to the group at once, finished work is committed,
//! and its partitions move to the other members.

use std::collections::HashSet;

use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use crate::{
    convert::{self, invalid, status},
    pb::{
        self, ConsumeRequest, ConsumeResponse, consume_request, consume_response, settle::Outcome,
    },
};

type Tx = mpsc::Sender<Result<ConsumeResponse, Status>>;

pub(crate) async fn run(
    client: jetstation::Client,
    mut requests: Streaming<ConsumeRequest>,
    tx: Tx,
    max_credit: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let join = match requests.message().await {
        Ok(Some(ConsumeRequest {
            request: Some(consume_request::Request::Join(join)),
        })) => join,
        Ok(_) => {
            let _ = tx
                .send(Err(invalid(
                    "the first message of a consume stream must be `join`",
                )))
                .await;
            return;
        }
        Err(_) => return,
    };
    let consumer = match open(&client, &join).await {
        Ok(c) => c,
        Err(s) => {
            let _ = tx.send(Err(s)).await;
            return;
        }
    };
    let joined = consume_response::Response::Joined(pb::Joined {
        station: join.station.clone(),
        group: join.group.clone(),
    });
    if tx
        .send(Ok(ConsumeResponse {
            response: Some(joined),
        }))
        .await
        .is_err()
    {
        let _ = consumer.close().await;
        return;
    }
    let mut credit = join.credit.clamp(1, max_credit.max(1));
    // Deliveries are settled by id through the core; only their count is kept.
    let mut held: HashSet<u64> = HashSet::new();
    loop {
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(ConsumeRequest { request: Some(r) })) => match r {
                    consume_request::Request::Settle(s) => {
                        if let Err(e) = settle(&consumer, &mut held, s).await {
                            let refused = consume_response::Response::Error(pb::Error {
                                kind: e.kind().as_str().to_string(),
                                message: e.message().to_string(),
                            });
                            if tx.send(Ok(ConsumeResponse { response: Some(refused) })).await.is_err() {
                                break;
                            }
                        }
                    }
                    consume_request::Request::Credit(more) => {
                        credit = credit.saturating_add(more).min(max_credit.max(1));
                    }
                    consume_request::Request::Join(_) => {
                        let _ = tx.send(Err(invalid("a consume stream joins once"))).await;
                        break;
                    }
                    consume_request::Request::Health(_) => {
                        let answer = match consumer.health().await {
                            Ok(parts) => Ok(ConsumeResponse {
                                response: Some(consume_response::Response::Health(
                                    convert::member_health(parts),
                                )),
                            }),
                            Err(e) => Err(status(e)),
                        };
                        if tx.send(answer).await.is_err() {
                            break;
                        }
                    }
                },
                // Closed, broken, or an empty request: the member leaves.
                _ => break,
            },
            delivery = consumer.next(), if (held.len() as u32) < credit => match delivery {
                Some(Ok(d)) => {
                    let (id, received) = d.detach();
                    let message = incoming(id, received);
                    held.insert(id);
                    let response = consume_response::Response::Message(message);
                    if tx.send(Ok(ConsumeResponse { response: Some(response) })).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(status(e))).await;
                    break;
                }
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    // Leaving: unsettled deliveries go back to the group uncounted, finished
    // work is committed, partitions move.
    for id in held {
        let _ = consumer.settle(id, jetstation::Settlement::Release);
    }
    let _ = consumer.close().await;
}

async fn open(
    client: &jetstation::Client,
    join: &pb::Join,
) -> Result<jetstation::Consumer, Status> {
    let d = jetstation::ConsumerOptions::default();
    let count = |n: u32, default: usize| if n == 0 { default } else { n as usize };
    let options = jetstation::ConsumerOptions {
        concurrency: count(join.concurrency, d.concurrency),
        start: convert::start(join)?,
        ack_wait: crate::or_default(join.ack_wait, d.ack_wait)?,
        max_ack_pending: count(join.max_ack_pending, d.max_ack_pending),
        redelivery_delay: crate::or_default(join.redelivery_delay, d.redelivery_delay)?,
        max_redelivery_delay: crate::or_default(join.max_redelivery_delay, d.max_redelivery_delay)?,
        fetch_batch: count(join.fetch_batch, d.fetch_batch),
        handover_timeout: crate::or_default(join.handover_timeout, d.handover_timeout)?,
        exactly_once: join.exactly_once,
        exactly_once_retention: crate::or_default(
            join.exactly_once_retention,
            d.exactly_once_retention,
        )?,
    };
    client
        .consumer(&join.station, &join.group, options)
        .await
        .map_err(status)
}

/// Settles one delivery by id; a refusal is answered on the stream.
async fn settle(
    consumer: &jetstation::Consumer,
    held: &mut HashSet<u64>,
    s: pb::Settle,
) -> jetstation::Result<()> {
    use jetstation::Settlement;
    let id = s.delivery_id;
    let outcome = s.outcome();
    let reason = (!s.reason.is_empty()).then_some(s.reason);
    let settlement = match outcome {
        Outcome::InProgress => return consumer.in_progress(id).await,
        Outcome::Ack => Settlement::Ack,
        Outcome::Nack => Settlement::Nack {
            delay: s.delay.map(convert::core_duration).transpose()?,
            reason,
        },
        Outcome::Term => Settlement::Term { reason },
        Outcome::Release => Settlement::Release,
        Outcome::Unspecified => {
            return Err(jetstation::Error::new(
                jetstation::ErrorKind::InvalidArgument,
                "settle needs an outcome: ACK, NACK, TERM, RELEASE or IN_PROGRESS",
            ));
        }
    };
    consumer.settle(id, settlement)?;
    held.remove(&id);
    Ok(())
}

fn incoming(id: u64, d: jetstation::ReceivedMessage) -> pb::IncomingMessage {
    let is_delete = d.is_delete();
    pb::IncomingMessage {
        delivery_id: id,
        station: d.station,
        partition: d.partition,
        sequence: d.sequence,
        key: d.key.unwrap_or_default(),
        payload: d.payload.to_vec(),
        headers: d.headers.into_iter().collect(),
        is_delete,
        msg_id: d.msg_id.unwrap_or_default(),
        deliveries: d.deliveries,
    }
}
