#!/usr/bin/env bash
# Consume throughput (with and without exactly-once processing), end-to-end
# latency and producer peak memory, each side by side with raw async-nats,
# and the snapshot bootstrap of 100,000 keys, against one nats-server in one
# run (release builds). Writes the tables to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
COUNT="${BENCH_COUNT:-100000}"
cargo build -q --release -p jetstation-bench --bin consume --bin latency --bin produce_memory --bin snapshot
bin="${CARGO_TARGET_DIR:-target}/release"

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' "$port" "$dir/store" > "$dir/server.conf"
"${NATS_SERVER_BIN:-$CACHE/bin/nats-server}" -c "$dir/server.conf" -l "$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
url="nats://127.0.0.1:$port"

# Twice the messages for the readers: a read of 100,000 took about 0.6 s,
# short enough for the machine's moments to move a round by 10 %.
"$bin/consume" "$url" "$((COUNT * 2))" 256 "${BENCH_ROUNDS:-5}" > "$dir/consume.jsonl"
for round in 1 2 3; do "$bin/latency" "$url" 10 >> "$dir/latency.jsonl"; done
"$bin/produce_memory" "$url" 1000000 256 > "$dir/memory.jsonl"
"$bin/produce_memory" "$url" 10000000 256 >> "$dir/memory.jsonl"
"$bin/snapshot" "$url" 100000 > "$dir/snapshot.jsonl"
python3 scripts/bench-consume-table.py "$dir" "make bench-consume"
