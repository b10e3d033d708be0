#!/usr/bin/env python3
"""Turns JSON lines of throughput runs into a BENCHMARKS.md section.

Arguments: section title, results file, reproduce command, baseline client,
target ratio for the others. The best of the rounds of each (client, mode)
is reported, with its ratio to the baseline's best.
"""
import datetime, json, os, pathlib, re, subprocess, sys

title, results, command, baseline, target = sys.argv[1:6]
runs = [json.loads(l) for l in open(results) if l.strip()]
best = {}
for r in runs:
    key = (r["client"], r["mode"])
    if key not in best or r["rate"] > best[key]["rate"]:
        best[key] = r
base = max(r["rate"] for (c, _), r in best.items() if c == baseline)

def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"

rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
server = subprocess.run([os.environ.get("NATS_SERVER_BIN", os.path.expanduser("~/.cache/jetstation/bin/nats-server")), "--version"], capture_output=True, text=True).stdout.strip()
sample = runs[0]
rows = []
for (client, mode), r in sorted(best.items(), key=lambda kv: -kv[1]["rate"]):
    ratio = r["rate"] / base
    verdict = "baseline" if client == baseline else ("met" if ratio >= float(target) else f"**missed** (target {target}×)")
    rows.append(f"| {client} | {mode} | {r['rate']:,.0f} | {ratio:.2f}× | {verdict} |")
body = "\n".join([
    f"Measured {datetime.date.today().isoformat()} on {cpu()} ({os.cpu_count()} cores), {rustc}, {server}, "
    f"Python {sys.version.split()[0]}. {sample['count']:,} messages of {sample['size']} B per run, acked, "
    "file storage, 1 partition, 100 keys, default producer options; best of 2 rounds.",
    f"Reproduce with `{command}`.",
    "",
    "| client | mode | messages/s | ratio to Rust | |",
    "|---|---|---|---|---|",
    *rows,
])
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
start, end = f"<!-- {title}:start -->", f"<!-- {title}:end -->"
block = f"{start}\n{body}\n{end}"
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += f"\n## {title}\n\n{block}\n"
path.write_text(text)
print(body)
