//! Node.js glue over the jetstation core: conversion and error mapping only.

// napi exports must be `pub` (they are the JavaScript API), and napi classes
// hold core handles that have no useful Debug form.
#![allow(unreachable_pub, missing_debug_implementations)]
// In a test build napi registers no exports, so they look unused.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod consumer;
mod error;
mod logging;
mod producer;
mod stats;
mod types;
