//! `jetstation groups …`

use clap::Subcommand;
use jetstation::{Client, GroupStats, Result};
use serde_json::json;

use super::rfc3339;
use crate::output::{Output, opt};

#[derive(Debug, Subcommand)]
pub(crate) enum Groups {
    /// The station's groups: members and lag.
    Ls { station: String },
    /// One group: each partition's owner, pending, unacknowledged and lag.
    Show { station: String, group: String },
}

fn group_json(g: &GroupStats) -> serde_json::Value {
    json!({
        "group": g.group,
        "lag": g.partitions.iter().map(|p| p.lag).sum::<u64>(),
        "members": g.members.iter().map(|m| json!({
            "member": m.member,
            "last_seen": m.last_seen.as_secs_f64(),
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

impl Groups {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        match self {
            Groups::Ls { station } => {
                let groups = client.groups(&station).await?;
                let value = json!(groups.iter().map(group_json).collect::<Vec<_>>());
                let rows = groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.group.clone(),
                            g.members.len().to_string(),
                            g.partitions.iter().map(|p| p.lag).sum::<u64>().to_string(),
                            g.partitions
                                .iter()
                                .map(|p| p.unacknowledged)
                                .sum::<u64>()
                                .to_string(),
                        ]
                    })
                    .collect();
                out.table(&value, &["group", "members", "lag", "unacknowledged"], rows);
            }
            Groups::Show { station, group } => {
                let groups = client.groups(&station).await?;
                let Some(g) = groups.iter().find(|g| g.group == group) else {
                    return Err(jetstation::Error::new(
                        jetstation::ErrorKind::NotFound,
                        format!("station {station:?} has no group {group:?}"),
                    ));
                };
                let rows = g
                    .partitions
                    .iter()
                    .map(|p| {
                        vec![
                            p.partition.to_string(),
                            p.reading.to_string(),
                            opt(p.owner.clone()),
                            p.pending.to_string(),
                            p.unacknowledged.to_string(),
                            p.redelivered.to_string(),
                            p.lag.to_string(),
                        ]
                    })
                    .collect();
                out.table(
                    &group_json(g),
                    &[
                        "partition",
                        "reading",
                        "owner",
                        "pending",
                        "unacked",
                        "redelivered",
                        "lag",
                    ],
                    rows,
                );
            }
        }
        Ok(())
    }
}
