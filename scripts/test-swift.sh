#!/usr/bin/env bash
# Builds the Rust library on the host, generates the Swift bindings (uniffi,
# library mode), then runs `swift test` and the Swift quickstart inside the
# cached Debian trixie root (scripts/setup-swift.sh) against nats-servers on
# the host's loopback. Mounts are removed whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

scripts/build-swift.sh
pkg=bindings/swift

# Servers on the host's loopback (the root shares the network).
servers=()
dirs=()
start() { # name, extra config, binary
  local dir port
  dir=$(mktemp -d); dirs+=("$dir")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n%s\n' "$port" "$dir/store" "$2" > "$dir/server.conf"
  "${3:-${NATS_SERVER_BIN:-$CACHE/bin/nats-server}}" -c "$dir/server.conf" -l "$dir/server.log" &
  servers+=($!)
  for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  export "$1=nats://127.0.0.1:$port"
}
source scripts/swift-root.sh
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Waited for before their files go: a server still writing would make the removal fail.
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  for d in "${dirs[@]}"; do rm -rf "$d"; done
  swift_root_unmount
}
trap cleanup EXIT
start NATS_URL ""
start NATS_AUTH_URL "authorization { users: [ { user: app, password: s3cret } ] }"
start NATS_SMALL_URL "max_payload: 2048"
start NATS_OLD_URL "" "${NATS_SERVER_OLD_BIN:-/usr/sbin/nats-server}"
start NATS_DISPOSABLE_URL ""  # the tests kill it (the root shares the host's processes)
NATS_DISPOSABLE_PID=${servers[-1]}
NATS_CLOSED_URL="nats://127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

swift_root_mount
run_inside() {
  swift_root_run env LD_LIBRARY_PATH="$SWIFT_LIBDIR" \
    NATS_URL="$NATS_URL" NATS_AUTH_URL="$NATS_AUTH_URL" NATS_SMALL_URL="$NATS_SMALL_URL" \
    NATS_OLD_URL="$NATS_OLD_URL" NATS_CLOSED_URL="$NATS_CLOSED_URL" \
    NATS_DISPOSABLE_URL="$NATS_DISPOSABLE_URL" NATS_DISPOSABLE_PID="$NATS_DISPOSABLE_PID" bash -c "$1"
}
# XCTest on Linux has no per-test time limit: the whole run gets 10 minutes,
# and its "Test Case '…' started" lines name the test that hung.
run_inside "set -o pipefail; cd /repo/$pkg && swift build --build-tests $SWIFT_LINK 2>&1 | tail -5 && timeout 600 swift test --skip-build --disable-swift-testing $SWIFT_LINK"
run_inside "cd /repo/examples/swift/quickstart && swift run $SWIFT_LINK Quickstart" | tee /tmp/jetstation-swift-quickstart.log
grep -q "quickstart OK" /tmp/jetstation-swift-quickstart.log
echo "swift quickstart: 1 passed, 0 failed"
