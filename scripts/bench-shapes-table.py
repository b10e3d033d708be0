#!/usr/bin/env python3
"""Turns the runs of scripts/bench-shapes.sh into a BENCHMARKS.md section.
Arguments: the results file, the message count, the reproduce command.
Targets (one node): the Rust core's producer >= 1.0x raw, its group >= 0.9x
the raw reader on the same messages."""
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
RAW = "async-nats (raw)"
# "× raw" is against the raw row of the direction (raw publishes without
# headers); a consume target is judged against the raw reader on the same
# messages as the group (they carry the producer's headers, which the server
# stores), as in the consume table.
BASE = {"produce": "pipelined, window 1024", "consume": "pull consumer, ack per message"}
SAME_MESSAGES = "the same, on the group's messages (1 partition)"
raw = {(d, s): best[((d, RAW, BASE[d]), s)] for d in BASE for s in (SINGLE, CLUSTER)}
TARGETS = {
    ("produce", "1 producer, 1 partition, 100 keys"): ("≥ 1.0× raw (one node)", 1.0, None),
    ("consume", "group, 1 partition, 100 keys"):
        ("≥ 0.9× raw on the same messages (one node)", 0.9, ("consume", RAW, SAME_MESSAGES)),
}
rows = []
for key in sorted(order, key=lambda k: (k[0] != "produce", k[1] != RAW)):
    direction, client, mode = key
    one, three = best.get((key, SINGLE)), best.get((key, CLUSTER))
    r1, r3 = one / raw[(direction, SINGLE)], three / raw[(direction, CLUSTER)]
    target, verdict = "", ""
    if (direction, mode) in TARGETS and client != RAW:
        target, floor, against = TARGETS[(direction, mode)]
        ratio = r1 if against is None else one / best[(against, SINGLE)]
        if against is not None:
            target += f": {ratio:.2f}×"
        verdict = "met" if ratio >= floor else "**missed**"
    rows.append(f"| {direction} | {client} | {mode} | {one:,.0f} | {r1:.2f}× | {three:,.0f} | {r3:.2f}× | "
                f"{three / one:.2f}× | {target} | {verdict} |")

write_section("Produce and consume, one node and a 3-node cluster", "\n".join([
    f"{measured(rustc(), nats_server())} {count:,} messages of 256 B per measurement, file storage, acked publishes, "
    "default producer options, consumer groups of concurrency 16 acknowledging every message. One node: a single "
    "nats-server, R1 streams. Cluster: 3 nats-servers on loopback, R3 streams, the clients connected to all three. "
    "Raw async-nats (pipelined publishes, window 1,024, no ids; a pull consumer acknowledging each message) runs on "
    "the same servers in the same run; the raw reader also reads the 1-partition station, whose messages carry the "
    "headers the producer sent (id, key, and the expected sequence or batch headers, which nats-server stores). Four producers each use a connection of their own and send a quarter of the "
    "messages. Best of 2 runs; in each run the raw reader and the group read the 1-partition station three times "
    "each, in turns (the best of the six reads of each is shown).",
    f"Reproduce with `{command}`.", "",
    "| | client | shape | one node msgs/s | × raw | 3-node R3 msgs/s | × raw | R3 × one node | target | |",
    "|---|---|---|---|---|---|---|---|---|---|", *rows]))
