#!/usr/bin/env python3
"""Turns the runs of scripts/bench-shapes.sh into a BENCHMARKS.md section.
Arguments: the results file, the message count, the reproduce command.
Targets (one node): the Rust core's producer >= 1.0x raw, its group >= 0.9x
raw."""
import json, pathlib, sys

from benchmarks_md import measured, nats_server, rustc, write_section

results, count, command = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
best = {}
order = []
for r in (json.loads(l) for l in results.read_text().splitlines() if l.strip()):
    key = (r["direction"], r["client"], r["mode"])
    if key not in order:
        order.append(key)
    cell = (key, r["setup"])
    if cell not in best or r["rate"] > best[cell]:
        best[cell] = r["rate"]

SINGLE, CLUSTER = "single node, R1", "3-node cluster, R3"
raw = {(d, s): best[((d, "async-nats (raw)", m), s)]
       for (d, c, m) in order if c == "async-nats (raw)" for s in (SINGLE, CLUSTER)}
TARGETS = {
    ("produce", "1 producer, 1 partition, 100 keys"): ("≥ 1.0× raw (one node)", 1.0),
    ("consume", "group, 1 partition, 100 keys"): ("≥ 0.9× raw (one node)", 0.9),
}
rows = []
for key in sorted(order, key=lambda k: (k[0] != "produce", k[1] != "async-nats (raw)")):
    direction, client, mode = key
    one, three = best.get((key, SINGLE)), best.get((key, CLUSTER))
    r1, r3 = one / raw[(direction, SINGLE)], three / raw[(direction, CLUSTER)]
    target, verdict = "", ""
    if (direction, mode) in TARGETS and client != "async-nats (raw)":
        target, floor = TARGETS[(direction, mode)]
        verdict = "met" if r1 >= floor else "**missed**"
    rows.append(f"| {direction} | {client} | {mode} | {one:,.0f} | {r1:.2f}× | {three:,.0f} | {r3:.2f}× | "
                f"{three / one:.2f}× | {target} | {verdict} |")

write_section("Produce and consume, one node and a 3-node cluster", "\n".join([
    f"{measured(rustc(), nats_server())} {count:,} messages of 256 B per measurement, file storage, acked publishes, "
    "default producer options, consumer groups of concurrency 16 acknowledging every message. One node: a single "
    "nats-server, R1 streams. Cluster: 3 nats-servers on loopback, R3 streams, the clients connected to all three. "
    "Raw async-nats (pipelined publishes, window 1,024, no ids; a pull consumer acknowledging each message) runs on "
    "the same servers in the same run. Four producers each use a connection of their own and send a quarter of the "
    "messages. Best of 2 runs.",
    f"Reproduce with `{command}`.", "",
    "| | client | shape | one node msgs/s | × raw | 3-node R3 msgs/s | × raw | R3 × one node | target | |",
    "|---|---|---|---|---|---|---|---|---|---|", *rows]))
