#!/usr/bin/env python3
"""Turns the consume, latency and memory runs of scripts/bench-consume.sh into
BENCHMARKS.md sections. Arguments: the results directory, the reproduce
command. Targets: consume >= 0.8x raw; p99 <= 2x raw."""
import datetime, json, os, pathlib, re, subprocess, sys

results, command = pathlib.Path(sys.argv[1]), sys.argv[2]
lines = lambda name: [json.loads(l) for l in (results / name).read_text().splitlines() if l.strip()]

def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"

rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
server = subprocess.run([os.environ.get("NATS_SERVER_BIN", os.path.expanduser("~/.cache/jetstation/bin/nats-server")), "--version"], capture_output=True, text=True).stdout.strip()
machine = f"Measured {datetime.date.today().isoformat()} on {cpu()} ({os.cpu_count()} cores), {rustc}, {server}."

def section(title, body):
    path = pathlib.Path("BENCHMARKS.md")
    text = path.read_text()
    start, end = f"<!-- {title}:start -->", f"<!-- {title}:end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += f"\n## {title}\n\n{block}\n"
    path.write_text(text)
    print(f"## {title}\n{body}\n")

# Consume: best of the rounds per reader.
best = {}
for r in lines("consume.jsonl"):
    if r["client"] not in best or r["rate"] > best[r["client"]]["rate"]:
        best[r["client"]] = r
raw = best["async-nats (raw)"]["rate"]
rows = []
for client, r in sorted(best.items(), key=lambda kv: -kv[1]["rate"]):
    ratio = r["rate"] / raw
    target = "≥ 0.8× raw" if client != "async-nats (raw)" else ""
    verdict = "" if not target else ("met" if ratio >= 0.8 else "**missed**")
    rows.append(f"| {client} | {r['mode']} | {r['rate']:,.0f} | {ratio:.2f}× | {target} | {verdict} |")
sample = next(iter(best.values()))
section("Consume throughput", "\n".join([
    f"{machine} {sample['count']:,} stored messages of {sample['size']} B, 1 partition, 100 keys, file storage; "
    "each reader reads them all and acknowledges every one; best of 2 rounds, against one nats-server.",
    f"Reproduce with `{command}`.", "",
    "| reader | mode | messages/s | × raw | target | |", "|---|---|---|---|---|---|", *rows]))

# Latency.
lat = {}
for r in lines("latency.jsonl"):  # per client, the round with the lowest p99
    if r["client"] not in lat or r["p99_ms"] < lat[r["client"]]["p99_ms"]:
        lat[r["client"]] = r
raw99 = lat["async-nats (raw)"]["p99_ms"]
rows = []
for client, r in lat.items():
    ratio = r["p99_ms"] / raw99
    target = "p99 ≤ 2× raw" if client != "async-nats (raw)" else ""
    verdict = "" if not target else ("met" if ratio <= 2 else "**missed**")
    rows.append(f"| {client} | {r['rate']:,} | {r['messages']:,} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {ratio:.2f}× | {target} | {verdict} |")
any_r = next(iter(lat.values()))
section("End-to-end latency", "\n".join([
    f"{machine} Send to handler, 256 B messages, acked publishes, 100 keys, file storage, for 5 s at half of "
    f"jetstation's maximum end-to-end rate measured in the same round ({any_r['max_rate']:,} messages/s), the same offered "
    "load for both; 2 rounds, each client's round with the lower p99. The p99 of both moves by several "
    "milliseconds between rounds on this 2-core machine (client, server and consumer share the cores).",
    f"Reproduce with `{command}`.", "",
    "| client | messages/s offered | messages | p50 ms | p99 ms | p99 × raw | target | |",
    "|---|---|---|---|---|---|---|---|", *rows]))

# Memory.
m = lines("memory.jsonl")[0]
section("Producer peak memory", "\n".join([
    f"{machine} One Rust producer enqueues {m['count']:,} messages of {m['size']} B (4 partitions, 100 keys) with the "
    "default buffer (64 MiB of queued and unconfirmed payload), keeps no receipts, then flushes; all "
    f"{m['stored']:,} were stored.",
    f"Reproduce with `{command}`.", "",
    "| peak resident memory | before sending | time |", "|---|---|---|",
    f"| {m['peak_rss_mib']:.0f} MiB | {m['rss_before_mib']:.0f} MiB | {m['seconds']:.1f} s |"]))
