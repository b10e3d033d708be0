//! # jetstation
//!
//! One client core for NATS JetStream: **stations** (durable, partitioned
//! streams with retention, dead letters and dedup), a **producer** that keeps
//! per-key order across retries and reconnects, and **consumer groups** with
//! per-key ordered processing, ordered acknowledgements and dead letters.
//!
//! Python, Node, Swift and the gRPC gateway wrap this crate; every behaviour
//! lives here so that every language behaves the same.
//!
//! ```no_run
//! # async fn demo() -> jetstation::Result<()> {
//! use jetstation::{Client, ConnectOptions, Message, StationConfig};
//! let client = Client::connect(ConnectOptions::new("nats://127.0.0.1:4222")).await?;
//! client.create_station("employee-changes", StationConfig::default().partitions(4)).await?;
//! let producer = client.producer("employee-changes", Default::default()).await?;
//! let receipt = producer.send(Message::new("name changed").key("emp-42")).await?;
//! println!("stored at partition {} sequence {}", receipt.partition, receipt.sequence);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod client;
pub mod consumer;
pub mod convert;
pub mod dead_letter;
mod elections;
pub mod error;
pub mod headers;
mod liveness;
pub mod log;
pub mod names;
mod nats_errors;
pub mod producer;
pub mod schema;
pub mod state;
pub mod station;
pub mod stats;
pub mod telemetry;
mod vocabulary;

pub use client::{Auth, Client, ConnectOptions, Tls};
pub use consumer::{
    Consumer, ConsumerOptions, DEFAULT_NACK_REASON, DEFAULT_TERM_REASON, Delivery, DeliveryId,
    PartitionHealth, ReceivedMessage, Settlement, StartPosition,
};
pub use dead_letter::DeadLetter;
pub use error::{Error, ErrorKind, Result};
pub use producer::{
    BOOKKEEPING_BYTES, Message, Producer, ProducerOptions, Receipt, SendHandle, TryEnqueued,
    WhenFull,
};
pub use schema::{
    Compatibility, SchemaBinding, SchemaDefinition, SchemaFormat, SchemaInfo, SchemaVersion,
    Validator,
};
pub use state::{Snapshot, StateEntry};
pub use station::{Station, StationConfig, Storage};
pub use stats::{
    GroupPartitionStats, GroupStats, MemberStats, PartitionStats, Placement, Replica, StationStats,
};
