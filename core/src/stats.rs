//! What a station and its groups are doing, read from the broker (for a
//! dashboard, the command-line tool or an alert): per partition its size,
//! sequences and cluster placement; per group its members, who owns which
//! partition, and how far each partition is behind.
//!
//! Everything is read, nothing is created: stream and consumer info
//! requests and the group membership bucket. Rates are not kept here: a
//! caller that samples twice divides the difference of `last_sequence`
//! (in) or of a group's `ack_floor` (out) by the time between.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;

use crate::{
    client::Client,
    consumer::membership::{assigned, assignment, member_ttl, standing_by},
    error::{Error, Result},
    names::validate_name,
    schema::SchemaBinding,
    station::unknown_station,
};

/// A station: its partitions, dead letters and schema.
#[derive(Debug, Clone, PartialEq)]
pub struct StationStats {
    pub station: String,
    pub partitions: Vec<PartitionStats>,
    /// Messages in the dead-letter station.
    pub dead_letters: u64,
    pub schema: Option<SchemaBinding>,
    /// Keys in the state view (compacted stations).
    pub state_keys: Option<u64>,
}

/// One partition of a station.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStats {
    pub partition: u32,
    pub messages: u64,
    pub bytes: u64,
    pub first_sequence: u64,
    pub first_time: Option<SystemTime>,
    pub last_sequence: u64,
    pub last_time: Option<SystemTime>,
    /// Where the partition lives on a cluster (`None` on a single server).
    pub placement: Option<Placement>,
}

/// The copies of a partition on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub cluster: Option<String>,
    /// The server that leads the partition (`None` while none is elected).
    pub leader: Option<String>,
    /// The other copies.
    pub replicas: Vec<Replica>,
}

/// A copy of a partition that is not the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub server: String,
    /// Has every operation the leader has.
    pub current: bool,
    pub offline: bool,
    /// Operations behind the leader.
    pub lag: u64,
    /// Since the leader last heard from it.
    pub last_seen: Duration,
}

/// A consumer group of a station.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub group: String,
    /// Live members, by their announcement, and the partitions each owns
    /// (none for a member that stands by after a stall cost it partitions).
    pub members: Vec<MemberStats>,
    pub partitions: Vec<GroupPartitionStats>,
}

/// A live member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStats {
    pub member: String,
    /// Since its last announcement.
    pub last_seen: Duration,
    /// Back from a stall that cost it partitions, it stays out of the
    /// assignment for a few seconds (while another member does not), so
    /// that the member that took them can commit first.
    pub standby: bool,
    pub partitions: Vec<u32>,
}

/// One partition as a group sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPartitionStats {
    pub partition: u32,
    /// `"history"`, or `"snapshot"` while a group that started from the
    /// snapshot still reads it.
    pub reading: &'static str,
    /// Stored, not delivered yet.
    pub pending: u64,
    /// Delivered, not committed yet.
    pub unacknowledged: u64,
    /// Delivered more than once, not committed yet.
    pub redelivered: u64,
    /// The last committed sequence (of the stream being read).
    pub ack_floor: u64,
    /// Messages after the ack floor: what the group has not finished.
    pub lag: u64,
    pub last_active: Option<SystemTime>,
    /// The member that owns it (from the live members), if any.
    pub owner: Option<String>,
}

const GROUP_DESCRIPTION: &str = "jetstation consumer group";

impl Client {
    /// The station's partitions, dead letters and schema.
    pub async fn station_stats(&self, station: &str) -> Result<StationStats> {
        self.ensure_open()?;
        validate_name("station", station)?;
        let config = self
            .read_station_config(station)
            .await?
            .ok_or_else(|| unknown_station(station))?;
        let names = &self.inner.names;
        let mut partitions = Vec::new();
        let mut state_keys = config.compaction.then_some(0);
        for p in 0..config.partitions {
            let info = self
                .stream_info(&names.partition_stream(station, p))
                .await?
                .ok_or_else(|| unknown_station(station))?;
            let s = &info.state;
            partitions.push(PartitionStats {
                partition: p,
                messages: s.messages,
                bytes: s.bytes,
                first_sequence: s.first_sequence,
                first_time: (s.messages > 0).then(|| s.first_timestamp.into()),
                last_sequence: s.last_sequence,
                last_time: (s.last_sequence > 0).then(|| s.last_timestamp.into()),
                placement: info.cluster.as_ref().and_then(placement),
            });
            if let Some(keys) = &mut state_keys
                && let Some(view) = self.stream_info(&names.state_stream(station, p)).await?
            {
                *keys += view.state.messages;
            }
        }
        let dead_letters = self
            .stream_info(&names.dead_letter_stream(station))
            .await?
            .map_or(0, |i| i.state.messages);
        Ok(StationStats {
            station: station.to_string(),
            partitions,
            dead_letters,
            schema: config.schema,
            state_keys,
        })
    }

