#!/usr/bin/env bash
# The dashboard (`jetstation ui`) in a real browser: Debian's Chromium driven
# by Playwright, against live nats-servers. The tests set up their stations
# and consumers with the Python package, built here from the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

cargo build -q -p jetstation-cli
TOOLS=$(scripts/python-tools.sh)
wheels="$CACHE/ui-wheels"
rm -rf "$wheels"
"$TOOLS/bin/maturin" build -q -m bindings/python/Cargo.toml ${MATURIN_PROFILE:---profile dev} --out "$wheels"
venv=$(scripts/pinned-venv.sh ui-test-venv playwright==1.65.2 pytest==9.2.0 pytest-timeout==2.4.0)
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/jetstation-*.whl

export JETSTATION_BIN="$CARGO_TARGET_DIR/debug/jetstation"
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
cd tests/ui
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
