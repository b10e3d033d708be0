#!/usr/bin/env bash
# Builds the jetstation wheel, installs it into a fresh virtual environment
# and runs the Python suite (pytest against real nats-servers), then the type
# checks: mypy --strict on the examples and stubtest on the compiled module.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
TOOLS=$(scripts/python-tools.sh)

# The wheel (abi3, Python >= 3.9).
wheels="$CACHE/wheels"
rm -rf "$wheels"
"$TOOLS/bin/maturin" build -q -m bindings/python/Cargo.toml ${MATURIN_PROFILE:---profile dev} --out "$wheels"

# A fresh environment with only the wheel and the test tools.
venv="$CACHE/python-test-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "$wheels"/jetstation-*.whl pytest==9.2.0 pytest-asyncio==1.5.0 pytest-timeout==2.4.0 mypy==2.4.1 opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2

cd bindings/python
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
"$venv/bin/python" -m mypy --strict --no-incremental ../../examples/python
"$venv/bin/python" -m mypy.stubtest jetstation._native --ignore-missing-stub
