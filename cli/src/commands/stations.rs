//! `jetstation stations …`

use clap::{Args, Subcommand};
use jetstation::{Client, Result, SchemaBinding, StationConfig};
use serde_json::json;

use super::secs;
use crate::{
    output::{Output, opt},
    views,
};

#[derive(Debug, Subcommand)]
pub(crate) enum Stations {
    /// Every station, with its size.
    Ls,
    /// A station's settings and partitions (with cluster placement).
    Show { name: String },
    /// Create a station (a no-op when it exists with the same settings).
    Create {
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Change the settings that may change (retention, limits, schema…).
    Update {
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete a station and everything in it.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub(crate) struct Settings {
    #[arg(long)]
    partitions: Option<u32>,
    #[arg(long)]
    replicas: Option<usize>,
    /// file or memory.
    #[arg(long)]
    storage: Option<String>,
    /// Seconds a message is kept.
    #[arg(long)]
    max_age: Option<f64>,
    #[arg(long)]
    max_bytes: Option<u64>,
    #[arg(long)]
    max_messages: Option<u64>,
    /// Seconds in which a repeated message id is a duplicate.
    #[arg(long)]
    dedup_window: Option<f64>,
    #[arg(long)]
    max_deliveries: Option<u32>,
    /// Keep the latest message of every key beside the history.
    #[arg(long)]
    compaction: bool,
    /// Seconds a deleted key's tombstone stays.
    #[arg(long)]
    delete_grace: Option<f64>,
    /// Schema every message must match.
    #[arg(long)]
    schema: Option<String>,
    #[arg(long, requires = "schema")]
    schema_version: Option<u32>,
}

impl Settings {
    fn apply(&self, mut c: StationConfig) -> Result<StationConfig> {
        use jetstation::convert::seconds;
        if let Some(n) = self.partitions {
            c.partitions = n;
        }
        if let Some(n) = self.replicas {
            c.replicas = n;
        }
        if let Some(s) = &self.storage {
            c.storage = s.parse()?;
        }
        if let Some(s) = self.max_age {
            c.max_age = Some(seconds("max_age", s)?);
        }
        if let Some(n) = self.max_bytes {
            c.max_bytes = Some(n);
        }
        if let Some(n) = self.max_messages {
            c.max_messages = Some(n);
        }
        if let Some(s) = self.dedup_window {
            c.dedup_window = seconds("dedup_window", s)?;
        }
        if let Some(n) = self.max_deliveries {
            c.max_deliveries = n;
        }
        if self.compaction {
            c.compaction = true;
        }
        if let Some(s) = self.delete_grace {
            c.delete_grace = Some(seconds("delete_grace", s)?);
        }
        if let Some(name) = &self.schema {
            c.schema = Some(SchemaBinding {
                name: name.clone(),
                version: self.schema_version,
            });
        }
        Ok(c)
    }
}

impl Stations {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        match self {
            Stations::Ls => {
                let stations = client.stations().await?;
                let value = json!(stations.iter().map(views::station).collect::<Vec<_>>());
                let rows = stations
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.config.partitions.to_string(),
                            s.config.replicas.to_string(),
                            s.messages.to_string(),
                            s.dead_letters.to_string(),
                            s.config
                                .schema
                                .as_ref()
                                .map_or("-".into(), |b| b.name.clone()),
                        ]
                    })
                    .collect();
                out.table(
                    &value,
                    &[
                        "station",
                        "partitions",
                        "replicas",
                        "messages",
                        "dead letters",
                        "schema",
                    ],
                    rows,
                );
            }
            Stations::Show { name } => {
                let station = client.station(&name).await?;
                let stats = client.station_stats(&name).await?;
                let mut value = views::station(&station);
                value["partitions_detail"] = views::partitions(&stats);
                value["health"] = json!(views::health(&stats));
                value["state_keys"] = json!(stats.state_keys);
                if out.json {
                    println!("{value}");
                    return Ok(());
                }
                let c = &station.config;
                out.record(
                    &value,
                    vec![
                        ("station", station.name.clone()),
                        ("partitions", c.partitions.to_string()),
                        ("replicas", c.replicas.to_string()),
                        ("storage", c.storage.as_str().to_string()),
                        ("max age", secs(c.max_age)),
                        ("dedup window", secs(Some(c.dedup_window))),
                        ("max deliveries", c.max_deliveries.to_string()),
                        ("compaction", c.compaction.to_string()),
                        ("state keys", opt(stats.state_keys)),
                        ("messages", station.messages.to_string()),
                        ("dead letters", station.dead_letters.to_string()),
                    ],
                );
                let rows = stats
                    .partitions
                    .iter()
                    .map(|p| {
                        let placement = p.placement.as_ref();
                        vec![
                            p.partition.to_string(),
                            p.messages.to_string(),
                            p.bytes.to_string(),
                            format!("{}..{}", p.first_sequence, p.last_sequence),
                            opt(placement.and_then(|c| c.leader.clone())),
                            placement.map_or("-".into(), |c| {
                                c.replicas
                                    .iter()
                                    .map(|r| {
                                        let state = if r.offline {
                                            "offline".to_string()
                                        } else if r.current {
                                            "current".to_string()
                                        } else {
                                            format!("lag {}", r.lag)
                                        };
                                        format!("{} ({state})", r.server)
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }),
                        ]
                    })
                    .collect();
                out.table(
                    &value,
                    &[
                        "partition",
                        "messages",
                        "bytes",
                        "sequences",
                        "leader",
                        "replicas",
                    ],
                    rows,
                );
            }
            Stations::Create { name, settings } => {
                let station = client
                    .create_station(&name, settings.apply(StationConfig::default())?)
                    .await?;
                out.done(
                    &views::station(&station),
                    &format!("station {name:?} ready"),
                );
            }
            Stations::Update { name, settings } => {
                let current = client.station(&name).await?.config;
                let station = client
                    .update_station(&name, settings.apply(current)?)
                    .await?;
                out.done(
                    &views::station(&station),
                    &format!("station {name:?} updated"),
                );
            }
            Stations::Delete { name } => {
                client.delete_station(&name).await?;
                out.done(
                    &json!({"deleted": name}),
                    &format!("station {name:?} deleted"),
                );
            }
        }
        Ok(())
    }
}
