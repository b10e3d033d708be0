#!/usr/bin/env bash
# Installs the Node package's dependencies and builds its release addon and
# TypeScript facade (`npm run build`), unless the addon is newer than every
# source it is built from. Used by every Node step after `make test-node`
# (which always builds, to check the generated files): the napi CLI sets
# NAPI_FORCE_BUILD_<crate> on a clone's first build and napi-build reruns
# when that variable changes, so a second `napi build` of unchanged sources
# recompiled the addon (about 85 s in a release build).
set -euo pipefail
cd "$(dirname "$0")/../bindings/node"
npm ci --no-audit --no-fund --loglevel=error >&2
addon=native/jetstation.linux-x64-gnu.node
if [ -f "$addon" ] && [ -z "$(find ../../core ../../Cargo.toml ../../Cargo.lock src ts build.rs Cargo.toml \
  package.json package-lock.json tsconfig.json -newer "$addon" -print -quit)" ]; then
  echo "node addon: up to date" >&2
  exit 0
fi
npm run -s build >&2
