#!/usr/bin/env bash
# Produce throughput, side by side against one nats-server in one run, at
# 256 B and 4 KiB: raw async-nats, the Rust core, the Python, Node and Swift
# packages (release builds) and the official nats-py and nats.js clients.
# Same settings for all (default producer options, 1 partition, file
# storage, 100 keys, acked). Writes one table per size to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
COUNT="${BENCH_COUNT:-100000}"
SIZES="${BENCH_SIZES:-256 4096}"
# Rounds of every client in turn; each client's best round is its figure.
ROUNDS="${BENCH_ROUNDS:-5}"

cargo build -q --release -p jetstation-bench --bin produce --bin raw_produce --bin clear
# Official clients, for comparison.
BASE_VENV="$CACHE/bench-venv"
[ -x "$BASE_VENV/bin/python" ] || { python3 -m venv "$BASE_VENV" && "$BASE_VENV/bin/pip" install -q nats-py==2.16.0; }
(cd tests/bench/baselines && npm install --no-audit --no-fund --loglevel=error)
MATURIN_PROFILE="--release" scripts/test-python.sh --co -q > /dev/null  # builds the release wheel into the venv
scripts/build-node.sh  # the addon and facade, unless the addon is newer than its sources
# Swift: the package built in release mode in the Debian trixie root, run
# against the release build of the Rust library it wraps.
scripts/build-swift.sh >/dev/null
scripts/release-binaries.sh
mkdir -p bindings/swift/.build-lib-release
cp "${CARGO_TARGET_DIR:-target}/release/libjetstation_ffi.so" bindings/swift/.build-lib-release/
source scripts/swift-root.sh
trap swift_root_unmount EXIT
swift_root_mount
swift_root_run bash -c "set -o pipefail; cd /repo/tests/bench/swift-produce && swift build -c release $SWIFT_LINK 2>&1 | tail -1"
swift_produce() {
  swift_root_run env LD_LIBRARY_PATH=/repo/bindings/swift/.build-lib-release \
    /repo/tests/bench/swift-produce/.build/release/SwiftProduce "$@"
}

# Runs one client, its JSON lines appended to $results, then deletes every
# stream, so each run starts on an empty store (see tests/bench/src/bin/clear.rs).
measure() { "$@" | tag >> "$results"; "${CARGO_TARGET_DIR:-target}/release/clear" "$url"; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' "$port" "$dir/store" > "$dir/server.conf"
"${NATS_SERVER_BIN:-$CACHE/bin/nats-server}" -c "$dir/server.conf" -l "$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"; swift_root_unmount' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
url="nats://127.0.0.1:$port"

# Every client, in the order of the first round. Each round starts one
# client further on, so that no client always runs right after the same one.
clients=(
  "${CARGO_TARGET_DIR:-target}/release/raw_produce \$url RAW \$COUNT \$size"
  "${CARGO_TARGET_DIR:-target}/release/raw_produce \$url RAWH \$COUNT \$size headers"
  "${CARGO_TARGET_DIR:-target}/release/raw_produce \$url RAWB \$COUNT \$size batches"
  "${CARGO_TARGET_DIR:-target}/release/raw_produce \$url RAWF \$COUNT \$size fast"
  "${CARGO_TARGET_DIR:-target}/release/produce \$url bench-rust \$COUNT \$size"
  "$BASE_VENV/bin/python tests/bench/baselines/nats_py_produce.py \$url NATSPY \$COUNT \$size"
  "node tests/bench/baselines/nats_js_produce.js \$url NATSJS \$COUNT \$size"
  "$CACHE/python-test-venv/bin/python bindings/python/bench/produce.py \$url bench-py \$COUNT \$size"
  "node bindings/node/bench/produce.js \$url bench-node \$COUNT \$size"
  "swift_produce \$url bench-swift \$COUNT \$size"
)
# The machine's speed drifts by tens of percent over seconds, so every other
# client's run follows a run of raw pipelined publishes (the first client),
# whose rate the client's lines carry as `raw_before`: the ratio of two runs
# a moment apart (see scripts/bench-table.py).
before=""
raw_now() {
  "${CARGO_TARGET_DIR:-target}/release/raw_produce" "$url" RAWP "$COUNT" "$size" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["rate"])'
  "${CARGO_TARGET_DIR:-target}/release/clear" "$url"
}
tag() {
  python3 -c 'import json, sys
for line in sys.stdin:
    if line.strip():
        run = json.loads(line)
        if sys.argv[1]:
            run["raw_before"] = float(sys.argv[1])
        print(json.dumps(run))' "$before"
}
for size in $SIZES; do
  results="$dir/results-$size.jsonl"
  for round in $(seq "$ROUNDS"); do
    for turn in "${!clients[@]}"; do
      index=$(( (round - 1 + turn) % ${#clients[@]} ))
      before=""
      [ "$index" -eq 0 ] || before=$(raw_now)
      eval "measure ${clients[$index]}"
    done
  done
done
# The runs themselves, for a closer look than the tables give.
mkdir -p "$CACHE/bench"
cp "$dir"/results-*.jsonl "$CACHE/bench/"
for size in $SIZES; do
  label="$size B"
  [ "$size" = 4096 ] && label="4 KiB"
  python3 scripts/bench-table.py "Produce throughput ($label)" "$dir/results-$size.jsonl" "make bench-produce"
done
