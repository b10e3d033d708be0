#!/usr/bin/env bash
# The gateway's whole suite: its Rust tests (tonic client), then an
# end-to-end test from Python grpcio with stubs generated from proto/ at test
# time, against the gateway binary and a nats-server it runs here.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${JETSTATION_CACHE:-$HOME/.cache/jetstation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

cargo nextest run -p jetstation-gateway
cargo build -q -p jetstation-gateway

VENV=$(scripts/grpc-venv.sh)
work=$(mktemp -d)
"$VENV/bin/python" -m grpc_tools.protoc -Iproto --python_out="$work" --grpc_python_out="$work" \
  proto/jetstation/v1/jetstation.proto

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
grpc_port=$(free_port)
"${NATS_SERVER_BIN:-$CACHE/bin/nats-server}" -js -a 127.0.0.1 -p "$nats_port" -sd "$work/store" -l "$work/nats.log" &
nats=$!
export NATS_PID=$nats
# Stopped and waited for before their files go: a server still writing would
# make the removal fail.
trap 'kill ${nats:-} ${gateway:-} 2>/dev/null; wait ${nats:-} ${gateway:-} 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.05; done
"$CARGO_TARGET_DIR/debug/jetstation-gateway" --nats-url "nats://127.0.0.1:$nats_port" \
  --listen "127.0.0.1:$grpc_port" --token token-a=tenant-a --token token-b=tenant-b --log warn &
gateway=$!
for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break; sleep 0.05; done

GATEWAY_ADDR="127.0.0.1:$grpc_port" PYTHONPATH="$work" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider --timeout=120 tests/gateway
