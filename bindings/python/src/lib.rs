//! `jetstation._native`: the Python glue over the jetstation core. Each file
//! mirrors one core concept; conversion and error mapping only.

mod client;
mod consumer;
mod error;
mod logging;
mod producer;
mod runtime;
mod snapshot;
mod stats;
mod types;

use pyo3::prelude::*;

/// The partition a key goes to in a station of `partitions` partitions (the
/// same in every language).
#[pyfunction]
fn partition_of(key: &str, partitions: u32) -> u32 {
    jetstation::names::partition_of(key, partitions)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(client::connect, m)?)?;
    m.add_function(wrap_pyfunction!(logging::init_logging, m)?)?;
    m.add_function(wrap_pyfunction!(logging::shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(partition_of, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::SendHandle>()?;
    m.add_class::<producer::BatchHandle>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::Delivery>()?;
    m.add_class::<types::Receipt>()?;
    m.add_class::<types::Station>()?;
    m.add_class::<types::DeadLetter>()?;
    m.add_class::<types::SchemaVersion>()?;
    m.add_class::<types::SchemaInfo>()?;
    m.add_class::<types::PartitionHealth>()?;
    m.add_class::<stats::StationStats>()?;
    m.add_class::<stats::PartitionStats>()?;
    m.add_class::<stats::Placement>()?;
    m.add_class::<stats::Replica>()?;
    m.add_class::<stats::GroupStats>()?;
    m.add_class::<stats::MemberStats>()?;
    m.add_class::<stats::GroupPartitionStats>()?;
    m.add_class::<types::StateEntry>()?;
    m.add_class::<snapshot::Snapshot>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
