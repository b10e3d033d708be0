#!/usr/bin/env bash
# The chaos suite: a 3-node cluster, an R3 station, a producer and two group
# members as processes, and faults under load (SIGKILL each node in turn,
# SIGSTOP a node for longer than ack_wait, cut client connections, SIGKILL a
# member). Run once with Rust workers and once with Python workers; each run
# ends with tests/chaos/check.py's verdict on the histories. The short form
# (about a minute per language) runs in `make test`; CHAOS_LONG=1 runs the
# long form (four rounds of faults). Histories stay in $CHAOS_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
out="${CHAOS_OUT:-$CACHE/chaos}"
cargo build -q -p jetstation-chaos
bin="$CARGO_TARGET_DIR/debug/chaos"
python=$(scripts/build-python.sh)
# One run may take at most this long (the long form: 10 minutes).
limit=240
[ "${CHAOS_LONG:-0}" = 1 ] && limit=600
status=0
for lang in ${CHAOS_LANGS:-rust python}; do
  if CHAOS_PYTHON="$python" timeout "$limit" "$bin" run --lang "$lang" --out "$out/$lang"; then
    echo "test result: ok. 1 passed; 0 failed (chaos $lang)"
  else
    echo "test result: FAILED. 0 passed; 1 failed (chaos $lang; histories in $out/$lang)"
    status=1
  fi
done
exit $status
