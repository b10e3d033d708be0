#!/usr/bin/env bash
# Swift 6 toolchain for the Swift package. Debian 12 has no Swift; Debian
# trixie's `swiftlang` does, so it lives in a trixie root built with
# debootstrap and cached outside the clone. Idempotent.
set -euo pipefail
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
ROOT="${SWIFT_ROOT:-$CACHE/trixie}"
say() { printf '[setup-swift] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mounted() { mountpoint -q "$ROOT/proc"; }
cleanup() {
  if [ -n "${MOUNTED_HERE:-}" ]; then
    as_root umount "$ROOT/dev" 2>/dev/null || true
    as_root umount "$ROOT/proc" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# /usr/bin/swift is an absolute symlink, valid inside the root only: test the
# link itself, or the check never holds on the host and every run reinstalls.
if [ -L "$ROOT/usr/bin/swift" ] && [ -f "$ROOT/.jetstation-ready" ]; then
  say "Swift toolchain ready in $ROOT"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  say "building a Debian trixie root in $ROOT (about a minute)"
  rm -rf "$ROOT"
  as_root debootstrap --variant=minbase trixie "$ROOT" http://deb.debian.org/debian >/dev/null
fi
if ! mounted; then
  as_root mount -t proc proc "$ROOT/proc"
  as_root mount --bind /dev "$ROOT/dev"
  MOUNTED_HERE=1
fi
say "installing swiftlang in the root (about a minute)"
as_root chroot "$ROOT" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swiftlang >/dev/null && apt-get clean' 2>&1 | grep -v "Can not write log" || true
as_root chroot "$ROOT" swift --version
touch "$ROOT/.jetstation-ready"
