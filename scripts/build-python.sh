#!/usr/bin/env bash
# Builds the jetstation wheel (dev profile; PYTHON_PROFILE=release for the
# release wheel of `make dist`) and installs it into $JETSTATION_CACHE/python-venv, the
# environment the conformance runner, the chaos suite and the demo use;
# prints that environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TOOLS=$(scripts/python-tools.sh)
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
if [ "${PYTHON_PROFILE:-dev}" = release ]; then
  # The release wheel of `make dist` (shares its compiled code).
  scripts/release-wheel.sh "$wheels" >/dev/null
else
  "$TOOLS/bin/maturin" build -q -m bindings/python/Cargo.toml --profile "${PYTHON_PROFILE:-dev}" --out "$wheels" >&2
fi
VENV="$CACHE/python-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/jetstation-*.whl >&2
echo "$VENV/bin/python"
