#!/usr/bin/env bash
# Builds the Rust library the Swift package links (jetstation-ffi) and
# generates its Swift bindings with uniffi (library mode) into the package.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

scripts/setup-swift.sh
cargo build -q -p jetstation-ffi -p jetstation-uniffi-bindgen
lib="$CARGO_TARGET_DIR/debug/libjetstation_ffi.so"
pkg=bindings/swift
gen=$(mktemp -d)
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$lib" --language swift --out-dir "$gen" --no-format >/dev/null
mkdir -p "$pkg/Sources/Jetstation/Generated" "$pkg/.build-lib"
cp "$gen/jetstation_ffi.swift" "$pkg/Sources/Jetstation/Generated/"
cp "$gen/jetstation_ffiFFI.h" "$pkg/Sources/jetstation_ffiFFI/"
cp "$lib" "$pkg/.build-lib/"
rm -rf "$gen"

