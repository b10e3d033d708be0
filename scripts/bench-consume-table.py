#!/usr/bin/env python3
"""Turns the consume, latency and memory runs of scripts/bench-consume.sh into
BENCHMARKS.md sections. Arguments: the results directory, the reproduce
command. Targets: consume >= 0.9x raw; p99 <= 2x raw."""
import json, pathlib, sys

from benchmarks_md import measured, nats_server, rustc, write_section

results, command = pathlib.Path(sys.argv[1]), sys.argv[2]
lines = lambda name: [json.loads(l) for l in (results / name).read_text().splitlines() if l.strip()]

machine = measured(rustc(), nats_server())
section = write_section

# Consume: best of the rounds per reader.
best = {}
for r in lines("consume.jsonl"):
    if r["client"] not in best or r["rate"] > best[r["client"]]["rate"]:
        best[r["client"]] = r
raw = best["async-nats (raw)"]["rate"]
group = best["jetstation (Rust)"]["rate"]
rows = []
for client, r in sorted(best.items(), key=lambda kv: -kv[1]["rate"]):
    ratio = r["rate"] / raw
    if client == "jetstation (Rust)":
        target, verdict = "≥ 0.9× raw", "met" if ratio >= 0.9 else "**missed**"
    elif "exactly once" in client:
        target = f"≥ 0.5× the group ({r['rate'] / group:.2f}×)"
        verdict = "met" if r["rate"] / group >= 0.5 else "**missed**"
    else:
        target, verdict = "", ""
    rows.append(f"| {client} | {r['mode']} | {r['rate']:,.0f} | {ratio:.2f}× | {r['cpu_us_per_message']:.1f} | {target} | {verdict} |")
sample = next(iter(best.values()))
consume_rounds = sum(1 for r in lines("consume.jsonl") if r["client"] == "async-nats (raw)")
section("Consume throughput", "\n".join([
    f"{machine} {sample['count']:,} stored messages of {sample['size']} B, 1 partition, 100 keys, file storage; "
    f"each reader reads them all and acknowledges every one; best of {consume_rounds} rounds (the readers take "
    "turns in each), against one nats-server. The pinned raw reader is the same pull consumer with a pinned-client "
    "priority group, the fence each partition of a consumer group has (nats-server then adds the pin's id to "
    "every message it delivers). "
    "Reader CPU is the user + system time of the reading process over the read, per message.",
    f"Reproduce with `{command}`.", "",
    "| reader | mode | messages/s | × raw | reader CPU µs/message | target | |", "|---|---|---|---|---|---|---|", *rows]))

# Snapshot bootstrap: one run, each reader once.
snap = lines("snapshot.jsonl")
history = next(r for r in snap if r["reader"] == "group, start=earliest")
rows = [f"| {r['reader']} | {r['mode']} | {r['messages']:,} | {r['seconds']:.2f} | {r['rate']:,.0f} | "
        f"{r['seconds'] / history['seconds']:.2f}× |" for r in snap]
section("Snapshot bootstrap (100,000 keys)", "\n".join([
    f"{machine} A compacted station of 4 partitions holds two versions of each of {snap[0]['messages']:,} keys "
    "(256 B); once its state view holds every key, each reader starts from nothing: the state view read with "
    "`Client::snapshot`, a new group with `start=snapshot` (the latest message of every key, acked, then it follows "
    "the history), and a new group replaying the whole history. Time from the call to the last message handled.",
    f"Reproduce with `{command}`.", "",
    "| reader | what it reads | messages | seconds | messages/s | time × history replay |",
    "|---|---|---|---|---|---|", *rows]))

# Latency: each round runs both clients at the same offered load; every round
# is shown, the verdict is on the median round's p99 ratio.
rounds = []
for r in lines("latency.jsonl"):
    if r["client"] == "async-nats (raw)":
        rounds.append({"raw": r})
    elif r["client"] == "jetstation (Rust)":
        rounds[-1]["ours"] = r
    elif r["client"] == "async-nats producer, jetstation group":
        rounds[-1]["group"] = r
    elif r["client"] == "async-nats (raw), pinned reader":
        rounds[-1]["pinned"] = r
    elif r["client"] == "async-nats (raw), with headers":
        rounds[-1]["headers"] = r
    else:
        rounds[-1]["producer"] = r
