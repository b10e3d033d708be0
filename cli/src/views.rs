//! The JSON shape of every record the tool shows, shared by `--json` output
//! and the dashboard's API, so that both always say the same thing.

use jetstation::{DeadLetter, GroupStats, SchemaInfo, Station, StationStats};
use serde_json::{Value, json};

use crate::output::payload_text;

/// A time as RFC 3339 text.
pub(crate) fn rfc3339(t: Option<std::time::SystemTime>) -> Option<String> {
    let t = time::OffsetDateTime::from(t?);
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

pub(crate) fn station(s: &Station) -> Value {
    let c = &s.config;
    json!({
        "name": s.name,
        "partitions": c.partitions,
        "replicas": c.replicas,
        "storage": c.storage.as_str(),
        "max_age": c.max_age.map(|d| d.as_secs_f64()),
        "max_bytes": c.max_bytes,
        "max_messages": c.max_messages,
        "dedup_window": c.dedup_window.as_secs_f64(),
        "max_deliveries": c.max_deliveries,
        "compaction": c.compaction,
        "delete_grace": c.delete_grace.map(|d| d.as_secs_f64()),
        "schema": c.schema.as_ref().map(|b| b.name.clone()),
        "schema_version": c.schema.as_ref().and_then(|b| b.version),
        "messages": s.messages,
        "dead_letters": s.dead_letters,
    })
}

/// The health of a station's partitions: `healthy` when every partition has
/// a leader and every replica is current, `degraded` when a replica is
/// behind or offline, `unavailable` when a partition has no leader.
pub(crate) fn health(stats: &StationStats) -> &'static str {
    let mut worst = "healthy";
    for p in &stats.partitions {
        let Some(placement) = &p.placement else {
            continue;
        };
        if placement.leader.is_none() {
            return "unavailable";
        }
        if placement.replicas.iter().any(|r| r.offline || !r.current) {
            worst = "degraded";
        }
    }
    worst
}

pub(crate) fn partitions(stats: &StationStats) -> Value {
    json!(
        stats
            .partitions
            .iter()
            .map(|p| json!({
                "partition": p.partition,
                "messages": p.messages,
                "bytes": p.bytes,
                "first_sequence": p.first_sequence,
                "last_sequence": p.last_sequence,
                "first_time": rfc3339(p.first_time),
                "last_time": rfc3339(p.last_time),
                "cluster": p.placement.as_ref().and_then(|c| c.cluster.clone()),
                "leader": p.placement.as_ref().and_then(|c| c.leader.clone()),
                "replicas": p.placement.as_ref().map(|c| c.replicas.iter().map(|r| json!({
                    "server": r.server, "current": r.current, "offline": r.offline, "lag": r.lag,
                })).collect::<Vec<_>>()),
            }))
            .collect::<Vec<_>>()
    )
}

pub(crate) fn group(g: &GroupStats) -> Value {
    json!({
        "group": g.group,
        "lag": g.partitions.iter().map(|p| p.lag).sum::<u64>(),
        "members": g.members.iter().map(|m| json!({
            "member": m.member,
            "last_seen": m.last_seen.as_secs_f64(),
            "standby": m.standby,
            "partitions": m.partitions,
        })).collect::<Vec<_>>(),
        "partitions": g.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "reading": p.reading,
            "pending": p.pending,
            "unacknowledged": p.unacknowledged,
            "redelivered": p.redelivered,
            "ack_floor": p.ack_floor,
            "lag": p.lag,
            "last_active": rfc3339(p.last_active),
            "owner": p.owner,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn dead_letter(d: &DeadLetter) -> Value {
    json!({
        "sequence": d.sequence,
        "origin_station": d.origin_station,
        "origin_partition": d.origin_partition,
        "origin_sequence": d.origin_sequence,
        "group": d.group,
        "deliveries": d.deliveries,
        "last_error": d.last_error,
        "dead_lettered_at": d.dead_lettered_at,
        "key": d.key,
        "payload": payload_text(&d.payload),
        "headers": d.headers,
    })
}

pub(crate) fn schema_info(s: &SchemaInfo) -> Value {
    json!({
        "name": s.name,
        "format": s.format.as_str(),
        "compatibility": s.compatibility.as_str(),
        "versions": s.versions,
        "latest": s.latest,
    })
}

/// The unified diff between two sources. JSON sources (JSON Schema, Avro)
/// are compared pretty-printed with sorted keys, so that a one-line schema
/// still shows which field changed.
pub(crate) fn diff(name: &str, from: u32, old: &str, to: u32, new: &str) -> String {
    let pretty = |s: &str| {
        serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .map(|p| p + "\n")
    };
    let (old, new) = match (pretty(old), pretty(new)) {
        (Some(a), Some(b)) => (a, b),
        _ => (old.to_string(), new.to_string()),
    };
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .header(&format!("{name} v{from}"), &format!("{name} v{to}"))
        .to_string()
}
