//! The command line of `jetstation-cdc` (also `jetstation cdc`).

use std::time::Duration;

use clap::{Args, Subcommand};
use jetstation::{Client, Result};

use crate::{CaptureOptions, SinkOptions, TableMapping};

#[derive(Debug, Subcommand)]
pub enum Cdc {
    /// Stream PostgreSQL changes into stations (snapshot first, then the
    /// replication stream).
    Capture(Capture),
    /// Apply a station's changes to a table of another database.
    Sink(Sink),
}

#[derive(Debug, Args)]
pub struct Capture {
    /// Source database, e.g. postgres://user:password@host:5432/db
    #[arg(long, env = "JETSTATION_CDC_POSTGRES")]
    postgres: String,
    /// schema.table[=station][:col,col…]; repeat for more tables.
    #[arg(long = "table", required = true)]
    tables: Vec<TableMapping>,
    #[arg(long, default_value = "jetstation")]
    slot: String,
    #[arg(long, default_value = "jetstation")]
    publication: String,
    /// Partitions of the stations the capture creates.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Seconds in which a resent change is recognised as a duplicate.
    #[arg(long, default_value_t = 600)]
    dedup_window: u64,
    /// Compatibility mode of the table schemas: none, backward, forward, full.
    #[arg(long, default_value = "backward")]
    compatibility: String,
    /// The station that keeps the capture's checkpoints.
    #[arg(long, default_value = "jetstation-cdc")]
    state_station: String,
    /// Milliseconds between reports of the confirmed position to PostgreSQL.
    #[arg(long, default_value_t = 200)]
    status_interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct Sink {
    /// Target database.
    #[arg(long, env = "JETSTATION_SINK_POSTGRES")]
    postgres: String,
    #[arg(long)]
    station: String,
    #[arg(long)]
    group: String,
    /// Target table, schema.table (its primary key is the row key).
    #[arg(long)]
    table: String,
    /// Only these columns (comma-separated).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    #[arg(long, default_value_t = 512)]
    batch: usize,
}

async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

impl Cdc {
    pub async fn run(self, client: &Client) -> Result<()> {
        match self {
            Cdc::Capture(c) => {
                let mut options = CaptureOptions::new(c.postgres, c.tables);
                options.slot = c.slot;
                options.publication = c.publication;
                options.partitions = c.partitions;
                options.replicas = c.replicas;
                options.dedup_window = Duration::from_secs(c.dedup_window);
                options.compatibility = c.compatibility.parse()?;
                options.state_station = c.state_station;
                options.status_interval = Duration::from_millis(c.status_interval_ms.max(1));
                crate::capture::run(client, &options, interrupted()).await
            }
            Cdc::Sink(s) => {
                let mut options = SinkOptions::new(s.postgres, s.station, s.group, s.table);
                options.columns = s.columns;
                options.batch = s.batch;
                crate::sink::run(client, &options, interrupted()).await
            }
        }
    }
}
