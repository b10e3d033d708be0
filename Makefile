# jetstation: `make demo` runs the cross-language demo end to end, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
export JETSTATION_CACHE ?= $(HOME)/.cache/jetstation
# Build artefacts live outside the clone so that a fresh clone reuses them.
export CARGO_TARGET_DIR ?= $(JETSTATION_CACHE)/target

.PHONY: setup demo quickstart test-demo test test-contract test-core test-cli test-ui test-install dist screenshots test-python test-node test-swift test-gateway test-telemetry test-chaos test-versions conformance bench bench-schemas bench-produce bench-consume bench-shapes bench-profile bench-chaos bench-cdc lint

setup:
	@scripts/setup.sh

## The employee-sync story across Python, Node, Rust and Swift.
demo: setup
	@scripts/demo.sh

## The Rust quickstart alone (examples/rust/quickstart.rs).
quickstart: setup
	$(CARGO) run --release -q -p jetstation-examples --bin quickstart

export JETSTATION_TEST_TOTALS ?= $(CURDIR)/.test-totals

## Every test of every part, the conformance matrix, the demo and the lints,
## then one total line.
test: setup
	@rm -f $(JETSTATION_TEST_TOTALS)
	@status=0; \
	$(MAKE) --no-print-directory test-contract || status=1; \
	$(MAKE) --no-print-directory test-core || status=1; \
	$(MAKE) --no-print-directory test-python || status=1; \
	$(MAKE) --no-print-directory test-node || status=1; \
	$(MAKE) --no-print-directory test-swift || status=1; \
	$(MAKE) --no-print-directory test-gateway || status=1; \
	$(MAKE) --no-print-directory test-telemetry || status=1; \
	$(MAKE) --no-print-directory test-ui || status=1; \
	$(MAKE) --no-print-directory test-install || status=1; \
	$(MAKE) --no-print-directory conformance || status=1; \
	$(MAKE) --no-print-directory test-chaos || status=1; \
	$(MAKE) --no-print-directory test-demo || status=1; \
	$(MAKE) --no-print-directory lint || status=1; \
	scripts/test-summary.sh --print; \
	rm -f $(JETSTATION_TEST_TOTALS); \
	exit $$status

## The contract (contract/jetstation.json): every binding and the gateway
## offer every option, record field, operation and error kind it declares.
test-contract:
	@scripts/test-summary.sh scripts/test-contract.sh

## Rust core: unit tests and integration tests against real nats-servers
## (cargo-nextest, so that every test has a time limit: .config/nextest.toml).
test-core: setup
	@scripts/test-summary.sh $(CARGO) nextest run --workspace --exclude jetstation-gateway --exclude jetstation-telemetry-tests --no-fail-fast

## The `jetstation` command-line tool against a real nats-server (also run
## by test-core, which runs the whole workspace).
test-cli: setup
	@scripts/test-summary.sh $(CARGO) nextest run -p jetstation-cli --no-fail-fast

## The web dashboard (`jetstation ui`) in Debian's Chromium, driven by
## Playwright against real nats-servers; screenshots go to
## $(JETSTATION_CACHE)/screenshots.
test-ui: setup
	@scripts/test-summary.sh scripts/test-ui.sh

## Release artifacts in dist/: the Python wheel (abi3, manylinux2014) and
## sdist, the Node package and its prebuilt addon package, the Swift package,
## the `jetstation` tool and the gateway; stripped, debug info in dist/debug.
dist: setup
	@scripts/dist.sh

## The artifacts of `make dist` installed outside the repository: Python 3.9
## to 3.13, Node (ESM, CommonJS, TypeScript), a separate Swift package; each
## runs the quickstart.
test-install: setup
	@scripts/test-summary.sh scripts/test-install.sh

## The dashboard's screenshots in docs/screenshots (shown by the README),
## taken by the browser tests.
screenshots: setup
	JETSTATION_SCREENSHOTS=$(CURDIR)/docs/screenshots scripts/test-ui.sh

## Python package: builds the wheel into a fresh virtual environment, runs
## pytest against real nats-servers, mypy --strict on the examples, stubtest.
test-python: setup
	@scripts/test-summary.sh scripts/test-python.sh

## Node package: builds the addon, checks the generated types did not drift,
## type-checks the TypeScript example, runs node --test against real servers.
test-node: setup
	@scripts/test-summary.sh scripts/test-node.sh

## Swift package: builds the library, generates the uniffi bindings, runs
## XCTest and the Swift quickstart in a cached Debian trixie root (swiftlang).
test-swift: setup
	@scripts/test-summary.sh scripts/test-swift.sh

## gRPC gateway: its Rust tests (tonic client) and an end-to-end test from
## Python grpcio with stubs generated from proto/ at test time.
test-gateway: setup
	@scripts/test-summary.sh scripts/test-gateway.sh

## OpenTelemetry: the core's `otel` feature, and one trace followed from a
## Python producer through a Rust service to a Node consumer.
test-telemetry: setup
	@scripts/test-summary.sh scripts/test-telemetry.sh

## The chaos suite on a 3-node cluster (short form; CHAOS_LONG=1 for the
## long one), with Rust and with Python workers, judged by tests/chaos/check.py.
test-chaos: setup
	@scripts/test-summary.sh scripts/test-chaos.sh

## The server-version matrix: the core suite and the chaos short form on
## nats-server 2.12.8 and 2.15.0; server_too_old on 2.10.26 and 2.11.11.
test-versions: setup
	@scripts/test-versions.sh

## The demo, run as a test: fails unless its account is what it should be.
test-demo: setup
	@scripts/test-summary.sh scripts/demo.sh

## Cross-language conformance: every scenario of tests/conformance/scenarios
## in Rust, Python, Node, Swift and through the gateway, then the 5x5 interop
## matrix; prints the scenario x language matrix, fails on any miss.
conformance: setup
	@scripts/test-summary.sh scripts/conformance.sh

## rustfmt and clippy with -D warnings over every crate and target.
lint:
	@echo "lint: rustfmt and clippy"
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Benchmarks (not tests): results are written to BENCHMARKS.md.
bench: bench-schemas bench-produce bench-consume bench-shapes bench-profile bench-chaos bench-cdc

bench-schemas: setup
	$(CARGO) bench -p jetstation --bench validation
	scripts/bench-report.py "Schema validation (1 KiB message)" validate_1KiB \
		"make bench-schemas" json_schema=5 protobuf=2 avro=5

bench-produce: setup
	scripts/bench-produce.sh

## Produce and consume on one node and on a 3-node R3 cluster: 1, 4 and 64
## partitions, four producers on one station, exactly once; raw beside.
bench-shapes: setup
	scripts/bench-shapes.sh

## Recovery time after each fault kind on a 3-node cluster (the chaos suite).
bench-chaos: setup
	scripts/bench-chaos.sh

## Where the CPU goes while producing on one node (perf, system-wide):
## raw publishes, atomic and fast-ingest batches, the Rust core.
bench-profile: setup
	scripts/bench-profile.sh

## Consume throughput, latency p50/p99 and producer peak memory vs raw async-nats.
bench-consume: setup
	scripts/bench-consume.sh

## CDC: PostgreSQL commit to confirmed in a station, and station to the
## sink's table, each beside its ceiling.
bench-cdc: setup
	scripts/bench-cdc.sh
