#!/usr/bin/env python3
"""Writes criterion results into BENCHMARKS.md, in the section named by the
first argument (between <!-- NAME:start --> and <!-- NAME:end -->)."""
import datetime, json, os, pathlib, platform, re, subprocess, sys

section, group, command = sys.argv[1], sys.argv[2], sys.argv[3]
targets = dict(t.split("=") for t in sys.argv[4:])  # bench name -> max µs
target_dir = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target"))
root = target_dir / "criterion" / group

def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

rows = []
for bench in sorted(p.name for p in root.iterdir() if (p / "new" / "estimates.json").exists()):
    est = json.load(open(root / bench / "new" / "estimates.json"))
    mean = est["mean"]["point_estimate"] / 1000.0
    lo = est["mean"]["confidence_interval"]["lower_bound"] / 1000.0
    hi = est["mean"]["confidence_interval"]["upper_bound"] / 1000.0
    target = targets.get(bench)
    verdict = "" if target is None else ("met" if mean <= float(target) else "**missed**")
    rows.append(f"| {bench} | {mean:.2f} | {lo:.2f} – {hi:.2f} | {'≤ ' + target if target else ''} | {verdict} |")

rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
body = "\n".join([
    f"Measured {datetime.date.today().isoformat()} on {cpu()} ({os.cpu_count()} cores), {rustc}.",
    f"Reproduce with `{command}`.",
    "",
    "| benchmark | mean µs | 95% interval µs | target µs | |",
    "|---|---|---|---|---|",
    *rows,
])
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text() if path.exists() else "# Benchmarks\n\nEvery table below is written by `make bench`; nothing here is typed by hand.\n"
start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
block = f"{start}\n{body}\n{end}"
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += f"\n## {section}\n\n{block}\n"
path.write_text(text)
print(body)
