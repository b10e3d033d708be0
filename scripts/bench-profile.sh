#!/usr/bin/env bash
# Where the CPU goes while messages of 256 B are produced to one nats-server:
# raw async-nats pipelined publishes, the same messages as serial atomic
# batches and as one fast-ingest batch, and the Rust core's producer. Each run
# is recorded system-wide by perf (call graphs by frame pointer, which Go
# keeps); nats-server's functions are named from its own function table.
# Then where a reader's CPU goes while it consumes the same stored messages:
# a raw pull consumer beside a consumer group. Writes the tables to
# BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
COUNT="${BENCH_COUNT:-200000}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v perf >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
cargo build -q --release -p jetstation-bench --bin produce --bin raw_produce --bin consume_read
bin="${CARGO_TARGET_DIR:-target}/release"

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' "$port" "$dir/store" > "$dir/server.conf"
server_bin="${NATS_SERVER_BIN:-$CACHE/bin/nats-server}"
"$server_bin" -c "$dir/server.conf" -l "$dir/server.log" &
server=$!
# KEEP_PROFILE=1 keeps the recordings for `perf report -i <dir>/<run>.data`.
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; [ -n "${KEEP_PROFILE:-}" ] && echo "recordings kept in $dir" || rm -rf "$dir"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
url="nats://127.0.0.1:$port"

# name, then the command producing COUNT messages: perf records every CPU
# while the command runs; its JSON line goes to name.json, its pid to name.pid.
profile() {
  local name=$1; shift
  as_root perf record -q -a -g -F 999 -o "$dir/$name.data" -- \
    bash -c 'echo $$ > "$0"; exec "$@"' "$dir/$name.pid" "$@" > "$dir/$name.json" 2>/dev/null
  as_root perf script -i "$dir/$name.data" -F pid,ip,sym,dso 2>/dev/null > "$dir/$name.txt"
}

profile raw "$bin/raw_produce" "$url" RAW "$COUNT" 256
profile batches "$bin/raw_produce" "$url" RAWB "$COUNT" 256 batches
profile fast "$bin/raw_produce" "$url" RAWF "$COUNT" 256 fast
profile core "$bin/produce" "$url" bench "$COUNT" 256
echo "$server" > "$dir/server.pid"
python3 scripts/bench-profile-table.py "$dir" "$server_bin" 999 "make bench-profile"

# Consuming: the same stored messages read by a raw pull consumer and by a
# consumer group, each reader's process recorded on its own with DWARF call
# graphs (the Rust code has no frame pointers), and nats-server's CPU over
# each reader's run read from /proc.
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
"$bin/consume_read" "$url" fill "$COUNT" 256
for reader in raw group; do
  before=$(server_ticks)
  as_root perf record -q --call-graph dwarf,16384 -F 499 -o "$dir/read-$reader.data" -- \
    "$bin/consume_read" "$url" "$reader" "$COUNT" > "$dir/read-$reader.json" 2>/dev/null
  echo $(( $(server_ticks) - before )) > "$dir/read-$reader.server"
  as_root perf script -i "$dir/read-$reader.data" -F tid,ip,sym 2>/dev/null > "$dir/read-$reader.txt"
done
python3 scripts/bench-profile-consume-table.py "$dir" 499 "make bench-profile"
