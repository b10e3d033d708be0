#!/usr/bin/env bash
# Installs the artifacts of `make dist` outside the repository, the way a
# service team would, and runs the quickstart with each:
# - Python: a clean virtual environment per Python 3.9 to 3.13 (pyenv),
#   `pip install dist/jetstation-*.whl`;
# - Node: a clean project that installs the tarballs, then ESM, CommonJS and
#   TypeScript (tsc --strict);
# - Swift: a separate package that depends on dist/swift/Jetstation.
# Builds dist/ first (scripts/dist.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
started=$(date +%s.%N)

scripts/dist.sh
echo "install: artifacts built in $(printf '%.0f' "$(echo "$(date +%s.%N) - $started" | bc)") s"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' "$port" "$work/store" > "$work/server.conf"
"${NATS_SERVER_BIN:-$CACHE/bin/nats-server}" -c "$work/server.conf" -l "$work/server.log" &
server=$!
source scripts/swift-root.sh
cleanup() {
  kill $server 2>/dev/null; wait $server 2>/dev/null
  swift_root_unmount
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
export NATS_URL="nats://127.0.0.1:$port"
passed=0 failed=0
check() { # name, log file: passes when the log ends with an OK line
  if grep -q "quickstart OK" "$2"; then
    echo "install $1: passed"; passed=$((passed + 1))
  else
    echo "install $1: FAILED"; cat "$2"; failed=$((failed + 1))
  fi
}

# Python, one clean environment per version.
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
for v in 3.9 3.10 3.11 3.12 3.13; do
  python=$(ls -d "$PYENV_ROOT"/versions/"$v".*/bin/python3 2>/dev/null | sort -V | tail -1)
  if [ -z "$python" ]; then
    echo "install python $v: FAILED (no Python $v under $PYENV_ROOT/versions)"; failed=$((failed + 1)); continue
  fi
  env_dir="$work/py$v"
  "$python" -m venv "$env_dir"
  "$env_dir/bin/pip" install -q --disable-pip-version-check "$REPO"/dist/jetstation-*.whl
  cp examples/python/quickstart.py "$work/quickstart-$v.py"
  (cd "$work" && timeout 120 "$env_dir/bin/python" "quickstart-$v.py") > "$work/py$v.log" 2>&1 || true
  check "python $v ($("$python" -V 2>&1))" "$work/py$v.log"
done

# Node, a clean project installing the two tarballs.
project="$work/node"
mkdir -p "$project"
cp tests/install/node/quickstart.mjs tests/install/node/quickstart.cjs examples/node/quickstart.mts "$project/"
(cd "$project" && npm init -y >/dev/null && npm pkg set type=commonjs >/dev/null \
  && npm install --no-audit --no-fund --loglevel=error "$REPO"/dist/jetstation-*.tgz typescript@5.6.3 @types/node@20.17.6 >/dev/null)
(cd "$project" && timeout 120 node quickstart.mjs) > "$work/esm.log" 2>&1 || true
check "node esm" "$work/esm.log"
(cd "$project" && timeout 120 node quickstart.cjs) > "$work/cjs.log" 2>&1 || true
check "node commonjs" "$work/cjs.log"
(cd "$project" && npx tsc --strict --module nodenext --moduleResolution nodenext --target es2022 \
  --types node --outDir build quickstart.mts && timeout 120 node build/quickstart.mjs) > "$work/ts.log" 2>&1 || true
check "node typescript (tsc --strict)" "$work/ts.log"

# Swift, a separate package depending on the released one.
scripts/setup-swift.sh
swift_root_mount
lib=/repo/dist/swift/Jetstation/lib
swift_root_run env NATS_URL="$NATS_URL" bash -c \
  "cd /repo/tests/install/swift && rm -rf .build && timeout 600 swift run -Xlinker -L$lib -Xlinker -rpath -Xlinker $lib Quickstart" \
  > "$work/swift.log" 2>&1 || true
check "swift package" "$work/swift.log"

elapsed=$(echo "$(date +%s.%N) - $started" | bc)
printf '%d passed, %d failed in %.1fs\n' "$passed" "$failed" "$elapsed"
[ "$failed" = 0 ]
