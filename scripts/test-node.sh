#!/usr/bin/env bash
# Builds the Node addon (napi-rs) and the TypeScript facade (ts/ -> lib/),
# and runs the Node suite against real nats-servers. Fails when the generated
# native/ or lib/ files drift from the committed ones, and type-checks the
# TypeScript example (strict).
#
# The addon is the release build, the one `make dist` ships: every Node step
# of `make test` (this suite, telemetry, conformance, dist, demo) uses that one
# build, so it is compiled once (NODE_BUILD=build:debug for a debug addon).
set -euo pipefail
cd "$(dirname "$0")/../bindings/node"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${JETSTATION_CACHE:-$HOME/.cache/jetstation}/target}"

npm ci --no-audit --no-fund --loglevel=error
npm run -s ${NODE_BUILD:-build}
if ! git diff --quiet -- native lib || [ -n "$(git ls-files --others --exclude-standard -- native lib)" ]; then
  echo "native/ or lib/ changed when built: commit the generated files" >&2
  git --no-pager diff --stat -- native/ lib/
  exit 1
fi
# The examples import the package by name.
mkdir -p ../../examples/node/node_modules
ln -sfn ../../../bindings/node ../../examples/node/node_modules/jetstation
npm run -s typecheck
npm test
