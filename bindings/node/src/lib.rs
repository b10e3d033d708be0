//! Node.js glue over the jetstation core: conversion and error mapping only.

// napi exports must be `pub` (they are the JavaScript API), and napi classes
// hold core handles that have no useful Debug form.
#![allow(unreachable_pub, missing_debug_implementations)]
// In a test build napi registers no exports, so they look unused.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod consumer;
mod error;
mod external;
mod handle;
mod logging;
mod producer;
mod stats;
mod types;

// The addon's own allocations go to mimalloc: with glibc's malloc, malloc
// and free took 21 % of the JavaScript thread's samples while it enqueued
// messages, 6 % with mimalloc (docs/design-notes.md, "Node binding").
// Built without transparent huge pages for its own memory (`no_thp`): a
// library in someone else's process does not ask for them, and a fresh
// huge page costs 2 MiB of zeroing in one page fault.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
