#!/usr/bin/env bash
# Runs a test command, keeps its output, and adds its counts to a running
# total in $JETSTATION_TEST_TOTALS (one "passed failed" line per runner).
# With --print, prints the grand total as the last line: "N passed, N failed".
set -uo pipefail
totals="${JETSTATION_TEST_TOTALS:?set JETSTATION_TEST_TOTALS}"
if [ "${1:-}" = "--print" ]; then
  awk '{p+=$1; f+=$2} END {printf "all languages: %d passed, %d failed\n", p, f}' "$totals"
  exit 0
fi
log=$(mktemp)
started=$(date +%s)
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# One line per runner with its wall time, so a slow suite is easy to spot.
echo "test-summary: $* took $(( $(date +%s) - started )) s (exit $status)" >&2
# cargo: "test result: ok. 7 passed; 0 failed; ..."
# cargo-nextest: "Summary [  63.5s] 52 tests run: 50 passed, 2 failed, 0 skipped"
# pytest: "1 failed, 10 passed in 11.20s", and our own runners'
# "conformance: 95 passed, 0 failed in 165.8s" (at the start of a line:
# nextest shows a failed test's own "test result: ... finished in 19.39s")
# node --test (TAP): "# pass 8" and "# fail 0"
# XCTest: one "Test Case '...' passed (…)" line per test
awk '/^test result:/ || /^([a-z-]+: )?(=+ )?[0-9]+ (passed|failed).* in [0-9.]+s/ || /^ *Summary \[/ {
       for (i=1;i<NF;i++) {if ($(i+1) ~ /^passed/) p+=$i; if ($(i+1) ~ /^failed/) f+=$i}}
     /^# pass [0-9]+$/ {p+=$3}
     /^# fail [0-9]+$/ {f+=$3}
     /^Test Case .* passed \(/ {p+=1}
     /^Test Case .* failed \(/ {f+=1}
     /^swift quickstart: 1 passed/ {p+=1}
     END {print p+0, f+0}' "$log" >> "$totals"
# A runner that failed without reporting a failed test (a build error, a
# crash) still counts as one failure, so the total never reads "0 failed".
if [ "$status" != 0 ] && [ "$(tail -1 "$totals" | cut -d' ' -f2)" = 0 ]; then
  echo "runner failed before reporting: $*" >&2
  echo "0 1" >> "$totals"
fi
rm -f "$log"
exit "$status"
