#!/usr/bin/env bash
# The chaos suite: a 3-node cluster, an R3 station, a producer and two group
# members as processes, and faults under load (SIGKILL each node in turn,
# SIGSTOP a node for longer than ack_wait, cut client connections, SIGKILL a
# member, SIGSTOP a member for twice the handover timeout, cut one member off
# the network as long). Run once with Rust workers and once with Python workers; then
# exactly-once processing under member and server kills, on the cluster
# (Rust workers) and on one server (Python workers). Each run ends with
# tests/chaos/check.py's verdict on the histories. The short form
# (about a minute per language) runs in `make test`; CHAOS_LONG=1 runs the
# long form (four rounds of faults). Histories stay in $CHAOS_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
out="${CHAOS_OUT:-$CACHE/chaos}"
# Release builds: the workers must keep up with the offered rate on a 2-core
# machine that also runs three nats-servers; debug-built exactly-once members
# handled about 500 messages/s there, below the 1,000/s these runs offer.
scripts/release-binaries.sh
bin="$CARGO_TARGET_DIR/release/chaos"
python=$(PYTHON_PROFILE=release scripts/build-python.sh)
# One run may take at most this long (the long form: 10 minutes).
limit=240
[ "${CHAOS_LONG:-0}" = 1 ] && limit=600
status=0
# The checker's own rules, on hand-made histories, before it judges.
if timeout 120 python3 tests/chaos/test_check.py; then :; else
  echo "test result: FAILED. 0 passed; 1 failed (chaos checker)"
  status=1
fi
# Each run: the workers' language, then the mode.
runs=("rust" "python" "rust --exactly-once" "python --exactly-once --single")
[ -n "${CHAOS_LANGS:-}" ] && read -r -a runs <<< "$CHAOS_LANGS"
for run in "${runs[@]}"; do
  read -r lang mode <<< "$run"
  name="$lang${mode:+ $mode}"
  dir="$out/$lang$(echo "$mode" | tr -d ' ')"
  # shellcheck disable=SC2086 # the mode is flags
  if CHAOS_PYTHON="$python" timeout "$limit" "$bin" run --lang "$lang" $mode --out "$dir"; then
    echo "test result: ok. 1 passed; 0 failed (chaos $name)"
  else
    echo "test result: FAILED. 0 passed; 1 failed (chaos $name; histories in $dir)"
    status=1
  fi
done
exit $status
