//! Snapshot, then follow: a new group that starts with the latest message of
//! every key (the station's state view), then continues with the history
//! from exactly where that snapshot ended.
//!
//! Per partition, the group first reads the partition's state stream with a
//! durable consumer of the group's name (the *snapshot lane*), then switches
//! to its usual consumer on the partition stream (the *follow lane*). Both are
//! ordinary durable pull consumers, so the snapshot lane has everything a
//! partition has: ownership by one member, ordered commits, redeliveries,
//! dead letters and takeover after a crash.
//!
//! # Where the snapshot ends
//! When the snapshot lane is created, it is bounded by the state stream's
//! last sequence then (`bound`); the *cut* is the partition sequence of the
//! message stored there (`Nats-Stream-Source`). Both go into the lane's
//! consumer metadata, so every member (and a member taking over after a
//! crash) agrees on them. The lane hands out the keys' messages up to
//! `bound`; the follow lane starts at `cut + 1`. Nothing is lost: the state
//! stream sources the partition in order, so a key whose latest message up
//! to `cut` is not read in the lane was replaced meanwhile by a later
//! message of the key, stored after `cut` in the partition and delivered by
//! the follow lane. Nothing is seen twice: every message of the lane is at
//! or below `cut`, every message of the follow lane above it.
//!
//! Messages after `bound` (the view keeps changing while the lane runs),
//! tombstones and keyless messages are committed without being handed out:
//! a deleted key has no latest message, as in [`crate::Client::snapshot`].
//!
//! # Switching lanes
//! The lane is over when everything up to `bound` is committed: the member
//! that owns the partition creates the follow consumer (the switch point: a
//! group whose follow consumer exists is past its snapshot), then deletes
//! the lane's consumer. A member still pulling the deleted lane finds the
//! follow consumer and switches too.

use std::collections::HashMap;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
};

use super::{ConsumerOptions, group_config};
use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
};

/// Header the broker puts on a sourced message: `<stream> <sequence> …`.
pub(crate) const STREAM_SOURCE: &str = "Nats-Stream-Source";
const BOUND: &str = "jetstation.snapshot.bound";
const CUT: &str = "jetstation.snapshot.cut";

/// A partition of a group that is still reading its snapshot.
#[derive(Clone)]
pub(crate) struct Phase {
    /// Last state-stream sequence that belongs to the snapshot.
    pub(crate) bound: u64,
    /// Partition sequence the snapshot covers; following starts after it.
    pub(crate) cut: u64,
    /// The partition stream, where the group follows the history.
    pub(crate) partition_stream: jetstream::stream::Stream<()>,
    /// The configuration of the lane's consumer (to recreate it).
    pub(crate) config: pull::Config,
    /// The configuration of the follow consumer.
    pub(crate) follow: pull::Config,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phase")
            .field("bound", &self.bound)
            .field("cut", &self.cut)
            .finish()
    }
}

/// The partition sequence a message of the state view was copied from.
pub(crate) fn origin(message: &jetstream::Message) -> Option<u64> {
    message
        .headers
        .as_ref()?
        .get(STREAM_SOURCE)?
        .as_str()
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The follow consumer's configuration once the snapshot ends at `cut`.
pub(crate) fn follow_config(group: &str, options: &ConsumerOptions, cut: u64) -> pull::Config {
    let mut config = group_config(group, options);
    config.deliver_policy = if cut == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: cut + 1,
        }
    };
    config
}

/// What a partition of a joining member reads first (made once per partition
/// when a member joins, so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Lane {
    /// The group follows the history (its snapshot, if any, is over).
    Follow(jetstream::consumer::Consumer<pull::Config>),
    /// The group reads the snapshot first.
    Snapshot {
        state_stream: jetstream::stream::Stream<()>,
        consumer: jetstream::consumer::Consumer<pull::Config>,
        phase: Phase,
    },
}

/// A partition's state stream, with its name.
async fn open_state_stream(
    client: &Client,
    station: &str,
    partition: u32,
) -> Result<(String, jetstream::stream::Stream<()>)> {
    let state_name = client.inner.names.state_stream(station, partition);
    let stream = client
        .inner
        .js
        .get_stream_no_info(&state_name)
        .await
        .map_err(|e| Error::from_nats(&format!("opening {state_name}"), &e))?;
    Ok((state_name, stream))
}

/// Whether group `group` is reading its snapshot on partition `partition`
/// (its lane consumer exists on the state stream). Asked when a member joins
/// a compacted station without `start: snapshot` and finds no consumer of
/// the group on the partition: the start position only places a new group,
/// so such a member continues the snapshot, not the whole history.
pub(crate) async fn in_progress(
    client: &Client,
    station: &str,
    partition: u32,
    group: &str,
) -> Result<bool> {
    let (state_name, state_stream) = open_state_stream(client, station, partition).await?;
    match state_stream.consumer_info(group).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::from_nats(
            &format!("looking for group {group:?} on {state_name}"),
            &e,
        )),
    }
}

