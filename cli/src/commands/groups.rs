//! `jetstation groups …`

use clap::Subcommand;
use jetstation::{Client, Result};
use serde_json::json;

use crate::{
    output::{Output, opt},
    views,
};

#[derive(Debug, Subcommand)]
pub(crate) enum Groups {
    /// The station's groups: members and lag.
    Ls { station: String },
    /// One group: each partition's owner, pending, unacknowledged and lag.
    Show { station: String, group: String },
}

impl Groups {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        match self {
            Groups::Ls { station } => {
                let groups = client.groups(&station).await?;
                let value = json!(groups.iter().map(views::group).collect::<Vec<_>>());
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
                    &views::group(g),
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
