#!/usr/bin/env bash
# The release build of every Rust binary and library `make test` runs or
# ships, in one cargo invocation: the `jetstation` tool, the gateway, the
# Swift library and its binding generator (`make dist`), the chaos runner
# (`make test-chaos`) and the demo's Rust service (`make demo`); the other
# examples run in debug builds as tests (`make quickstart` builds its own).
# Cargo unifies the
# dependencies' features over the packages one invocation selects, so
# separate invocations compiled the core and about 75 of its dependencies
# once more each; with one package set, whichever script runs first compiles
# and the others find everything fresh.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cargo build -q --release -p jetstation-cli -p jetstation-gateway -p jetstation-ffi \
  -p jetstation-uniffi-bindgen -p jetstation-chaos -p jetstation-examples \
  --lib --bin jetstation --bin jetstation-gateway --bin uniffi-bindgen --bin chaos --bin scheduling
