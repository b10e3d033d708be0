#!/usr/bin/env bash
# Recovery times after each fault kind of the chaos suite, written to
# BENCHMARKS.md (the runs are the suite's own, checker included).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CHAOS_OUT="$CACHE/chaos-bench"
rm -rf "$CHAOS_OUT"
scripts/test-chaos.sh
scripts/chaos-table.py "$CHAOS_OUT" "make bench-chaos"
