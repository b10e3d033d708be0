#!/usr/bin/env bash
# `pinned-venv.sh NAME REQUIREMENT...`: makes sure the virtual environment
# $JETSTATION_CACHE/NAME holds exactly these pinned requirements (it is
# built again when the list changes), kept between runs; prints its path.
set -euo pipefail
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
VENV="$CACHE/$1"
shift
REQS="$*"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.reqs" 2>/dev/null)" != "$REQS" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check $REQS >&2
  echo "$REQS" > "$VENV/.reqs"
fi
echo "$VENV"
