"""Turns the perf recordings of the two readers in scripts/bench-profile.sh
(a raw async-nats pull consumer and a jetstation consumer group reading the
same stored messages) into a BENCHMARKS.md table: each reader's CPU per
message, split by what its stack shows it doing."""

import json
import re
import sys
from collections import Counter

from benchmarks_md import measured, nats_server, rustc, write_section

READERS = [
    ("raw", "async-nats (raw)", "pull consumer, explicit ack per message"),
    ("group", "jetstation (Rust)", "consumer group, concurrency 16, ordered commits"),
]

# What a sample's stack says the reader is doing: the first of these whose
# pattern matches a frame of the stack names the sample (the order matters:
# the scheduler reads the pull inside its own loop, so the pull comes after
# the scheduler's steps and before the rest of the scheduler).
WORK = [
    ("commits (coalesced acks, dropping settled messages)",
     re.compile(r"jetstation::consumer::committer::")),
    ("handing out (a delivery's strings)", re.compile(r"Scheduler::hand_out")),
    ("admitting (metadata, key, book)",
     re.compile(r"Scheduler::on_fetched|Scheduler::on_pulled")),
    ("reading the pull",
     re.compile(r"async_nats::jetstream::consumer::pull::|jetstation::consumer::fetch::Open|select_all::SelectAll")),
    ("scheduler, other (settling, commit decisions)",
     re.compile(r"jetstation::consumer::scheduler::")),
    ("application loop (handler, ack or settle)",
     re.compile(r"jetstation::consumer::Consumer::|jetstation::consumer::delivery::|jetstation::consumer::handle|"
                r"handle_count|consume_read::main")),
    ("connection (socket, parsing)",
     re.compile(r"async_nats::connection::|async_nats::ConnectionHandler|async_nats::connect_with_options")),
]
OTHER = "other (runtime, kernel)"


def stacks(path):
    """The frames (symbols) of each sample in `perf script -F tid,ip,sym` output."""
    stack = None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if stack is not None:
                    yield stack
                stack = None
            elif not line.startswith("\t"):
                # The sample's line (its thread id, padded with spaces when
                # short); its frames follow, each on a line of its own that
                # starts with a tab.
                stack = []
            elif stack is not None:
                parts = line.strip().split(" ", 1)
                stack.append(parts[1] if len(parts) > 1 else "")
    if stack is not None:
        yield stack


def main():
    directory, frequency, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = []
    for name, client, mode in READERS:
        result = json.loads(open(f"{directory}/read-{name}.json").read().strip().splitlines()[-1])
        server_ticks = int(open(f"{directory}/read-{name}.server").read())
        work = Counter()
        for stack in stacks(f"{directory}/read-{name}.txt"):
            label = OTHER
            for title, pattern in WORK:
                if any(pattern.search(frame) for frame in stack):
                    label = title
                    break
            work[label] += 1
        total = sum(work.values()) or 1
        cpu = result["cpu_us_per_message"]
        server = server_ticks / 100 * 1e6 / result["count"]
        rows.append((client, mode, result, cpu, server, {k: v / total * cpu for k, v in work.items()}))
    raw_rate = rows[0][2]["rate"]
    count = rows[0][2]["count"]
    titles = [t for t, _ in WORK] + [OTHER]
    lines = [
        f"{measured(rustc(), nats_server())} {count:,} stored messages of 256 B (1 partition, 100 keys, file "
        "storage, one nats-server), read whole by each reader, each in a process of its own recorded with `perf "
        f"record --call-graph dwarf` at {frequency} Hz (the profiler's own cost is in the figures). Reader CPU is the "
        "reading process's user + system time over the read; server CPU is nats-server's over the reader's whole "
        "run (with its consumer's creation and deletion). The reader's CPU is split by the share of its samples "
        "whose stack shows each step (a sample counts for the first step found, in the order of the columns).",
        f"Reproduce with `{command}`.",
        "",
        "| reader | mode | msgs/s | × raw | server µs/msg | reader µs/msg | " + " | ".join(titles) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(titles),
    ]
    for client, mode, result, cpu, server, split in rows:
        lines.append(
            f"| {client} | {mode} | {result['rate']:,} | {result['rate'] / raw_rate:.2f}× | {server:.2f} | {cpu:.2f} | "
            + " | ".join(f"{split.get(t, 0):.2f}" for t in titles)
            + " |"
        )
    write_section("Where the time goes when consuming on one node", "\n".join(lines))


if __name__ == "__main__":
    main()
