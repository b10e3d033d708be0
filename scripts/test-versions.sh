#!/usr/bin/env bash
# The server-version matrix: for each nats-server release, either the core
# suite and the chaos short form (Rust workers) against it, or, for releases
# older than jetstation's minimum (2.12), the check that connecting fails
# with `server_too_old` naming both versions. Prints the matrix at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
versions=$(scripts/setup-nats-versions.sh)
versions+=$'\n'"2.15.0 $CACHE/bin/nats-server"
cargo build -q -p jetstation-chaos
cargo nextest run -p jetstation --no-run 2>/dev/null
matrix=()
status=0
while read -r v bin; do
  [ -n "$v" ] || continue
  minor=$(echo "$v" | cut -d. -f2)
  if [ "$minor" -lt 12 ]; then
    echo "== nats-server $v: older than the minimum, expecting server_too_old"
    if NATS_SERVER_OLD_BIN="$bin" cargo nextest run -p jetstation --test stations server_older_than 2>&1 | tail -2; then
      matrix+=("| $v | refused at connect: \`server_too_old\` (tested) | n/a |")
    else
      matrix+=("| $v | **the server_too_old check failed** | n/a |"); status=1
    fi
    continue
  fi
  echo "== nats-server $v: core suite and chaos short form"
  core="passed"
  log="$CACHE/chaos-versions/core-$v.log"
  mkdir -p "$CACHE/chaos-versions"
  if ! NATS_SERVER_BIN="$bin" cargo nextest run -p jetstation --no-fail-fast > "$log" 2>&1; then
    core="**failed** (see $log)"; status=1
  fi
  grep -E 'Summary \[|FAIL|TIMEOUT' "$log" || true
  chaos="passed"
  if ! NATS_SERVER_BIN="$bin" timeout 240 "$CARGO_TARGET_DIR/debug/chaos" run --lang rust \
      --out "$CACHE/chaos-versions/$v" > "$CACHE/chaos-versions/chaos-$v.log" 2>&1; then
    chaos="**failed** (see $CACHE/chaos-versions/chaos-$v.log)"; status=1
  fi
  tail -4 "$CACHE/chaos-versions/chaos-$v.log"
  matrix+=("| $v | core suite $core | chaos short form $chaos |")
done <<< "$versions"
echo
echo "| nats-server | core suite | chaos (Rust workers) |"
echo "|---|---|---|"
printf '%s\n' "${matrix[@]}"
exit $status
