//! Station and group stats (`client.stationStats`, `client.groups`).
//! Times are milliseconds since the epoch, durations milliseconds.

use napi_derive::napi;

fn ms(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64() * 1000.0)
}

/// A station: its partitions, dead letters and schema.
#[napi(object)]
pub struct StationStats {
    pub station: String,
    pub partitions: Vec<PartitionStats>,
    pub dead_letters: i64,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    /// Keys in the state view (compacted stations).
    pub state_keys: Option<i64>,
}

/// One partition of a station.
#[napi(object)]
pub struct PartitionStats {
    pub partition: u32,
    pub messages: i64,
    pub bytes: i64,
    pub first_sequence: i64,
    pub first_time_ms: Option<f64>,
    pub last_sequence: i64,
    pub last_time_ms: Option<f64>,
    /// Where the partition lives on a cluster (null on a single server).
    pub placement: Option<Placement>,
}

/// The copies of a partition on a cluster.
#[napi(object)]
pub struct Placement {
    pub cluster: Option<String>,
    pub leader: Option<String>,
    pub replicas: Vec<Replica>,
}

/// A copy of a partition that is not the leader.
#[napi(object)]
pub struct Replica {
    pub server: String,
    pub current: bool,
    pub offline: bool,
    pub lag: i64,
    /// Since the leader last heard from it.
    pub last_seen_ms: f64,
}

/// A consumer group of a station.
#[napi(object)]
pub struct GroupStats {
    pub group: String,
    pub members: Vec<MemberStats>,
    pub partitions: Vec<GroupPartitionStats>,
}

/// A live member of a group and the partitions it owns.
#[napi(object)]
pub struct MemberStats {
    pub member: String,
    /// Since its last announcement.
    pub last_seen_ms: f64,
    /// Out of the assignment for a while after a stall cost it partitions.
    pub standby: bool,
    pub partitions: Vec<u32>,
}

/// One partition as a group sees it.
#[napi(object)]
pub struct GroupPartitionStats {
    pub partition: u32,
    /// "history", or "snapshot" while the group still reads its snapshot.
    pub reading: String,
    pub pending: i64,
    pub unacknowledged: i64,
    pub redelivered: i64,
    pub ack_floor: i64,
    pub lag: i64,
    pub last_active_ms: Option<f64>,
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
                    messages: p.messages as i64,
                    bytes: p.bytes as i64,
                    first_sequence: p.first_sequence as i64,
                    first_time_ms: ms(p.first_time),
                    last_sequence: p.last_sequence as i64,
                    last_time_ms: ms(p.last_time),
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
                                lag: r.lag as i64,
                                last_seen_ms: r.last_seen.as_secs_f64() * 1000.0,
                            })
                            .collect(),
                    }),
                })
                .collect(),
            dead_letters: s.dead_letters as i64,
            schema: s.schema.as_ref().map(|b| b.name.clone()),
            schema_version: s.schema.and_then(|b| b.version),
            state_keys: s.state_keys.map(|k| k as i64),
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
                    last_seen_ms: m.last_seen.as_secs_f64() * 1000.0,
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
                    pending: p.pending as i64,
                    unacknowledged: p.unacknowledged as i64,
                    redelivered: p.redelivered as i64,
                    ack_floor: p.ack_floor as i64,
                    lag: p.lag as i64,
                    last_active_ms: ms(p.last_active),
                    owner: p.owner,
                })
                .collect(),
        }
    }
}
