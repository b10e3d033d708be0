#!/usr/bin/env bash
# Builds the Rust library on the host, generates the Swift bindings (uniffi,
# library mode), then runs `swift test` and the Swift quickstart inside the
# cached Debian trixie root (scripts/setup-swift.sh) against nats-servers on
# the host's loopback. Mounts are removed whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
ROOT="${SWIFT_ROOT:-$CACHE/trixie}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

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
inside="$ROOT/repo"
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for d in "${dirs[@]}"; do rm -rf "$d"; done
  as_root umount "$inside" 2>/dev/null || true
  as_root umount "$ROOT/dev" 2>/dev/null || true
  as_root umount "$ROOT/proc" 2>/dev/null || true
}
trap cleanup EXIT
start NATS_URL ""
start NATS_AUTH_URL "authorization { users: [ { user: app, password: s3cret } ] }"
start NATS_SMALL_URL "max_payload: 2048"
start NATS_OLD_URL "" "${NATS_SERVER_OLD_BIN:-/usr/sbin/nats-server}"
start NATS_DISPOSABLE_URL ""  # the tests kill it (the root shares the host's processes)
NATS_DISPOSABLE_PID=${servers[-1]}
NATS_CLOSED_URL="nats://127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

mountpoint -q "$ROOT/proc" || as_root mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || as_root mount --bind /dev "$ROOT/dev"
mkdir -p "$inside"
as_root mount --bind "$REPO" "$inside"

libdir=/repo/$pkg/.build-lib
link=(-Xlinker "-L$libdir" -Xlinker -rpath -Xlinker "$libdir")
run_inside() {
  as_root chroot "$ROOT" env HOME=/root PATH=/usr/bin:/bin LD_LIBRARY_PATH="$libdir" \
    NATS_URL="$NATS_URL" NATS_AUTH_URL="$NATS_AUTH_URL" NATS_SMALL_URL="$NATS_SMALL_URL" \
    NATS_OLD_URL="$NATS_OLD_URL" NATS_CLOSED_URL="$NATS_CLOSED_URL" \
    NATS_DISPOSABLE_URL="$NATS_DISPOSABLE_URL" NATS_DISPOSABLE_PID="$NATS_DISPOSABLE_PID" bash -c "$1"
}
run_inside "cd /repo/$pkg && swift build --build-tests ${link[*]} 2>&1 | tail -5 && swift test --skip-build --disable-swift-testing ${link[*]}"
run_inside "cd /repo/examples/swift/quickstart && swift run ${link[*]} Quickstart" | tee /tmp/jetstation-swift-quickstart.log
grep -q "quickstart OK" /tmp/jetstation-swift-quickstart.log
echo "swift quickstart: 1 passed, 0 failed"
