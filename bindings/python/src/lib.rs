//! `jetstation._native`: the Python glue over the jetstation core. Each file
//! mirrors one core concept; conversion and error mapping only.

mod client;
mod consumer;
mod error;
mod logging;
mod producer;
mod runtime;
mod types;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(client::connect, m)?)?;
    m.add_function(wrap_pyfunction!(logging::init_logging, m)?)?;
    m.add_function(wrap_pyfunction!(logging::shutdown, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::SendHandle>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::Delivery>()?;
    m.add_class::<types::Receipt>()?;
    m.add_class::<types::Station>()?;
    m.add_class::<types::DeadLetter>()?;
    m.add_class::<types::SchemaVersion>()?;
    m.add_class::<types::SchemaInfo>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
