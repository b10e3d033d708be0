#!/usr/bin/env bash
# Checks every binding and the gateway against contract/jetstation.json
# (tests/contract/parity.py), and that the checker notices an option removed
# from any one of them. Reads sources only: no build, no server.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 tests/contract/parity.py
cd tests/contract && timeout 120 python3 test_parity.py
