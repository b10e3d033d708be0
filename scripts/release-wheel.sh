#!/usr/bin/env bash
# Builds the release Python wheel into directory $1: abi3, linked by zig
# against glibc 2.17 (manylinux2014). `make dist` ships it; the chaos suite's
# Python workers run it. One build command for both, so the second reuses
# what the first compiled. Prints the tools' directory (maturin, zig,
# auditwheel, wheel).
#
# It builds in a target directory of its own: zig is the linker here, and
# cargo fingerprints the linker of every unit, so sharing a directory with the
# Node addon's release build (same triple, no zig) made each of the two
# recompile the dependencies they share every time the other had run.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}-zig"
TOOLS=$(scripts/pinned-venv.sh dist-tools maturin==1.16.0 ziglang==0.17.0 auditwheel==6.8.2 wheel==0.45.1)
PATH="$TOOLS/bin:$PATH" maturin build -q --release --zig --compatibility manylinux2014 \
  -m bindings/python/Cargo.toml --out "$1" >&2
echo "$TOOLS"
