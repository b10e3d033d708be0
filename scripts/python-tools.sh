#!/usr/bin/env bash
# Makes sure the Python build tools (maturin, pytest, mypy) are installed in
# $JETSTATION_CACHE/python-tools, kept between runs; prints that directory.
set -euo pipefail
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
TOOLS="$CACHE/python-tools"
REQS="maturin==1.16.0 pytest==9.2.0 pytest-asyncio==1.5.0 pytest-timeout==2.4.0 mypy==2.4.1"
if [ ! -x "$TOOLS/bin/maturin" ] || [ "$(cat "$TOOLS/.reqs" 2>/dev/null)" != "$REQS" ]; then
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check $REQS >&2
  echo "$REQS" > "$TOOLS/.reqs"
fi
echo "$TOOLS"
