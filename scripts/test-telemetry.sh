#!/usr/bin/env bash
# OpenTelemetry: the core's `otel` feature (Rust), and one trace followed from
# a Python producer through a Rust service to a Node consumer, against a real
# nats-server. The Python and Node parts use their languages' SDKs with
# in-memory exporters; their own telemetry tests run in test-python and
# test-node.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$CACHE/bin/nats-server}"

PYTHON=$(scripts/build-python.sh)
"$(dirname "$PYTHON")/pip" install -q --disable-pip-version-check opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2
scripts/build-node.sh

JETSTATION_PYTHON="$PYTHON" JETSTATION_NODE_DIR="$PWD/bindings/node" \
  cargo nextest run -p jetstation-telemetry-tests --no-fail-fast
