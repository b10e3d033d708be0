#!/usr/bin/env bash
# Builds the Node addon (napi-rs) and runs the Node suite against real
# nats-servers. Fails when the generated native/index.d.ts or index.js drift
# from the committed ones, and type-checks the TypeScript example (strict).
set -euo pipefail
cd "$(dirname "$0")/../bindings/node"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${JETSTATION_CACHE:-$HOME/.cache/jetstation}/target}"

npm ci --no-audit --no-fund --loglevel=error
npm run -s ${NODE_BUILD:-build:debug}
if ! git diff --quiet -- native/index.d.ts native/index.js; then
  echo "native/index.d.ts or native/index.js changed when built: commit the generated files" >&2
  git --no-pager diff --stat -- native/
  exit 1
fi
# The examples import the package by name.
mkdir -p ../../examples/node/node_modules
ln -sfn ../../../bindings/node ../../examples/node/node_modules/jetstation
npm run -s typecheck
npm test
