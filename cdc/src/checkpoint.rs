//! Where the capture keeps what it must remember across restarts: for each
//! replication slot, the point its snapshot was taken at and whether the
//! snapshot was sent completely. Kept in a compacted station (one message per
//! slot, read back with `latest`), so it lives in the same cluster as the
//! changes and needs nothing in the source database.

use jetstation::{Client, Message, ProducerOptions, Result, StationConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub slot: String,
    /// The slot's consistent point: its snapshot shows every transaction
    /// committed before it, the stream every one committed after.
    pub consistent_lsn: u64,
    pub snapshot_done: bool,
}

pub async fn ensure_station(client: &Client, station: &str, replicas: usize) -> Result<()> {
    let config = StationConfig {
        partitions: 1,
        replicas,
        compaction: true,
        ..StationConfig::default()
    };
    match client.create_station(station, config).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == jetstation::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn load(client: &Client, station: &str, slot: &str) -> Result<Option<Checkpoint>> {
    let Some(entry) = client.latest(station, slot).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&entry.payload).ok())
}

pub async fn save(client: &Client, station: &str, checkpoint: &Checkpoint) -> Result<()> {
    let producer = client.producer(station, ProducerOptions::default()).await?;
    let payload = serde_json::to_vec(checkpoint).expect("a checkpoint serialises");
    producer
        .send(Message::new(payload).key(checkpoint.slot.clone()))
        .await?;
    producer.close().await
}
