#!/usr/bin/env python3
"""Writes the chaos suite's recovery times into BENCHMARKS.md: for each fault
kind, the time from the fault's start to the first new delivery on every
partition (median and max over partitions and over every fault of that kind),
per worker language, with the checker's verdict. Arguments: the chaos output
directory (one sub-directory per language, each with summary.json), the
reproduce command."""
import datetime, json, os, pathlib, re, statistics, subprocess, sys

out, command = pathlib.Path(sys.argv[1]), sys.argv[2]


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


server = subprocess.run([os.environ.get("NATS_SERVER_BIN", os.path.expanduser("~/.cache/jetstation/bin/nats-server")),
                         "--version"], capture_output=True, text=True).stdout.strip()
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
        medians = [r["median_s"] for r in rs]
        maxes = [r["max_s"] for r in rs]
        rows.append(f"| {summary['label']} | {kind} | {len(rs)} | {statistics.median(medians):.1f} s | "
                    f"{max(maxes):.1f} s | {'0' if violations == 0 else violations} |")
    totals = ", ".join(f"{v} {k}" for k, v in summary["totals"].items())
    rows_note = f"{summary['label']}: {summary['confirmed']:,} of {summary['sent']:,} sends confirmed; {totals}."
    rows.append(f"| | *{rows_note}* | | | | |")

body = "\n".join([
    f"Measured {datetime.date.today().isoformat()} on {cpu()} ({os.cpu_count()} cores), {server}, "
    "3 nodes on loopback, an R3 station of 4 partitions, 500 messages/s from one producer process, "
    "two members (ack_wait 3 s, handover_timeout 2 s). Time from the fault's start to the first delivery "
    "of a message not delivered before, on every partition; it includes the fault's own length "
    "(a killed node is down 3.5 s, a frozen one 4 s, a killed member 2 s) and the producer's pause "
    "while a partition elects a leader. Violations are the checker's (lost, stalled, inversions, "
    "unflagged repeats, stored twice, failed then confirmed).",
    f"Reproduce with `{command}`.", "",
    "| workers | fault | faults | median | max | violations |", "|---|---|---|---|---|---|", *rows])

path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
title = "Recovery after faults on a 3-node cluster"
start, end = f"<!-- {title}:start -->", f"<!-- {title}:end -->"
block = f"{start}\n{body}\n{end}"
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += f"\n## {title}\n\n{block}\n"
path.write_text(text)
print(f"## {title}\n{body}")
