#!/usr/bin/env bash
# `make dist`: release artifacts in dist/, each as its language installs it.
#
#   dist/jetstation-<v>-cp39-abi3-manylinux_2_17_x86_64.whl   Python (abi3, zig-linked for glibc 2.17)
#   dist/jetstation-<v>.tar.gz                                Python sdist (builds with Rust)
#   dist/jetstation-<v>.tgz, dist/jetstation-linux-x64-gnu-<v>.tgz
#                                                             Node: the package and its prebuilt addon
#   dist/swift/Jetstation/                                    SwiftPM package: sources, module map, release library
#   dist/bin/jetstation, dist/bin/jetstation-gateway          the tool (with `ui` and `cdc`) and the gateway
#   dist/debug/*.debug                                        debug info split from every shipped binary
#
# Every shipped binary is stripped; its debug info (line tables) is kept in
# dist/debug and linked with a GNU debuglink, so a crash report can still be
# symbolised. Prints each artifact's size and fails when a wheel or a
# tarball is above 15 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
DIST="$PWD/dist"
LIMIT=$((15 * 1000 * 1000))
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
rm -rf "$DIST"
mkdir -p "$DIST/debug" "$DIST/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each step with the seconds since the start, to see where the time goes.
started=$SECONDS
say() { printf '[dist] %4ds %s\n' "$((SECONDS - started))" "$*"; }

# Strips a binary in place; its debug info goes to dist/debug/<name>.debug.
split_debug() {
  local file="$1" name
  name=$(basename "$file")
  objcopy --only-keep-debug --compress-debug-sections=zlib "$file" "$DIST/debug/$name.debug"
  objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$DIST/debug/$name.debug" "$file"
}

# 1. The tool and the gateway.
say "release binaries"
# One invocation for the tool, the gateway and the Swift library (and the
# other release binaries of `make test`): the core and its dependencies are
# compiled once.
scripts/release-binaries.sh
for b in jetstation jetstation-gateway; do
  cp "$CARGO_TARGET_DIR/release/$b" "$DIST/bin/"
  split_debug "$DIST/bin/$b"
done

# 2. Python: an abi3 wheel linked by zig against glibc 2.17 (manylinux2014),
#    checked by auditwheel, then stripped; and the sdist.
say "python wheel"
TOOLS=$(scripts/release-wheel.sh "$work/wheel")
PATH="$TOOLS/bin:$PATH" maturin sdist -m bindings/python/Cargo.toml --out "$DIST"
wheel=$(ls "$work"/wheel/jetstation-*.whl)
"$TOOLS/bin/wheel" unpack -d "$work/unpacked" "$wheel" >/dev/null
so=$(ls "$work"/unpacked/*/jetstation/_native*.so)
split_debug "$so"
"$TOOLS/bin/wheel" pack -d "$DIST" "$(dirname "$(dirname "$so")")" >/dev/null
"$TOOLS/bin/auditwheel" show "$DIST"/jetstation-*.whl | tee "$work/auditwheel.txt" | tail -n +1 >/dev/null
grep -q 'manylinux_2_17' "$work/auditwheel.txt" || { cat "$work/auditwheel.txt"; echo "the wheel is not manylinux_2_17" >&2; exit 1; }

# 3. Node: the addon as a napi-rs platform package, and the main package
#    that loads it (its loader requires jetstation-linux-x64-gnu when the
#    addon is not beside it).
say "node packages"
scripts/build-node.sh
platform="$work/node/linux-x64-gnu"
mkdir -p "$platform"
cp bindings/node/native/jetstation.linux-x64-gnu.node "$platform/"
split_debug "$platform/jetstation.linux-x64-gnu.node"
cat > "$platform/package.json" <<JSON
{
  "name": "jetstation-linux-x64-gnu",
  "version": "$version",
  "description": "The jetstation addon for Linux x64 (glibc).",
  "license": "Apache-2.0",
  "main": "jetstation.linux-x64-gnu.node",
  "files": ["jetstation.linux-x64-gnu.node"],
  "os": ["linux"],
  "cpu": ["x64"],
  "libc": ["glibc"],
  "engines": { "node": ">=20" }
}
JSON
(cd "$platform" && npm pack --silent --pack-destination "$DIST" >/dev/null)
main="$work/node/jetstation"
mkdir -p "$main/native"
cp -r bindings/node/lib "$main/"
cp bindings/node/native/index.js bindings/node/native/index.d.ts "$main/native/"
node -e '
  const p = require("./bindings/node/package.json");
  delete p.devDependencies; delete p.scripts;
  p.files = ["lib", "native/index.js", "native/index.d.ts"];
  p.optionalDependencies = { "jetstation-linux-x64-gnu": p.version };
  require("fs").writeFileSync(process.argv[1], JSON.stringify(p, null, 2) + "\n");
' "$main/package.json"
(cd "$main" && npm pack --silent --pack-destination "$DIST" >/dev/null)

# 4. Swift: a package another package can depend on by path or by tag: the
#    sources, the generated bindings, the C module map and the release library.
say "swift package"
# The library and the binding generator were built with the binaries above.
lib="$CARGO_TARGET_DIR/release/libjetstation_ffi.so"
swift="$DIST/swift/Jetstation"
mkdir -p "$swift/Sources/Jetstation/Generated" "$swift/Sources/jetstation_ffiFFI" "$swift/lib"
"$CARGO_TARGET_DIR/release/uniffi-bindgen" generate --library "$lib" --language swift --out-dir "$work/swift" --no-format >/dev/null
cp bindings/swift/Sources/Jetstation/*.swift "$swift/Sources/Jetstation/"
cp "$work/swift/jetstation_ffi.swift" "$swift/Sources/Jetstation/Generated/"
cp "$work/swift/jetstation_ffiFFI.h" bindings/swift/Sources/jetstation_ffiFFI/module.modulemap "$swift/Sources/jetstation_ffiFFI/"
cp "$lib" "$swift/lib/"
split_debug "$swift/lib/libjetstation_ffi.so"
cat > "$swift/Package.swift" <<'SWIFT'
// swift-tools-version:5.9
// Jetstation for Swift. Link with the library in lib/ (see the README):
//   swift build -Xlinker -L<this package>/lib -Xlinker -rpath -Xlinker <this package>/lib
import PackageDescription

let package = Package(
    name: "Jetstation",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [.library(name: "Jetstation", targets: ["Jetstation"])],
    targets: [
        .systemLibrary(name: "jetstation_ffiFFI", path: "Sources/jetstation_ffiFFI"),
        .target(name: "Jetstation", dependencies: ["jetstation_ffiFFI"], path: "Sources/Jetstation"),
    ]
)
SWIFT
tar -C "$DIST/swift" -czf "$DIST/jetstation-swift-$version.tar.gz" Jetstation

# Sizes, and the limit per package.
say "artifacts"
status=0
for f in "$DIST"/*.whl "$DIST"/*.tgz "$DIST"/*.tar.gz "$DIST"/bin/* "$DIST"/debug/*; do
  size=$(stat -c %s "$f")
  awk -v n="${f#"$DIST"/}" -v s="$size" 'BEGIN { printf "  %-60s %8.1f MB\n", n, s / 1000000 }'
  case "$f" in
    */debug/* | */bin/*) ;;
    *) if [ "$size" -gt "$LIMIT" ]; then echo "  ^ above 15 MB" >&2; status=1; fi ;;
  esac
done
exit $status
