#!/usr/bin/env bash
# The gRPC client environment (grpcio, its code generator, pytest) of the
# gateway's end-to-end test and the conformance runner, kept in
# $JETSTATION_CACHE/grpc-venv; prints that directory.
exec "$(dirname "$0")/pinned-venv.sh" grpc-venv \
  grpcio==1.85.3 grpcio-tools==1.85.1 googleapis-common-protos pytest==9.2.0 pytest-timeout==2.4.0