rows, ratios = [], []
for i, rd in enumerate(rounds, 1):
    raw_r, ours = rd["raw"], rd["ours"]
    ratio = ours["p99_ms"] / raw_r["p99_ms"]
    ratios.append(ratio)
    halves = " | ".join(
        f"{h['p50_ms']:.2f} | {h['p99_ms']:.2f}" if h else "| "
        for h in (rd.get("headers"), rd.get("pinned"), rd.get("producer"), rd.get("group")))
    rows.append(f"| {i} | {raw_r['rate']:,} | {raw_r['p50_ms']:.2f} | {raw_r['p99_ms']:.2f} | {ours['p50_ms']:.2f} | "
                f"{ours['p99_ms']:.2f} | {ratio:.2f}× | {halves} |")
median = sorted(ratios)[len(ratios) // 2]
verdict = "met" if median <= 2 else "**missed**"
section("End-to-end latency", "\n".join([
    f"{machine} Send to handler, 256 B messages, acked publishes, 100 keys, file storage, at half of jetstation's "
    "maximum end-to-end rate measured at the start of the same round, the same offered load for every path of a "
    "round. Every path is set up once per round (its streams, consumers and connections) and sent through for "
    f"{rounds[0]['raw'].get('seconds', 5):g} s "
    "in slices of 1 s that take turns, the order rotating every cycle, so that each path meets the same moments of "
    "the machine; one slice per path before them warms up and is not counted. "
    f"{len(rounds)} rounds. The raw path with headers is raw async-nats again, each message carrying the two headers "
    "a jetstation message has (`Jst-Id`, 22 characters, and `Jst-Key`). "
    "The pinned raw path is raw async-nats again with its pull consumer pinned to its reader "
    "(priority policy `pinned_client`, as each partition consumer of a group is). The last four columns split the "
    "jetstation path in two: a jetstation producer's station read by a raw pull consumer (explicit acks, not "
    "pinned), and raw async-nats publishes (no ids, no order guard) into a station read by a jetstation group.",
    f"Reproduce with `{command}`.", "",
    "| round | messages/s offered | raw p50 ms | raw p99 ms | jetstation p50 ms | jetstation p99 ms | p99 × raw "
    "| raw with headers p50 ms | p99 ms | raw, pinned reader p50 ms | p99 ms "
    "| jetstation producer, raw reader p50 ms | p99 ms | raw producer, jetstation group p50 ms | p99 ms |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
    f"Median p99 ratio: **{median:.2f}×** (target p99 ≤ 2× raw: {verdict}).",
]))

# Memory.
runs = lines("memory.jsonl")
mrows = []
for m in runs:
    tenths = m["rss_by_tenth_mib"]
    later = tenths[1:] or tenths
    mrows.append(
        f"| {m['count']:,} | {m['peak_rss_mib']:.0f} MiB | {m['rss_before_mib']:.0f} MiB | "
        f"{min(later):.0f}–{max(later):.0f} MiB | {m['seconds']:.1f} s | ≤ 96 MiB (buffer + 32 MiB) | "
        f"{'met' if m['peak_rss_mib'] <= 96 else '**missed**'} |")
section("Producer peak memory", "\n".join([
    f"{machine} One Rust producer enqueues messages of {runs[0]['size']} B (4 partitions, 100 keys) with the "
    "default buffer (64 MiB of queued and unconfirmed messages, each counted with its headers, subject and 512 bytes "
    "of bookkeeping), keeps no receipts, then flushes; every message was stored. The resident memory is read after "
    "each tenth of the sends; the column shows its range from the second tenth on (flat when narrow).",
    f"Reproduce with `{command}`.", "",
    "| messages | peak resident memory | before sending | resident during the sends | time | target | |",
    "|---|---|---|---|---|---|---|", *mrows]))
