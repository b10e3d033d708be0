#!/usr/bin/env python3
"""Writes criterion results into BENCHMARKS.md, in the section named by the
first argument (between <!-- NAME:start --> and <!-- NAME:end -->)."""
import json, os, pathlib, sys

from benchmarks_md import measured, rustc, write_section

section, group, command = sys.argv[1], sys.argv[2], sys.argv[3]
targets = dict(t.split("=") for t in sys.argv[4:])  # bench name -> max µs
target_dir = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target"))
root = target_dir / "criterion" / group

rows = []
for bench in sorted(p.name for p in root.iterdir() if (p / "new" / "estimates.json").exists()):
    est = json.load(open(root / bench / "new" / "estimates.json"))
    mean = est["mean"]["point_estimate"] / 1000.0
    lo = est["mean"]["confidence_interval"]["lower_bound"] / 1000.0
    hi = est["mean"]["confidence_interval"]["upper_bound"] / 1000.0
    target = targets.get(bench)
    verdict = "" if target is None else ("met" if mean <= float(target) else "**missed**")
    rows.append(f"| {bench} | {mean:.2f} | {lo:.2f} – {hi:.2f} | {'≤ ' + target if target else ''} | {verdict} |")

body = "\n".join([
    measured(rustc()),
    f"Reproduce with `{command}`.",
    "",
    "| benchmark | mean µs | 95% interval µs | target µs | |",
    "|---|---|---|---|---|",
    *rows,
])
write_section(section, body)
