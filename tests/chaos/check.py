#!/usr/bin/env python3
"""Judges a chaos run from its histories alone (JSON lines), knowing nothing
of jetstation's API.

Inputs in DIR: producer.jsonl (one "send" record per message with its
result), m1.jsonl / m2.jsonl (one "handled" record per message a member
ran), faults.jsonl (what broke, from when to when), consumers.json (the most
consumers the cluster held at once, and the bound).

Rules, each counted per fault (the fault that was active, or last began,
when the message was confirmed):
- lost: a confirmed message that no member handled;
- stalled: a confirmed message first handled later than DEADLINE_AFTER
  seconds after the last fault ended;
- inversions: two confirmed messages of one key whose first deliveries
  happened in the opposite order of their sending;
- unflagged repeats: a message handled again without being marked as a
  redelivery. Excused, and counted apart as "ran through a freeze": a run
  that started before its member was SIGSTOPped and ended after (no library
  can stop a handler that is running when its process stops; its partition
  went to the other member meanwhile). Runs record when they started;
  histories without that excuse nothing;
- stored twice: one sent message delivered under two stream sequences;
- failed then confirmed: a send that failed, followed (in send order) by a
  confirmed send to the same partition;
- with --exactly-once, handled twice: a message whose handler ran more than
  once. One repeat is excused, and counted apart as "cut by a kill": the
  first run was by a member SIGKILLed after it (or while the signal was on
  its way), or cut off the network or SIGSTOPped after it, that ran no other
  message of the same key in between (a member cut off cannot store its
  record either, nor one stopped between its handler's return and its
  record's store). A handler's
  effect and the group's record of it are not one transaction (see the
  exactly_once module of the core): a run is recorded after the handler
  returns, and a member starts a key's next message only once the previous
  one is recorded. So of a killed member's runs, only the last one of each
  key can have been cut before its record; how long before the kill it ran
  depends on how long the record waited (a record sent to a node that died
  waits for the new stream leader). The oldest excused run is printed. A
  second run is excused as well when either run ran through a freeze.
Not a violation, counted per fault as well: flagged repeats, messages run
again and marked as redeliveries (what at-least-once allows; their number
is the work a fault cost twice).
It also prints, per fault, the time from the fault's start to the first
handling, on every partition, of a message sent after the fault began
(median and max over partitions), and
writes everything to DIR/summary.json. Exits 1 on any violation.
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def read(path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut by SIGKILL
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--deadline-after", type=float, required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--exactly-once", action="store_true")
    args = ap.parse_args()
    d = args.dir

    sends = [r for r in read(d / "producer.jsonl") if r.get("ev") == "send"]
    handled = []
    for m in sorted(d.glob("m*.jsonl")):
        handled += [r for r in read(m) if r.get("ev") == "handled"]
    faults = read(d / "faults.jsonl")
    consumers = json.loads((d / "consumers.json").read_text()) if (d / "consumers.json").exists() else {}
    if not sends or not faults:
        print("chaos check: no history to judge (the run failed before it started)")
        return 1
    faults.sort(key=lambda f: f["start"])
    names = ["before faults"] + [f["fault"] for f in faults]
    freezes = defaultdict(list)  # member -> start of each SIGSTOP
    for f in faults:
        if f["fault"].startswith("sigstop member "):
            freezes[f["fault"].split()[-1]].append(f["start"])

    def through_freeze(r):
        started = r.get("started")
        return started is not None and any(started < s <= r["t"] for s in freezes.get(r.get("member"), []))

    def fault_at(t):
        idx = 0
        for i, f in enumerate(faults):
            if f["start"] <= t:
                idx = i + 1
        return idx

    counts = [defaultdict(int) for _ in names]
    confirmed = {r["msg_id"]: r for r in sends if r.get("ok")}
    for r in sends:
        counts[fault_at(r["t"])]["sent"] += 1
        if r.get("ok"):
            counts[fault_at(r["t"])]["confirmed"] += 1

    handled.sort(key=lambda r: r["t"])
    first = {}
    seqs = defaultdict(set)
    through = set()  # the runs excused for a freeze: (member, msg_id, t)
    for r in handled:
        mid = r.get("msg_id")
        seqs[(r.get("key"), r.get("n"))].add(r.get("seq"))
        if mid in first:
            if r.get("redelivered"):
                counts[fault_at(r["t"])]["flagged repeats"] += 1
            else:
                if through_freeze(r):
                    through.add((r.get("member"), mid, r["t"]))
                else:
                    counts[fault_at(r["t"])]["unflagged repeats"] += 1
        else:
            first[mid] = r

    last_end = max(f["end"] for f in faults)
    deadline = last_end + args.deadline_after
    for mid, s in confirmed.items():
        f = fault_at(s["t"])
        h = first.get(mid)
        if h is None:
            counts[f]["lost"] += 1
        elif h["t"] > max(deadline, s["t"] + args.deadline_after):
            counts[f]["stalled"] += 1

    for (key, n), ss in seqs.items():
        if len(ss) > 1:
            counts[0]["stored twice"] += 1

    by_key = defaultdict(list)
    for mid, s in confirmed.items():
        if mid in first:
            by_key[s["key"]].append((s["n"], first[mid]["t"], mid))
    for key, items in by_key.items():
        items.sort()
        for (n1, t1, _), (n2, t2, m2) in zip(items, items[1:]):
            if t2 < t1:
                counts[fault_at(confirmed[m2]["t"])]["inversions"] += 1

    failed_at = {}
    for r in sorted(sends, key=lambda r: r["i"]):
        p = r["partition"]
        if not r.get("ok"):
            failed_at.setdefault(p, r["i"])
        elif p in failed_at:
            counts[fault_at(r["t"])]["failed then confirmed"] += 1

    # Time from each fault to the first handling, on every partition, of a
    # message sent after the fault began (handlers that work through a
    # backlog of earlier messages say nothing of the recovery). Histories
    # without send times: the first handling of any message not handled
    # before.
    partitions = sorted({r["partition"] for r in handled})
    firsts_by_partition = defaultdict(list)  # partition -> (sent, first handled)
    for mid, r in first.items():
        sent = confirmed.get(mid, {}).get("sent", r["t"])
        firsts_by_partition[r["partition"]].append((sent, r["t"]))
    recovery = []
    for f in faults:
        gaps = []
        for p in partitions:
            after = [t for sent, t in firsts_by_partition[p] if sent >= f["start"]]
            if after:
                gaps.append(max(0.0, min(after) - f["start"]))
        recovery.append({
            "fault": f["fault"],
            "median_s": round(statistics.median(gaps), 3) if gaps else None,
            "max_s": round(max(gaps), 3) if gaps else None,
            "partitions": len(gaps),
            "gaps_s": [round(g, 3) for g in gaps],
        })

    rules = ["lost", "stalled", "inversions", "unflagged repeats", "stored twice", "failed then confirmed"]
    cut_by_kill = 0
    oldest_cut = 0.0  # how long before its member's kill the oldest excused run ran
    if args.exactly_once:
        rules.append("handled twice")
        kills = defaultdict(list)  # member -> (start, end) of each SIGKILL, SIGSTOP or cut-off fault
        for f in faults:
            if f["fault"].startswith(("sigkill member ", "sigstop member ", "isolate member ")):
                kills[f["fault"].split()[-1]].append((f["start"], f["end"]))
        runs = defaultdict(list)
        by_member_key = defaultdict(list)  # (member, key) -> times of its runs
        for r in handled:
            runs[r.get("msg_id")].append(r)
            by_member_key[(r.get("member"), r.get("key"))].append((r["t"], r.get("msg_id")))

        def last_of_key_before(earlier, end):
            # No run of another message of the key by the same member after
            # `earlier` and before the kill took effect.
            return not any(earlier["t"] < t <= end and mid != earlier.get("msg_id")
                           for t, mid in by_member_key[(earlier.get("member"), earlier.get("key"))])

        for mid, rs in runs.items():
            for earlier, later in zip(rs, rs[1:]):
                frozen = [r for r in (earlier, later) if through_freeze(r)]
                if frozen:
                    through.update((r.get("member"), mid, r["t"]) for r in frozen)
                    continue
                # The fault's start is stamped just before the signal is sent:
                # a run the killed member logged after it (before its end, the
                # restart) happened while the signal was on its way.
                cut = [start for start, end in kills.get(earlier.get("member"), [])
                       if earlier["t"] <= end and start <= later["t"] and last_of_key_before(earlier, end)]
                if cut:
                    cut_by_kill += 1
                    oldest_cut = max(oldest_cut, min(cut) - earlier["t"])
                else:
                    counts[fault_at(later["t"])]["handled twice"] += 1
    print(f"chaos check ({args.label}): {len(sends)} sent, {len(confirmed)} confirmed, "
          f"{len(handled)} deliveries handled, {len(first)} distinct")
    columns = ["lost", "stalled", "invers.", "unflagged", "twice", "fail>ok"] + (["ran twice"] if args.exactly_once else [])
    header = (f"  {'fault':<26} {'confirmed':>9} " + " ".join(f"{r:>9}" for r in columns)
              + f" {'flagged':>9}  first sent after it handled (median/max)")
    print(header)
    for i, name in enumerate(names):
        c = counts[i]
        rec = ""
        if i > 0:
            r = recovery[i - 1]
            rec = f"  {r['median_s']}s / {r['max_s']}s" if r["median_s"] is not None else "  -"
        print(f"  {name:<26} {c['confirmed']:>9} " + " ".join(f"{c[r]:>9}" for r in rules)
              + f" {c['flagged repeats']:>9}" + rec)
    totals = {r: sum(c[r] for c in counts) for r in rules}
    flagged = {name: counts[i]["flagged repeats"] for i, name in enumerate(names)}
    print("  total: " + ", ".join(f"{v} {k}" for k, v in totals.items())
          + f" (not violations: {sum(flagged.values())} flagged repeats)")
    ran_through_freeze = len(through)
    if ran_through_freeze:
        print(f"  {ran_through_freeze} repeated runs excused: they ran through a member's freeze")
    if args.exactly_once:
        print(f"  exactly once: {len(handled) - len(first)} repeated runs, {cut_by_kill} of them cut by a "
              f"member's kill, freeze or cut-off (its last run of the key before it; the oldest {oldest_cut:.3f} s "
              f"before it)")
    bad = sum(totals.values())
    if consumers:
        print(f"  consumers on the cluster: at most {consumers['max']} (bound {consumers['bound']})")
        if consumers["max"] > consumers["bound"]:
            print("  FAIL: consumers piled up; at the most, at "
                  f"{consumers.get('at_s', 0):.1f}: " + ", ".join(consumers.get("at_max", [])))
            bad += 1
    if len(confirmed) == 0:
        print("  FAIL: nothing was confirmed")
        bad += 1
    (d / "summary.json").write_text(json.dumps({
        "label": args.label, "sent": len(sends), "confirmed": len(confirmed),
        "totals": totals, "recovery": recovery, "consumers": consumers, "cut_by_kill": cut_by_kill,
        "ran_through_freeze": ran_through_freeze, "flagged_repeats": flagged,
        "oldest_cut_s": round(oldest_cut, 3),
    }, indent=1))
    print("chaos check: " + ("passed" if bad == 0 else "FAILED"))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