/// Opens partition `partition` of a group that starts with a snapshot:
/// the follow consumer when the snapshot is over, else the snapshot lane
/// (created with its bound and cut when this member is the first).
pub(crate) async fn open(
    client: &Client,
    station: &str,
    partition: u32,
    group: &str,
    options: &ConsumerOptions,
    partition_stream: &jetstream::stream::Stream<()>,
) -> Result<Lane> {
    let (state_name, state_stream) = open_state_stream(client, station, partition).await?;
    if let Ok(follow) = partition_stream.get_consumer::<pull::Config>(group).await {
        // Past the snapshot; a lane left by a member that died switching goes.
        let _ = state_stream.delete_consumer(group).await;
        return Ok(Lane::Follow(follow));
    }
    let consumer = match state_stream.get_consumer::<pull::Config>(group).await {
        Ok(c) => c,
        Err(_) => {
            let config = lane_config(client, &state_name, group, options).await?;
            if config.metadata.get(BOUND).map(String::as_str) == Some("0") {
                // An empty view: nothing to read first, follow from the start.
                let follow = follow_config(group, options, 0);
                return match partition_stream.create_consumer_strict(follow).await {
                    Ok(c) => Ok(Lane::Follow(c)),
                    Err(_) => partition_stream
                        .get_consumer::<pull::Config>(group)
                        .await
                        .map(Lane::Follow)
                        .map_err(|e| {
                            Error::from_nats(&format!("creating group {group:?}"), e.as_ref())
                        }),
                };
            }
            match state_stream.create_consumer_strict(config).await {
                Ok(c) => c,
                // Another member created it first: use theirs (and its cut).
                Err(_) => state_stream
                    .get_consumer::<pull::Config>(group)
                    .await
                    .map_err(|e| {
                        Error::from_nats(
                            &format!("creating group {group:?} on {state_name}"),
                            e.as_ref(),
                        )
                    })?,
            }
        }
    };
    let config = <pull::Config as jetstream::consumer::FromConsumer>::try_from_consumer_config(
        consumer.cached_info().config.clone(),
    )
    .map_err(|e| Error::from_nats("reading the snapshot lane", e.as_ref()))?;
    let read = |name: &str| -> Result<u64> {
        config
            .metadata
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Broker,
                    format!(
                        "the snapshot consumer of group {group:?} on {state_name} lacks {name}"
                    ),
                )
            })
    };
    let (bound, cut) = (read(BOUND)?, read(CUT)?);
    let phase = Phase {
        bound,
        cut,
        partition_stream: partition_stream.clone(),
        config,
        follow: follow_config(group, options, cut),
    };
    Ok(Lane::Snapshot {
        state_stream,
        consumer,
        phase,
    })
}

/// The snapshot lane's configuration: the group's settings, from the start
/// of the state stream, with the bound and cut of the view now.
async fn lane_config(
    client: &Client,
    state_name: &str,
    group: &str,
    options: &ConsumerOptions,
) -> Result<pull::Config> {
    let mut stream = client
        .inner
        .js
        .get_stream(state_name)
        .await
        .map_err(|e| Error::from_nats(&format!("opening {state_name}"), &e))?;
    // The view's last message may be replaced while it is read: ask again.
    let (bound, cut) = loop {
        let state = stream
            .info()
            .await
            .map_err(|e| Error::from_nats(&format!("reading {state_name}"), &e))?
            .state
            .clone();
        if state.messages == 0 {
            break (0, 0);
        }
        match stream.get_raw_message(state.last_sequence).await {
            Ok(m) => {
                let cut = m
                    .headers
                    .get(STREAM_SOURCE)
                    .and_then(|v| v.as_str().split_whitespace().nth(1)?.parse().ok())
                    .unwrap_or(0);
                break (state.last_sequence, cut);
            }
            Err(_) => continue,
        }
    };
    let mut config = group_config(group, options);
    config.deliver_policy = DeliverPolicy::All;
    config.description = Some(format!(
        "jetstation consumer group {group:?}: snapshot up to {bound}"
    ));
    config.metadata = HashMap::from([
        (BOUND.to_string(), bound.to_string()),
        (CUT.to_string(), cut.to_string()),
    ]);
    Ok(config)
}

/// Ends the snapshot lane: creates the follow consumer (or finds the one
/// another member created), then deletes the lane's consumer.
pub(crate) async fn switch(
    state_stream: &jetstream::stream::Stream<()>,
    phase: &Phase,
    group: &str,
) -> Result<jetstream::consumer::Consumer<pull::Config>> {
    let follow = match phase
        .partition_stream
        .create_consumer_strict(phase.follow.clone())
        .await
    {
        Ok(c) => c,
        Err(_) => phase
            .partition_stream
            .get_consumer::<pull::Config>(group)
            .await
            .map_err(|e| {
                Error::from_nats("following the history after the snapshot", e.as_ref())
            })?,
    };
    if let Err(e) = state_stream.delete_consumer(group).await {
        tracing::debug!(error = %e, "snapshot consumer not deleted; the next member does");
    }
    Ok(follow)
}

/// The follow consumer, if it exists (the snapshot lane is over).
pub(crate) async fn followed(
    phase: &Phase,
    group: &str,
) -> Option<jetstream::consumer::Consumer<pull::Config>> {
    phase.partition_stream.get_consumer(group).await.ok()
}
