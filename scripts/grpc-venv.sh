#!/usr/bin/env bash
# Makes sure the gRPC client environment (grpcio, its code generator, pytest)
# used by the gateway's end-to-end test and the conformance runner is
# installed in $JETSTATION_CACHE/grpc-venv; prints that directory.
set -euo pipefail
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
VENV="$CACHE/grpc-venv"
REQS="grpcio==1.85.3 grpcio-tools==1.85.1 googleapis-common-protos pytest==9.2.0 pytest-timeout==2.4.0"
if [ ! -x "$VENV/bin/pytest" ] || [ "$(cat "$VENV/.reqs" 2>/dev/null)" != "$REQS" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check $REQS >&2
  echo "$REQS" > "$VENV/.reqs"
fi
echo "$VENV"
