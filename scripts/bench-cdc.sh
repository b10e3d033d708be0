#!/usr/bin/env bash
# CDC throughput (capture into a station, sink into a table), each beside
# its ceiling (a producer sending the same messages, a group acknowledging
# them without a database), against one nats-server and one PostgreSQL in
# one run (release build). Writes the table to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
ROWS="${BENCH_ROWS:-100000}"
cargo build -q --release -p jetstation-bench --bin cdc
bin="${CARGO_TARGET_DIR:-target}/release"

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' "$port" "$dir/store" > "$dir/server.conf"
"${NATS_SERVER_BIN:-$CACHE/bin/nats-server}" -c "$dir/server.conf" -l "$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

for round in 1 2; do "$bin/cdc" "nats://127.0.0.1:$port/" "$ROWS" >> "$dir/cdc.jsonl"; done
python3 - "$dir/cdc.jsonl" "make bench-cdc" <<'PY'
import json, sys
sys.path.insert(0, "scripts")
from benchmarks_md import measured, nats_server, rustc, write_section

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in runs:
    if r["path"] not in best or r["rate"] > best[r["path"]]["rate"]:
        best[r["path"]] = r
pg = "PostgreSQL 15 (Debian)"
ceiling = {"capture": "direct", "sink": "group"}
rows = []
for path in ["postgres", "capture", "direct", "sink", "group"]:
    r = best[path]
    ratio = f"{r['rate'] / best[ceiling[path]]['rate']:.2f}× {ceiling[path]}" if path in ceiling else ""
    target, verdict = ("≥ 20,000 rows/s", "met" if r["rate"] >= 20000 else "**missed**") if path in ceiling else ("", "")
    rows.append(f"| {path} | {r['what']} | {r['rows']:,} | {r['seconds']:.2f} | {r['rate']:,.0f} | {ratio} | {target} | {verdict} |")
write_section("CDC throughput", "\n".join([
    f"{measured(rustc(), nats_server(), pg)} A table `accounts (id int primary key, balance int, note text)`; "
    f"{best['capture']['rows']:,} rows inserted in transactions of 1,000 rows; one station of 4 partitions; best of 2 rounds. "
    "`capture` runs from the first commit until the broker confirmed every change in the station; "
    "`sink` from the sink's start until every row is committed in the target table (batches of up to 512 changes per transaction).",
    f"Reproduce with `{sys.argv[2]}`.", "",
    "| path | what | rows | seconds | rows/s | ratio | target | |", "|---|---|---|---|---|---|---|---|", *rows]))
PY
