//! Node.js glue over the jetstation core: conversion and error mapping only.

// napi exports must be `pub` (they are the JavaScript API), and napi classes
// hold core handles that have no useful Debug form.
#![allow(unreachable_pub, missing_debug_implementations)]
// In a test build napi registers no exports, so they look unused.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod consumer;
mod error;
mod producer;
mod types;

use napi_derive::napi;

/// Writes core log events at or above `filter` (e.g. "info",
/// "jetstation=debug") to standard error. Off unless called; the package
/// calls it when DEBUG names jetstation.
#[napi]
pub fn enable_logging(filter: String) -> napi::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| error::invalid(format!("bad log filter: {e}")))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}
