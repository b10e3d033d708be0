#!/usr/bin/env bash
# `make demo`: builds the four services of the employee-sync story (Python,
# Node, Rust, Swift), then examples/demo/run.py runs them against a
# nats-server it starts, and prints the account.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$CACHE/bin/nats-server}"
step() { echo "demo: $*" >&2; }

step "building the Rust service"
scripts/release-binaries.sh
step "building the Python package"
PYTHON=$(scripts/build-python.sh)
step "building the Node addon"
scripts/build-node.sh >/dev/null 2>&1
step "building the Swift service"
scripts/build-swift.sh >/dev/null
source scripts/swift-root.sh
trap swift_root_unmount EXIT
swift_root_mount
swift_root_run bash -c "set -o pipefail; cd /repo/examples/swift/reporting && swift build $SWIFT_LINK 2>&1 | tail -1" >&2

export HR_CMD="$PYTHON examples/demo/hr_service.py"
export PAYROLL_CMD="node examples/demo/payroll.mjs"
export SCHEDULING_CMD="$CARGO_TARGET_DIR/release/scheduling"
export REPORTING_CMD="$SWIFT_EXEC /repo/examples/swift/reporting/.build/debug/Reporting"
python3 examples/demo/run.py
