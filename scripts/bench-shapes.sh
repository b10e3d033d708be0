#!/usr/bin/env bash
# Produce and consume on one node (R1) beside a 3-node cluster (R3), in the
# shapes production runs: 1, 4 and 64 partitions, four producers sharing a
# station, exactly-once groups; raw async-nats on the same servers as the
# reference. The servers are started by the program; two runs, best of each.
# Writes the table to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${BENCH_COUNT:-100000}"
cargo build -q --release -p jetstation-bench --bin shapes
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for round in 1 2; do
  "${CARGO_TARGET_DIR:-target}/release/shapes" "$COUNT" >> "$dir/shapes.jsonl"
done
python3 scripts/bench-shapes-table.py "$dir/shapes.jsonl" "$COUNT" "make bench-shapes"
