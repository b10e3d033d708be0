//! Conversions between the contract's messages and the core's types, and
//! core errors to gRPC statuses (code + google.rpc.ErrorInfo with the kind).

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::pb;

/// The status of a core error: a code that means something, and the stable
/// kind as ErrorInfo reason (domain "jetstation").
pub fn status(e: jetstation::Error) -> Status {
    use jetstation::ErrorKind as K;
    let code = match e.kind() {
        K::InvalidArgument | K::PayloadTooLarge | K::SchemaValidation | K::IncompatibleSchema => {
            Code::InvalidArgument
        }
        K::NotFound => Code::NotFound,
        K::AlreadyExists => Code::AlreadyExists,
        K::Auth => Code::PermissionDenied,
        K::BufferFull => Code::ResourceExhausted,
        K::Connection | K::ServerTooOld => Code::Unavailable,
        K::Timeout => Code::DeadlineExceeded,
        K::Closed => Code::FailedPrecondition,
        _ => Code::Internal,
    };
    Status::with_error_details(
        code,
        e.message(),
        ErrorDetails::with_error_info(e.kind().as_str(), "jetstation", HashMap::new()),
    )
}

/// The stable kind carried by a status (from its ErrorInfo), or a kind
/// derived from its code.
pub(crate) fn kind_of(s: &Status) -> String {
    s.get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| match s.code() {
            Code::Unauthenticated => "auth".into(),
            Code::NotFound => "not_found".into(),
            Code::InvalidArgument => "invalid_argument".into(),
            _ => "broker".into(),
        })
}

