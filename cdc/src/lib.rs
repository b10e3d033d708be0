//! Change data capture from PostgreSQL into jetstation stations, and the
//! sink that applies the changes to a table of another database.
//!
//! - [`capture::run`] streams logical replication (`pgoutput`) into one
//!   station per table: key = primary key, payload = JSON with `op`,
//!   `before`, `after`, `table`, `lsn`, `index`, `xid` and `commit_time`.
//! - [`sink::run`] is a consumer group that applies those changes to a table
//!   idempotently.

pub mod capture;
pub mod checkpoint;
pub mod cli;
pub mod pgoutput;
pub mod sink;
pub mod table;

pub use capture::CaptureOptions;
pub use sink::SinkOptions;
pub use table::TableMapping;
