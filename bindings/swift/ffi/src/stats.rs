//! Station and group stats: `stationStats` and `groups` on the `Client`.
//! Durations are seconds.

use std::time::SystemTime;

use crate::{client::Client, error::Result};

/// A station: its partitions, dead letters and schema.
#[derive(uniffi::Record)]
pub struct StationStats {
    pub station: String,
    pub partitions: Vec<PartitionStats>,
    pub dead_letters: u64,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    /// Keys in the state view (compacted stations).
    pub state_keys: Option<u64>,
}

/// One partition of a station.
#[derive(uniffi::Record)]
pub struct PartitionStats {
    pub partition: u32,
    pub messages: u64,
    pub bytes: u64,
    pub first_sequence: u64,
    pub first_time: Option<SystemTime>,
    pub last_sequence: u64,
    pub last_time: Option<SystemTime>,
    /// Where the partition lives on a cluster (`nil` on a single server).
    pub placement: Option<Placement>,
}

/// The copies of a partition on a cluster.
#[derive(uniffi::Record)]
pub struct Placement {
    pub cluster: Option<String>,
    pub leader: Option<String>,
    pub replicas: Vec<Replica>,
}

/// A copy of a partition that is not the leader.
#[derive(uniffi::Record)]
pub struct Replica {
    pub server: String,
    pub current: bool,
    pub offline: bool,
    pub lag: u64,
    /// Seconds since the leader last heard from it.
    pub last_seen: f64,
}

/// A consumer group of a station.
#[derive(uniffi::Record)]
pub struct GroupStats {
    pub group: String,
    pub members: Vec<MemberStats>,
    pub partitions: Vec<GroupPartitionStats>,
}

/// A live member of a group and the partitions it owns.
#[derive(uniffi::Record)]
pub struct MemberStats {
    pub member: String,
    /// Seconds since its last announcement.
    pub last_seen: f64,
    /// Out of the assignment for a while after a stall cost it partitions.
    pub standby: bool,
    pub partitions: Vec<u32>,
}

/// One partition as a group sees it.
#[derive(uniffi::Record)]
pub struct GroupPartitionStats {
    pub partition: u32,
    /// "history", or "snapshot" while the group still reads its snapshot.
    pub reading: String,
    pub pending: u64,
    pub unacknowledged: u64,
    pub redelivered: u64,
    pub ack_floor: u64,
    pub lag: u64,
    pub last_active: Option<SystemTime>,
    pub owner: Option<String>,
}

impl From<jetstation::StationStats> for StationStats {
    fn from(s: jetstation::StationStats) -> Self {
        Self {
            station: s.station,
            partitions: s
                .partitions
                .into_iter()
                .map(|p| PartitionStats {
                    partition: p.partition,
                    messages: p.messages,
                    bytes: p.bytes,
                    first_sequence: p.first_sequence,
                    first_time: p.first_time,
                    last_sequence: p.last_sequence,
                    last_time: p.last_time,
                    placement: p.placement.map(|c| Placement {
                        cluster: c.cluster,
                        leader: c.leader,
                        replicas: c
                            .replicas
                            .into_iter()
                            .map(|r| Replica {
                                server: r.server,
                                current: r.current,
                                offline: r.offline,
                                lag: r.lag,
                                last_seen: r.last_seen.as_secs_f64(),
                            })
                            .collect(),
                    }),
                })
                .collect(),
            dead_letters: s.dead_letters,
            schema: s.schema.as_ref().map(|b| b.name.clone()),
            schema_version: s.schema.and_then(|b| b.version),
            state_keys: s.state_keys,
        }
    }
}

impl From<jetstation::GroupStats> for GroupStats {
    fn from(g: jetstation::GroupStats) -> Self {
        Self {
            group: g.group,
            members: g
                .members
                .into_iter()
                .map(|m| MemberStats {
                    member: m.member,
                    last_seen: m.last_seen.as_secs_f64(),
                    standby: m.standby,
                    partitions: m.partitions,
                })
                .collect(),
            partitions: g
                .partitions
                .into_iter()
                .map(|p| GroupPartitionStats {
                    partition: p.partition,
                    reading: p.reading.to_string(),
                    pending: p.pending,
                    unacknowledged: p.unacknowledged,
                    redelivered: p.redelivered,
                    ack_floor: p.ack_floor,
                    lag: p.lag,
                    last_active: p.last_active,
                    owner: p.owner,
                })
                .collect(),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    /// A station's partitions, dead letters and schema.
    pub async fn station_stats(&self, station: String) -> Result<StationStats> {
        Ok(self.inner.station_stats(&station).await?.into())
    }

    /// A station's consumer groups: members, owners and lag per partition.
    pub async fn groups(&self, station: String) -> Result<Vec<GroupStats>> {
        Ok(self
            .inner
            .groups(&station)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
