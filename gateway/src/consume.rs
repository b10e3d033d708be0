//! One consume stream: a member of a consumer group whose deliveries are
//! bounded by the credit the client grants.
//!
//! When the stream ends — the client closed it, the connection broke, or the
//! gateway shuts down — the member leaves the group: what the client held
//! unsettled goes back to the group at once, finished work is committed,
//! and its partitions move to the other members.

use std::collections::HashMap;

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
    let mut held: HashMap<u64, jetstation::Delivery> = HashMap::new();
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(ConsumeRequest { request: Some(r) })) => match r {
                    consume_request::Request::Settle(s) => {
                        if let Err(e) = settle(&mut held, s).await {
                            let _ = tx.send(Err(e)).await;
                            break;
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
                    let id = next_id;
                    next_id += 1;
                    let message = incoming(id, &d);
                    held.insert(id, d);
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
    // Leaving: unsettled deliveries go back to the group (dropping them while
    // closing releases them), finished work is committed, partitions move.
    let close = consumer.close();
    futures::pin_mut!(close);
    // The first poll announces the close, so what is dropped next is
    // released at once rather than counted as a failed delivery.
    let _ = futures::poll!(close.as_mut());
    drop(held);
    let _ = close.await;
}

async fn open(
    client: &jetstation::Client,
    join: &pb::Join,
) -> Result<jetstation::Consumer, Status> {
    let d = jetstation::ConsumerOptions::default();
    let options = jetstation::ConsumerOptions {
        concurrency: if join.concurrency == 0 {
            d.concurrency
        } else {
            join.concurrency as usize
        },
        start: convert::start(join)?,
        ack_wait: crate::or_default(join.ack_wait, d.ack_wait)?,
        redelivery_delay: crate::or_default(join.redelivery_delay, d.redelivery_delay)?,
        handover_timeout: crate::or_default(join.handover_timeout, d.handover_timeout)?,
        ..d
    };
    client
        .consumer(&join.station, &join.group, options)
        .await
        .map_err(status)
}

async fn settle(
    held: &mut HashMap<u64, jetstation::Delivery>,
    s: pb::Settle,
) -> Result<(), Status> {
    let outcome = s.outcome();
    if outcome == Outcome::InProgress {
        let d = held
            .get(&s.delivery_id)
            .ok_or_else(|| invalid(format!("no unsettled delivery {}", s.delivery_id)))?;
        return d.in_progress().await.map_err(status);
    }
    let d = held
        .remove(&s.delivery_id)
        .ok_or_else(|| invalid(format!("no unsettled delivery {}", s.delivery_id)))?;
    let reason = if s.reason.is_empty() {
        None
    } else {
        Some(s.reason)
    };
    match outcome {
        Outcome::Ack => d.ack(),
        Outcome::Nack => {
            let delay = s.delay.map(convert::duration).transpose()?;
            d.nack_with_reason(
                reason.unwrap_or_else(|| "nacked by the client".into()),
                delay,
            )
        }
        Outcome::Term => d.term(reason.unwrap_or_else(|| "terminated by the client".into())),
        _ => {
            return Err(invalid(
                "settle needs an outcome: ACK, NACK, TERM or IN_PROGRESS",
            ));
        }
    }
    .map_err(status)
}

fn incoming(id: u64, d: &jetstation::Delivery) -> pb::IncomingMessage {
    pb::IncomingMessage {
        delivery_id: id,
        station: d.station.clone(),
        partition: d.partition,
        sequence: d.sequence,
        key: d.key.clone().unwrap_or_default(),
        payload: d.payload.to_vec(),
        headers: d.headers.iter().cloned().collect(),
        msg_id: d.msg_id.clone().unwrap_or_default(),
        deliveries: d.deliveries,
    }
}
