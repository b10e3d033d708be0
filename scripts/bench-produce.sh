#!/usr/bin/env bash
# Produce throughput, side by side against one nats-server in one run:
# the Rust core and the Python and Node packages (release builds), same settings
# (default producer options, 1 partition, file storage, 100 keys, acked).
# Writes the table to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
COUNT="${BENCH_COUNT:-100000}"
SIZE="${BENCH_SIZE:-256}"

cargo build -q --release -p jetstation-bench --bin produce --bin raw_produce
# Official clients, for comparison.
BASE_VENV="$CACHE/bench-venv"
[ -x "$BASE_VENV/bin/python" ] || { python3 -m venv "$BASE_VENV" && "$BASE_VENV/bin/pip" install -q nats-py==2.16.0; }
(cd tests/bench/baselines && npm install --no-audit --no-fund --loglevel=error)
MATURIN_PROFILE="--release" scripts/test-python.sh --co -q > /dev/null  # builds the release wheel into the venv
(cd bindings/node && npm ci --no-audit --no-fund --loglevel=error && npm run -s build)

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' "$port" "$dir/store" > "$dir/server.conf"
"${NATS_SERVER_BIN:-$CACHE/bin/nats-server}" -c "$dir/server.conf" -l "$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
url="nats://127.0.0.1:$port"

results="$dir/results.jsonl"
for round in 1 2; do
  "${CARGO_TARGET_DIR:-target}/release/raw_produce" "$url" "RAW" "$COUNT" "$SIZE" >> "$results"
  "${CARGO_TARGET_DIR:-target}/release/raw_produce" "$url" "RAWH" "$COUNT" "$SIZE" headers >> "$results"
  "${CARGO_TARGET_DIR:-target}/release/produce" "$url" "bench-rust" "$COUNT" "$SIZE" >> "$results"
  "$BASE_VENV/bin/python" tests/bench/baselines/nats_py_produce.py "$url" "NATSPY" "$COUNT" "$SIZE" >> "$results"
  node tests/bench/baselines/nats_js_produce.js "$url" "NATSJS" "$COUNT" "$SIZE" >> "$results"
  "$CACHE/python-test-venv/bin/python" bindings/python/bench/produce.py "$url" "bench-py" "$COUNT" "$SIZE" >> "$results"
  node bindings/node/bench/produce.js "$url" "bench-node" "$COUNT" "$SIZE" >> "$results"
done
# The debug addon is what the tests use; put it back.
(cd bindings/node && npm run -s build:debug)
python3 scripts/bench-table.py "Produce throughput" "$results" "make bench-produce"
