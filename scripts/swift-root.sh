# Sourced by the scripts that run Swift: the Debian trixie root that holds
# the toolchain (scripts/setup-swift.sh builds it), with /proc, /dev and the
# repository (as /repo) mounted inside it. Call swift_root_unmount from the
# caller's EXIT trap.
#
#   swift_root_mount             mounts what is not mounted yet
#   swift_root_run CMD...        runs CMD inside the root (HOME=/root)
#   swift_root_unmount           removes the mounts this shell made
#
# SWIFT_LIBDIR is where the Swift packages find the Rust library inside the
# root; SWIFT_LINK holds the flags that link against it; SWIFT_EXEC is the
# command prefix (as text, for programs that take a command line) that runs
# a built Swift program inside the root with that library.

SWIFT_ROOT_DIR="${SWIFT_ROOT:-${JETSTATION_CACHE:-$HOME/.cache/jetstation}/trixie}"
SWIFT_LIBDIR=/repo/bindings/swift/.build-lib
SWIFT_LINK="-Xlinker -L$SWIFT_LIBDIR -Xlinker -rpath -Xlinker $SWIFT_LIBDIR"
SWIFT_EXEC="$([ "$(id -u)" = 0 ] || echo "sudo -E ")chroot $SWIFT_ROOT_DIR env LD_LIBRARY_PATH=$SWIFT_LIBDIR"
_swift_root_mounted=()

_swift_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

_swift_root_mount_one() { # target, mount arguments...
  local target="$1"; shift
  mountpoint -q "$target" && return 0
  mkdir -p "$target"
  _swift_as_root mount "$@" "$target"
  _swift_root_mounted=("$target" "${_swift_root_mounted[@]}")
}

swift_root_mount() {
  _swift_root_mount_one "$SWIFT_ROOT_DIR/proc" -t proc proc
  _swift_root_mount_one "$SWIFT_ROOT_DIR/dev" --bind /dev
  _swift_root_mount_one "$SWIFT_ROOT_DIR/repo" --bind "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
}

swift_root_run() {
  _swift_as_root chroot "$SWIFT_ROOT_DIR" env HOME=/root PATH=/usr/bin:/bin "$@"
}

swift_root_unmount() {
  local target
  for target in "${_swift_root_mounted[@]}"; do
    _swift_as_root umount "$target" 2>/dev/null || true
  done
  _swift_root_mounted=()
}
