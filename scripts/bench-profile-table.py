"""Turns the perf recordings of scripts/bench-profile.sh into BENCHMARKS.md
tables: CPU per message by process (user and kernel), and where nats-server
spends it (functions on the stack, inclusive)."""

import json
import re
import sys
from collections import Counter

from benchmarks_md import measured, nats_server, rustc, write_section
from go_symbols import GoSymbols, _section

RUNS = [
    ("raw", "async-nats (raw)", "pipelined publishes, window 1,024, no ids"),
    ("batches", "async-nats (raw)", "serial atomic batches of 1,000, with ids and keys"),
    ("fast", "async-nats (raw)", "one fast-ingest batch (gap `fail`), with ids and keys"),
    ("core", "jetstation (Rust)", "producer, 1 partition, default options"),
]

# What a function on nats-server's stack says the server is doing; the
# first match from the leaf up names the sample.
SERVER_WORK = [
    ("staging an atomic batch in a store of its own", re.compile(r"newBatchStore|\(\*atomicBatch\)|batchStagedDiff|\.checkMsgHeadersPreClusteredProposal.*batch|newFileStoreWithCreated|\(\*fileStore\)\.(Delete|Stop|purge)")),
    ("writing messages to the stream's file store", re.compile(r"\(\*fileStore\)\.|\(\*msgBlock\)\.")),
    ("checking ids for duplicates", re.compile(r"\(\*stream\)\.(checkMsgId|storeMsgId|purgeMsgIds)|ddentries|ddmap")),
    ("finding headers in each message", re.compile(r"sliceHeader|getHeader|getHeaderKeyIndex")),
    ("publish path (headers, checks, acks)", re.compile(r"\(\*stream\)\.process|\(\*stream\)\.queueInbound|\(\*stream\)\.internalLoop|processJetStream")),
    ("reading and routing client messages", re.compile(r"\(\*client\)\.(readLoop|parse|processInbound|deliverMsg|processMsgResults)|\(\*Sublist\)")),
    ("writing to client connections", re.compile(r"\(\*client\)\.(flushOutbound|writeLoop|flushClients)|\(\*sendq\)|outq")),
    ("Go runtime (memory, scheduler, GC)", re.compile(r"^runtime\.")),
]


def samples(path):
    """(pid, [(ip, symbol, dso), ...] leaf first) for each recorded sample."""
    pid, stack = None, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if pid is not None:
                    yield pid, stack
                pid, stack = None, []
            elif not line.startswith("\t"):
                pid, stack = int(line.split()[0]), []
            else:
                parts = line.strip().split(" ", 1)
                rest = parts[1] if len(parts) > 1 else ""
                m = re.match(r"(.*) \((.*)\)$", rest)
                sym, dso = (m.group(1), m.group(2)) if m else (rest, "")
                stack.append((int(parts[0], 16), sym, dso))
    if pid is not None:
        yield pid, stack


def main():
    directory, server_bin, frequency, command = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    go = GoSymbols(server_bin)
    text_addr, text_offset, _ = _section(open(server_bin, "rb").read(), ".text")
    server_pid = int(open(f"{directory}/server.pid").read())

    def go_name(offset):
        # perf prints a frame of a file-backed executable as its offset in
        # the file; the text section maps that to the address.
        return go.name(offset + text_addr - text_offset) or "?"

    cpu_rows, work_rows, client_rows = [], [], []
    for name, client, mode in RUNS:
        result = json.loads(open(f"{directory}/{name}.json").read().strip().splitlines()[-1])
        count = result["count"]
        client_pid = int(open(f"{directory}/{name}.pid").read())
        spent = Counter()
        work = Counter()
        own = Counter()
        for pid, stack in samples(f"{directory}/{name}.txt"):
            if not stack:
                continue
            who = "server" if pid == server_pid else "client" if pid == client_pid else "other"
            kernel = stack[0][2] == "[kernel.kallsyms]"
            spent[who, kernel] += 1
            if who == "server":
                names = [go_name(ip) if dso.endswith("nats-server") else sym for ip, sym, dso in stack]
                label = "other"
                for title, pattern in SERVER_WORK:
                    if any(pattern.search(n) for n in names):
                        label = title
                        break
                work[label] += 1
            elif who == "client" and not kernel:
                own[re.sub(r"::h[0-9a-f]{16}$", "", stack[0][1])] += 1
        per_message = {k: v / frequency * 1e6 / count for k, v in spent.items()}
        server = per_message.get(("server", False), 0) + per_message.get(("server", True), 0)
        client_total = per_message.get(("client", False), 0) + per_message.get(("client", True), 0)
        cpu_rows.append((client, mode, result["rate"], per_message, server, client_total))
        total = sum(work.values()) or 1
        work_rows.append((client, mode, server, {k: v / total for k, v in work.items()}))
        if name == "core":
            total = sum(own.values()) or 1
            client_rows = [(s, v / total) for s, v in own.most_common(12)]

    raw_rate = cpu_rows[0][2]
    lines = [
        f"{measured(rustc(), nats_server())} "
        f"{json.loads(open(f'{directory}/raw.json').read())['count']:,} messages of 256 B to one nats-server "
        f"(file storage, R1), each run recorded system-wide with `perf record -a -g` at {frequency} Hz; CPU is "
        "samples over the frequency, divided by the messages sent. nats-server's functions are named from its own "
        "function table (`scripts/go_symbols.py`), as its release binary has no symbol table.",
        f"Reproduce with `{command}`.",
        "",
        "| client | shape | msgs/s | × raw | server µs/msg (user + kernel) | client µs/msg (user + kernel) |",
        "|---|---|---|---|---|---|",
    ]
    for client, mode, rate, pm, server, client_total in cpu_rows:
        lines.append(
            f"| {client} | {mode} | {rate:,.0f} | {rate / raw_rate:.2f}× "
            f"| {server:.2f} ({pm.get(('server', False), 0):.2f} + {pm.get(('server', True), 0):.2f}) "
            f"| {client_total:.2f} ({pm.get(('client', False), 0):.2f} + {pm.get(('client', True), 0):.2f}) |"
        )
    titles = [t for t, _ in SERVER_WORK] + ["other"]
    lines += [
        "",
        "Where nats-server's CPU goes (share of its samples; a sample counts for the first of these found on its stack):",
        "",
        "| client | shape | server µs/msg | " + " | ".join(titles) + " |",
        "|---|---|---|" + "---|" * len(titles),
    ]
    for client, mode, server, shares in work_rows:
        lines.append(
            f"| {client} | {mode} | {server:.2f} | "
            + " | ".join(f"{shares.get(t, 0) * 100:.0f} %" for t in titles)
            + " |"
        )
    lines += [
        "",
        "The Rust core's own functions, by share of the producer process's user-space samples (self time, top 12):",
        "",
        "| function | share |",
        "|---|---|",
    ]
    for symbol, share in client_rows:
        lines.append(f"| `{symbol[:110]}` | {share * 100:.1f} % |")
    write_section("Where the time goes when producing on one node", "\n".join(lines))


if __name__ == "__main__":
    main()