pub(crate) fn error(e: &jetstation::Error) -> pb::Error {
    pb::Error {
        kind: e.kind().as_str().into(),
        message: e.message().into(),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Status {
    status(jetstation::Error::new(
        jetstation::ErrorKind::InvalidArgument,
        message,
    ))
}

pub(crate) fn duration(d: prost_types::Duration) -> Result<Duration, Status> {
    core_duration(d).map_err(status)
}

/// A protobuf Duration; negative or out of range is `InvalidArgument`.
pub(crate) fn core_duration(d: prost_types::Duration) -> jetstation::Result<Duration> {
    Duration::try_from(d).map_err(|_| {
        jetstation::Error::new(
            jetstation::ErrorKind::InvalidArgument,
            format!(
                "a duration must be non-negative with nanos in 0..1e9, got {}s {}ns",
                d.seconds, d.nanos
            ),
        )
    })
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}

pub(crate) fn station_config(c: pb::StationConfig) -> Result<jetstation::StationConfig, Status> {
    let d = jetstation::StationConfig::default();
    Ok(jetstation::StationConfig {
        partitions: if c.partitions == 0 {
            d.partitions
        } else {
            c.partitions
        },
        replicas: if c.replicas == 0 {
            d.replicas
        } else {
            c.replicas as usize
        },
        storage: match c.storage() {
            pb::Storage::Memory => jetstation::Storage::Memory,
            _ => jetstation::Storage::File,
        },
        max_age: c.max_age.map(duration).transpose()?,
        max_bytes: (c.max_bytes > 0).then_some(c.max_bytes),
        max_messages: (c.max_messages > 0).then_some(c.max_messages),
        dedup_window: crate::or_default(c.dedup_window, d.dedup_window)?,
        max_deliveries: if c.max_deliveries == 0 {
            d.max_deliveries
        } else {
            c.max_deliveries
        },
        compaction: c.compaction,
        delete_grace: c.delete_grace.map(duration).transpose()?,
        schema: (!c.schema.is_empty()).then(|| jetstation::SchemaBinding {
            name: c.schema,
            version: (c.schema_version > 0).then_some(c.schema_version),
        }),
    })
}

pub(crate) fn station(s: jetstation::Station) -> pb::Station {
    let c = s.config;
    pb::Station {
        name: s.name,
        config: Some(pb::StationConfig {
            partitions: c.partitions,
            replicas: c.replicas as u32,
            storage: match c.storage {
                jetstation::Storage::File => pb::Storage::File,
                jetstation::Storage::Memory => pb::Storage::Memory,
            } as i32,
            max_age: c.max_age.map(proto_duration),
            max_bytes: c.max_bytes.unwrap_or(0),
            max_messages: c.max_messages.unwrap_or(0),
            dedup_window: Some(proto_duration(c.dedup_window)),
            max_deliveries: c.max_deliveries,
            compaction: c.compaction,
            delete_grace: c.delete_grace.map(proto_duration),
            schema: c
                .schema
                .as_ref()
                .map(|b| b.name.clone())
                .unwrap_or_default(),
            schema_version: c.schema.and_then(|b| b.version).unwrap_or(0),
        }),
        messages: s.messages,
        dead_letters: s.dead_letters,
    }
}

pub(crate) fn receipt(r: jetstation::Receipt) -> pb::Receipt {
    pb::Receipt {
        station: r.station,
        partition: r.partition,
        sequence: r.sequence,
        duplicate: r.duplicate,
        msg_id: r.msg_id,
    }
}

/// The W3C trace context of a call (`traceparent`, `tracestate` gRPC
/// metadata), which every message of the call carries unless it has its own.
pub(crate) fn trace_context(metadata: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    [
        jetstation::telemetry::TRACEPARENT,
        jetstation::telemetry::TRACESTATE,
    ]
    .into_iter()
    .filter_map(|name| {
        let value = metadata.get(name)?.to_str().ok()?;
        Some((name.to_string(), value.to_string()))
    })
    .collect()
}

pub(crate) fn message(m: pb::OutgoingMessage, trace: &[(String, String)]) -> jetstation::Message {
    let mut headers: Vec<(String, String)> = m.headers.into_iter().collect();
    let own = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(jetstation::telemetry::TRACEPARENT));
    if !own {
        headers.extend(trace.iter().cloned());
    }
    headers.sort();
    jetstation::Message {
        payload: m.payload.into(),
        key: (!m.key.is_empty()).then_some(m.key),
        headers,
        msg_id: (!m.msg_id.is_empty()).then_some(m.msg_id),
    }
}

pub(crate) fn schema_format(f: pb::SchemaFormat) -> Result<jetstation::SchemaFormat, Status> {
    match f {
        pb::SchemaFormat::JsonSchema => Ok(jetstation::SchemaFormat::JsonSchema),
        pb::SchemaFormat::Protobuf => Ok(jetstation::SchemaFormat::Protobuf),
        pb::SchemaFormat::Avro => Ok(jetstation::SchemaFormat::Avro),
        pb::SchemaFormat::Unspecified => Err(invalid(
            "format is required: SCHEMA_FORMAT_JSON_SCHEMA, SCHEMA_FORMAT_PROTOBUF or SCHEMA_FORMAT_AVRO",
        )),
    }
}

fn format_of(f: jetstation::SchemaFormat) -> pb::SchemaFormat {
    match f {
        jetstation::SchemaFormat::JsonSchema => pb::SchemaFormat::JsonSchema,
        jetstation::SchemaFormat::Protobuf => pb::SchemaFormat::Protobuf,
        jetstation::SchemaFormat::Avro => pb::SchemaFormat::Avro,
    }
}

pub(crate) fn compatibility(c: pb::Compatibility) -> jetstation::Compatibility {
    match c {
        pb::Compatibility::None => jetstation::Compatibility::None,
        pb::Compatibility::Forward => jetstation::Compatibility::Forward,
        pb::Compatibility::Full => jetstation::Compatibility::Full,
        _ => jetstation::Compatibility::Backward,
    }
}

fn compatibility_of(c: jetstation::Compatibility) -> pb::Compatibility {
    match c {
        jetstation::Compatibility::None => pb::Compatibility::None,
        jetstation::Compatibility::Backward => pb::Compatibility::Backward,
        jetstation::Compatibility::Forward => pb::Compatibility::Forward,
        jetstation::Compatibility::Full => pb::Compatibility::Full,
    }
}

fn timestamp(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    })
}

pub(crate) fn schema_version(v: jetstation::SchemaVersion) -> pb::SchemaVersion {
    pb::SchemaVersion {
        created: timestamp(&v.created),
        name: v.name,
        version: v.version,
        format: format_of(v.format) as i32,
        source: v.source,
        message_type: v.message_type.unwrap_or_default(),
    }
}

pub(crate) fn schema_info(s: jetstation::SchemaInfo) -> pb::SchemaInfo {
    pb::SchemaInfo {
        name: s.name,
        format: format_of(s.format) as i32,
        compatibility: compatibility_of(s.compatibility) as i32,
        versions: s.versions,
        latest: s.latest,
    }
}

