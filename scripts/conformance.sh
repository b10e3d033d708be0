#!/usr/bin/env bash
# Builds every language's conformance runner, then lets tests/conformance/run.py
# run every scenario in every language and the interop matrix against real
# nats-servers and the gateway. Prints the scenario x language matrix; fails
# on any miss. Arguments go to run.py (e.g. --only round_trip).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$CACHE/bin/nats-server}"
export NATS_SERVER_OLD_BIN="${NATS_SERVER_OLD_BIN:-/usr/sbin/nats-server}"
step() { echo "conformance: $*" >&2; }

# Rust: the runner and the gateway.
step "building the Rust runner and the gateway"
cargo build -q -p jetstation-conformance -p jetstation-gateway
export GATEWAY_BIN="$CARGO_TARGET_DIR/debug/jetstation-gateway"

# Python: the wheel in its own environment.
step "building the Python wheel"
PYTHON=$(scripts/build-python.sh)

# Node: the addon.
step "building the Node addon"
scripts/build-node.sh

# The gateway's client: grpcio with stubs generated from proto/.
step "preparing the gRPC client"
GRPC=$(scripts/grpc-venv.sh)
stubs=$(mktemp -d)
"$GRPC/bin/python" -m grpc_tools.protoc -Iproto --python_out="$stubs" --grpc_python_out="$stubs" \
  proto/jetstation/v1/jetstation.proto

langs=(
  --lang "rust=$CARGO_TARGET_DIR/debug/conformance-runner"
  --lang "python=$PYTHON tests/conformance/runners/python_runner.py"
  --lang "node=node tests/conformance/runners/node_runner.mjs"
)

# Swift: the runner is built and run in the Debian trixie root.
source scripts/swift-root.sh
cleanup() {
  rm -rf "$stubs"
  swift_root_unmount
}
trap cleanup EXIT
step "building the Swift runner"
scripts/build-swift.sh
swift_root_mount
swift_root_run bash -c "set -o pipefail; cd /repo/tests/conformance/swift-runner && swift build $SWIFT_LINK 2>&1 | tail -3"
langs+=(--lang "swift=$SWIFT_EXEC /repo/tests/conformance/swift-runner/.build/debug/ConformanceRunner")

langs+=(--lang "gateway=env PYTHONPATH=$stubs $GRPC/bin/python tests/conformance/runners/gateway_runner.py")

python3 tests/conformance/run.py "${langs[@]}" "$@"