    /// The station's consumer groups, by name.
    pub async fn groups(&self, station: &str) -> Result<Vec<GroupStats>> {
        self.ensure_open()?;
        validate_name("station", station)?;
        let config = self
            .read_station_config(station)
            .await?
            .ok_or_else(|| unknown_station(station))?;
        let names = &self.inner.names;
        let js = &self.inner.js;
        // Per group, per partition: the consumer info and what it reads.
        let mut found: std::collections::BTreeMap<String, Vec<GroupPartitionStats>> =
            Default::default();
        for p in 0..config.partitions {
            let mut streams = vec![(names.partition_stream(station, p), "history")];
            if config.compaction {
                streams.push((names.state_stream(station, p), "snapshot"));
            }
            for (stream_name, reading) in streams {
                let Ok(stream) = js.get_stream_no_info(&stream_name).await else {
                    continue;
                };
                let last = self
                    .stream_info(&stream_name)
                    .await?
                    .map_or(0, |i| i.state.last_sequence);
                let consumers: Vec<jetstream::consumer::Info> = stream
                    .consumers()
                    .try_collect()
                    .await
                    .map_err(|e| Error::from_nats("listing consumer groups", &e))?;
                for c in consumers {
                    let description = c.config.description.clone().unwrap_or_default();
                    if !description.starts_with(GROUP_DESCRIPTION)
                        || c.config.durable_name.is_none()
                    {
                        continue;
                    }
                    let lanes = found.entry(c.name.clone()).or_default();
                    if reading == "snapshot" && lanes.iter().any(|l| l.partition == p) {
                        continue; // a lane left behind after the switch
                    }
                    lanes.retain(|l| l.partition != p);
                    lanes.push(GroupPartitionStats {
                        partition: p,
                        reading,
                        pending: c.num_pending,
                        unacknowledged: c.num_ack_pending as u64,
                        redelivered: c.num_redelivered as u64,
                        ack_floor: c.ack_floor.stream_sequence,
                        lag: last.saturating_sub(c.ack_floor.stream_sequence),
                        last_active: c.delivered.last_active.map(Into::into),
                        owner: None,
                    });
                }
            }
        }
        let mut groups = Vec::new();
        for (group, mut partitions) in found {
            partitions.sort_by_key(|l| l.partition);
            let live = self.live_members(station, &group).await?;
            let names = assigned(live.iter().map(|(m, _, s)| (m.clone(), *s)).collect());
            let owners = assignment(&names, config.partitions);
            let mut members: Vec<MemberStats> = live
                .into_iter()
                .map(|(member, last_seen, standby)| MemberStats {
                    member,
                    last_seen,
                    standby,
                    partitions: Vec::new(),
                })
                .collect();
            for (p, owner) in owners.into_iter().enumerate() {
                let owner = &names[owner];
                if let Some(m) = members.iter_mut().find(|m| m.member == *owner) {
                    m.partitions.push(p as u32);
                }
                if let Some(lane) = partitions.iter_mut().find(|l| l.partition == p as u32) {
                    lane.owner = Some(owner.clone());
                }
            }
            groups.push(GroupStats {
                group,
                members,
                partitions,
            });
        }
        Ok(groups)
    }

    /// Members of a group whose last announcement is younger than their
    /// handover timeout, sorted (as the members sort them), with its age and
    /// whether it stands by.
    async fn live_members(
        &self,
        station: &str,
        group: &str,
    ) -> Result<Vec<(String, Duration, bool)>> {
        let bucket = match self.inner.names.namespace() {
            Some(ns) => format!("jst_members_{ns}"),
            None => "jst_members".to_string(),
        };
        let store = match self.inner.js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => return Ok(Vec::new()), // no member ever joined
        };
        let err =
            |e: &(dyn std::error::Error + 'static)| Error::from_nats("reading group members", e);
        let prefix = format!("{station}.{group}.");
        let filter = format!("{}{prefix}>", store.prefix);
        let subjects: Vec<(String, usize)> = match store.stream.info_with_subjects(&filter).await {
            Ok(list) => list.try_collect().await.map_err(|e| err(&e))?,
            Err(e) => return Err(err(&e)),
        };
        let now = time::OffsetDateTime::now_utc();
        let mut live = Vec::new();
        for (subject, _) in subjects {
            let Some(key) = subject.strip_prefix(&store.prefix) else {
                continue;
            };
            let Ok(Some(entry)) = store.entry(key.to_string()).await else {
                continue;
            };
            let age = (now - entry.created).try_into().unwrap_or(Duration::ZERO);
            if entry.operation == kv::Operation::Put && age < member_ttl(&entry.value) {
                live.push((
                    key[prefix.len()..].to_string(),
                    age,
                    standing_by(&entry.value),
                ));
            }
        }
        live.sort();
        Ok(live)
    }
}

fn placement(c: &jetstream::stream::ClusterInfo) -> Option<Placement> {
    // A server outside a cluster reports itself as leader, with no cluster.
    if c.name.is_none() && c.replicas.is_empty() {
        return None;
    }
    Some(Placement {
        cluster: c.name.clone(),
        leader: c.leader.clone(),
        replicas: c
            .replicas
            .iter()
            .map(|r| Replica {
                server: r.name.clone(),
                current: r.current,
                offline: r.offline,
                lag: r.lag.unwrap_or(0),
                last_seen: r.active,
            })
            .collect(),
    })
}