pub(crate) fn dead_letter(d: jetstation::DeadLetter) -> pb::DeadLetter {
    pb::DeadLetter {
        dead_lettered_at: timestamp(&d.dead_lettered_at),
        sequence: d.sequence,
        origin_station: d.origin_station,
        origin_partition: d.origin_partition,
        origin_sequence: d.origin_sequence,
        origin_msg_id: d.origin_msg_id.unwrap_or_default(),
        group: d.group,
        deliveries: d.deliveries,
        last_error: d.last_error,
        key: d.key.unwrap_or_default(),
        payload: d.payload.to_vec(),
        headers: d.headers.into_iter().collect(),
    }
}

pub(crate) fn start(join: &pb::Join) -> Result<jetstation::StartPosition, Status> {
    Ok(match join.start() {
        pb::StartPosition::Latest => jetstation::StartPosition::Latest,
        pb::StartPosition::Snapshot => jetstation::StartPosition::Snapshot,
        pb::StartPosition::Sequence => {
            jetstation::StartPosition::sequence(join.start_sequence).map_err(status)?
        }
        pb::StartPosition::Time => {
            let t = join
                .start_time
                .ok_or_else(|| invalid("START_POSITION_TIME needs start_time"))?;
            let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
            jetstation::StartPosition::Time(
                time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
                    .map_err(|e| invalid(format!("start_time out of range: {e}")))?,
            )
        }
        _ => jetstation::StartPosition::Earliest,
    })
}

/// A member's partitions, as the consume stream reports them.
pub(crate) fn member_health(parts: Vec<jetstation::PartitionHealth>) -> pb::MemberHealth {
    pb::MemberHealth {
        partitions: parts
            .into_iter()
            .map(|p| pb::PartitionHealth {
                partition: p.partition,
                owned: p.owned,
                in_sync: p.in_sync,
                held: p.held as u64,
                undelivered: p.undelivered,
                last_delivery: p.last_delivery.map(prost_types::Timestamp::from),
                last_error: p.last_error.unwrap_or_default(),
            })
            .collect(),
    }
}

/// The latest message of a key, for GetLatest and Snapshot.
pub(crate) fn state_entry(e: jetstation::StateEntry) -> pb::StateEntry {
    let time = time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| prost_types::Timestamp {
            seconds: t.unix_timestamp(),
            nanos: t.nanosecond() as i32,
        });
    pb::StateEntry {
        station: e.station,
        key: e.key,
        partition: e.partition,
        sequence: e.sequence,
        payload: e.payload.to_vec(),
        headers: e.headers.into_iter().collect(),
        time,
    }
}

pub(crate) fn station_stats(s: jetstation::StationStats) -> pb::StationStats {
    pb::StationStats {
        station: s.station,
        partitions: s
            .partitions
            .into_iter()
            .map(|p| pb::PartitionStats {
                partition: p.partition,
                messages: p.messages,
                bytes: p.bytes,
                first_sequence: p.first_sequence,
                first_time: p.first_time.map(prost_types::Timestamp::from),
                last_sequence: p.last_sequence,
                last_time: p.last_time.map(prost_types::Timestamp::from),
                placement: p.placement.map(|c| pb::Placement {
                    cluster: c.cluster.unwrap_or_default(),
                    leader: c.leader.unwrap_or_default(),
                    replicas: c
                        .replicas
                        .into_iter()
                        .map(|r| pb::Replica {
                            server: r.server,
                            current: r.current,
                            offline: r.offline,
                            lag: r.lag,
                            last_seen: Some(proto_duration(r.last_seen)),
                        })
                        .collect(),
                }),
            })
            .collect(),
        dead_letters: s.dead_letters,
        schema: s
            .schema
            .as_ref()
            .map(|b| b.name.clone())
            .unwrap_or_default(),
        schema_version: s.schema.and_then(|b| b.version).unwrap_or(0),
        state_keys: s.state_keys,
    }
}

pub(crate) fn group_stats(g: jetstation::GroupStats) -> pb::GroupStats {
    pb::GroupStats {
        group: g.group,
        members: g
            .members
            .into_iter()
            .map(|m| pb::MemberStats {
                member: m.member,
                last_seen: Some(proto_duration(m.last_seen)),
                standby: m.standby,
                partitions: m.partitions,
            })
            .collect(),
        partitions: g
            .partitions
            .into_iter()
            .map(|p| pb::GroupPartitionStats {
                partition: p.partition,
                reading: p.reading.to_string(),
                pending: p.pending,
                unacknowledged: p.unacknowledged,
                redelivered: p.redelivered,
                ack_floor: p.ack_floor,
                lag: p.lag,
                last_active: p.last_active.map(prost_types::Timestamp::from),
                owner: p.owner.unwrap_or_default(),
            })
            .collect(),
    }
}
