#!/usr/bin/env python3
"""The chaos checker judged on small hand-made histories, before it judges
real ones: its exactly-once rule counts a second run of a message unless
the first was the killed (frozen, or cut-off) member's last run of that key before
the fault, and
a repeat that is not flagged as a redelivery counts unless it ran through
its member's freeze."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHECK = Path(__file__).with_name("check.py")


def judge(member_runs, fault="sigkill member m2", exactly_once=True, flagged=False):
    """Runs the checker on a history of four messages of key k (one
    partition) and the given runs (member, n, t, deliveries[, started]);
    `fault` hits m2 at t=10 and ends at t=12."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        sends = [{"ev": "send", "i": n, "key": "k", "msg_id": f"id{n}", "n": n, "ok": True,
                  "partition": 0, "seq": n + 1, "t": 1.0 + n * 0.01} for n in range(4)]
        (d / "producer.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sends))
        faults = [{"fault": fault, "start": 10.0, "end": 12.0}]
        (d / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in faults))
        for member in ("m1", "m2"):
            lines = [json.dumps({"ev": "handled", "member": member, "key": "k", "n": run[1],
                                 "partition": 0, "seq": run[1] + 1, "msg_id": f"id{run[1]}",
                                 "deliveries": run[3], "redelivered": run[3] > 1, "t": run[2],
                                 "started": run[4] if len(run) > 4 else run[2] - 0.02}) + "\n"
                     for run in member_runs if run[0] == member]
            (d / f"{member}.jsonl").write_text("".join(lines))
        out = subprocess.run([sys.executable, str(CHECK), str(d), "--deadline-after", "30"]
                             + (["--exactly-once"] if exactly_once else []),
                             capture_output=True, text=True, timeout=60)
        summary = json.loads((d / "summary.json").read_text())
        if flagged:
            return summary["flagged_repeats"]
        if not exactly_once:
            return (out.returncode, summary["totals"]["unflagged repeats"],
                    summary["ran_through_freeze"])
        return out.returncode, summary["totals"]["handled twice"], summary["cut_by_kill"]


def main():
    # m2 ran messages 0-3 (3 last, 5 s before the kill, its record still
    # waiting); m1 ran 3 again after the kill: excused, however long before.
    base = [("m2", 0, 2.0, 1), ("m2", 1, 3.0, 1), ("m2", 2, 4.0, 1), ("m2", 3, 5.0, 1)]
    code, twice, cut = judge(base + [("m1", 3, 11.0, 2)])
    assert (code, twice, cut) == (0, 0, 1), (code, twice, cut)
    # m1 ran 2 again: m2 had started the key's next message (3) after it, so
    # 2 was recorded; its second run is a violation.
    code, twice, cut = judge(base + [("m1", 2, 11.0, 2), ("m1", 3, 11.1, 2)])
    assert (code, twice, cut) == (1, 1, 1), (code, twice, cut)
    # A second run by a member that was never killed is never excused.
    code, twice, cut = judge([("m1", n, 2.0 + n, 1) for n in range(4)] + [("m1", 3, 11.0, 2)])
    assert (code, twice, cut) == (1, 1, 0), (code, twice, cut)
    # m2 is frozen from t=10 to t=12 while it runs message 3 (started at
    # 9.99); m1 runs 3 at 11 as a redelivery, m2 finishes its run at 12.01:
    # that run is not flagged, and excused.
    frozen = "sigstop member m2"
    runs = base[:3] + [("m1", 3, 11.0, 2), ("m2", 3, 12.01, 1, 9.99)]
    assert judge(runs, frozen, exactly_once=False) == (0, 0, 1)
    assert judge(runs, frozen) == (0, 0, 0), "nor counted as handled twice"
    # A run m2 starts after the freeze, of a message m1 ran: a violation.
    runs = base[:3] + [("m1", 3, 11.0, 2), ("m2", 3, 12.05, 1, 12.03)]
    assert judge(runs, frozen, exactly_once=False) == (1, 1, 0)
    # m2 is cut off the network from t=10 to t=12 after running message 3,
    # whose record could not reach the broker: m1 runs 3 again, excused as
    # for a kill. A run of m2 during the cut of a message m1 then ran first
    # is not.
    isolated = "isolate member m2"
    assert judge(base + [("m1", 3, 11.0, 2)], isolated) == (0, 0, 1)
    runs = base[:3] + [("m1", 3, 11.0, 2), ("m2", 3, 11.5, 1, 11.48)]
    assert judge(runs, isolated, exactly_once=False) == (1, 1, 0)
    # m2 ran message 3 and returned just before it was frozen, its record not
    # stored yet: m1 runs 3 again during the freeze, excused as for a kill.
    assert judge(base[:3] + [("m2", 3, 9.999, 1), ("m1", 3, 11.0, 2)], frozen) == (0, 0, 1)
    # Flagged repeats are no violation, but counted per fault: m1's run of
    # 3 after the kill, as a redelivery.
    assert judge(base + [("m1", 3, 11.0, 2)], exactly_once=False, flagged=True) == {
        "before faults": 0, "sigkill member m2": 1}
    print("test result: ok. 9 passed; 0 failed (chaos checker)")


if __name__ == "__main__":
    main()
