#!/usr/bin/env python3
"""Writes the chaos suite's recovery times into BENCHMARKS.md: for each fault
kind, the time from the fault's start to the first handling, on every
partition, of a message sent after the fault began (median and max over every partition of every fault of that kind),
per worker language, with the checker's verdict. Arguments: the chaos output
directory (one sub-directory per language, each with summary.json), the
reproduce command."""
import json, pathlib, re, statistics, sys

from benchmarks_md import measured, nats_server, write_section

out, command = pathlib.Path(sys.argv[1]), sys.argv[2]
rows = []
for lang_dir in sorted(p for p in out.iterdir() if (p / "summary.json").exists()):
    summary = json.loads((lang_dir / "summary.json").read_text())
    kinds = {}
    for r in summary["recovery"]:
        kind = re.sub(r" (n|m)\d+$", "", r["fault"])
        if r["median_s"] is not None:
            kinds.setdefault(kind, []).append(r)
    violations = sum(summary["totals"].values())
    for kind, rs in kinds.items():
        gaps = [g for r in rs for g in r.get("gaps_s", [r["median_s"]])]
        rows.append(f"| {summary['label']} | {kind} | {len(rs)} | {statistics.median(gaps):.1f} s | "
                    f"{max(gaps):.1f} s | {'0' if violations == 0 else violations} |")
    totals = ", ".join(f"{v} {k}" for k, v in summary["totals"].items())
    run = json.loads((lang_dir / "run.json").read_text())
    setup = (f"{'3 nodes' if run['nodes'] == 3 else 'one server'}, an R{run['replicas']} station of "
             f"{run['partitions']} partitions, {run['rate']:,} messages/s for {run['duration_s']} s, "
             f"{run['faults']} faults, handlers of {run.get('handler_ms', 0)} ms")
    through = summary.get("ran_through_freeze", 0)
    excused = f"; {through} runs went on through their member's freeze (excused)" if through else ""
    cut = summary.get("cut_by_kill", 0)
    if "handled twice" in summary["totals"] and cut:
        excused += (f"; {cut} handlers ran again because their member was killed, cut off or frozen between a "
                    'run and its record (excused: `docs/design-notes.md`, "Exactly-once processing")')
    if "flagged_repeats" in summary:
        excused += (f"; {sum(summary['flagged_repeats'].values()):,} messages ran again flagged as "
                    "redelivered (no violation)")
    rows_note = (f"{summary['label']} ({setup}): {summary['confirmed']:,} of {summary['sent']:,} sends "
                 f"confirmed; {totals}{excused}.")
    rows.append(f"| | *{rows_note}* | | | | |")

body = "\n".join([
    measured(nats_server()) + " The runs of the chaos suite (`make test-chaos`), each described in its last row: "
    "nats-servers on loopback, one producer process, two members (ack_wait 3 s, handover_timeout 2 s). "
    "Time from the fault's start to the first handling, on every partition, of a message sent "
    "after the fault began (each handler works 20 ms in the short runs and 5 ms in the exactly-once "
    "runs, as a database write would); it includes the fault's own length "
    "(a killed node is down 3.5 s, a frozen one 4 s, a killed member 2 s, a frozen member 4 s, a member "
    "cut off the network (its relays silent) 4 s), the producer's pause "
    "while a partition whose leader was on the node elects a new one, and the reconnection of every "
    "process that was connected to that node (partitions led elsewhere, in processes connected "
    "elsewhere, go on at once: the 0.0 s rows). Violations are the checker's (lost, stalled, inversions, "
    "unflagged repeats, stored twice, failed then confirmed, and handled twice in exactly-once runs).",
    f"Reproduce with `{command}`.", "",
    "| workers | fault | faults | median | max | violations |", "|---|---|---|---|---|---|", *rows])

write_section("Recovery after faults", body)
