//! Station and group stats (`Client.station_stats`, `Client.groups`).

use pyo3::prelude::*;

fn unix(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// A station: its partitions, dead letters and schema.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct StationStats {
    pub(crate) station: String,
    pub(crate) partitions: Vec<PartitionStats>,
    pub(crate) dead_letters: u64,
    pub(crate) schema: Option<String>,
    pub(crate) schema_version: Option<u32>,
    /// Keys in the state view (compacted stations).
    pub(crate) state_keys: Option<u64>,
}

/// One partition of a station (times are POSIX seconds).
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct PartitionStats {
    pub(crate) partition: u32,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) first_sequence: u64,
    pub(crate) first_time: Option<f64>,
    pub(crate) last_sequence: u64,
    pub(crate) last_time: Option<f64>,
    /// Where the partition lives on a cluster (`None` on a single server).
    pub(crate) placement: Option<Placement>,
}

/// The copies of a partition on a cluster.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub(crate) cluster: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) replicas: Vec<Replica>,
}

/// A copy of a partition that is not the leader.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    pub(crate) server: String,
    pub(crate) current: bool,
    pub(crate) offline: bool,
    pub(crate) lag: u64,
    /// Seconds since the leader last heard from it.
    pub(crate) last_seen: f64,
}

/// A consumer group of a station.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct GroupStats {
    pub(crate) group: String,
    pub(crate) members: Vec<MemberStats>,
    pub(crate) partitions: Vec<GroupPartitionStats>,
}

/// A live member of a group and the partitions it owns.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct MemberStats {
    pub(crate) member: String,
    /// Seconds since its last announcement.
    pub(crate) last_seen: f64,
    /// Out of the assignment for a while after a stall cost it partitions.
    pub(crate) standby: bool,
    pub(crate) partitions: Vec<u32>,
}

/// One partition as a group sees it.
#[pyclass(module = "jetstation._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct GroupPartitionStats {
    pub(crate) partition: u32,
    /// "history", or "snapshot" while the group still reads its snapshot.
    pub(crate) reading: String,
    pub(crate) pending: u64,
    pub(crate) unacknowledged: u64,
    pub(crate) redelivered: u64,
    pub(crate) ack_floor: u64,
    pub(crate) lag: u64,
    pub(crate) last_active: Option<f64>,
    pub(crate) owner: Option<String>,
}

macro_rules! repr {
    ($t:ident) => {
        #[pymethods]
        impl $t {
            fn __repr__(&self) -> String {
                format!("{:?}", self)
            }
        }
    };
}
repr!(StationStats);
repr!(PartitionStats);
repr!(Placement);
repr!(Replica);
repr!(GroupStats);
repr!(MemberStats);
repr!(GroupPartitionStats);

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
                    first_time: unix(p.first_time),
                    last_sequence: p.last_sequence,
                    last_time: unix(p.last_time),
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
                    last_active: unix(p.last_active),
                    owner: p.owner,
                })
                .collect(),
        }
    }
}
