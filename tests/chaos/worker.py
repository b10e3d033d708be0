"""The Python producer and member processes of the chaos suite.

`python worker.py produce|consume`, configured by the CHAOS_* variables that
`chaos run --lang python` sets. The history format is the Rust workers'
(one JSON line per event, one write per line on a file opened for
appending), so the same checker judges both.
"""
import asyncio
import json
import logging
import os
import sys
import time

import jetstation

if os.environ.get("JETSTATION_LOG"):
    # A run with JETSTATION_LOG set: the core's events with their times, as
    # the Rust workers print them.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s", level=logging.DEBUG)

def var(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(f"{name} is not set (run through `chaos run --lang python`)")
    return value


class History:
    def __init__(self) -> None:
        self.fd = os.open(var("CHAOS_HISTORY"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, record: dict) -> None:
        record["t"] = time.time()
        os.write(self.fd, (json.dumps(record) + "\n").encode())


async def connect() -> jetstation.Client:
    urls = var("CHAOS_URLS").split(",")
    while True:
        try:
            return await jetstation.connect(urls, request_timeout=5, max_reconnect_delay=0.5)
        except jetstation.JetstationError as e:
            print(f"chaos worker: cannot connect yet: {e}", file=sys.stderr)
            await asyncio.sleep(0.5)  # retry interval while the cluster starts


def partition_of(key: str, partitions: int) -> int:
    return jetstation.partition_of(key, partitions)


async def produce() -> int:
    history = History()
    client = await connect()
    station = var("CHAOS_STATION")
    partitions = int(var("CHAOS_PARTITIONS"))
    keys = int(var("CHAOS_KEYS"))
    rate = int(var("CHAOS_RATE"))
    duration = float(var("CHAOS_DURATION"))
    producer = await client.producer(station, delivery_timeout=60)
    pending: "set[asyncio.Task[None]]" = set()

    async def settle(i: int, key: str, n: int, sent: float, handle: jetstation.SendHandle) -> None:
        try:
            r = await handle
            history.write({"ev": "send", "i": i, "key": key, "n": n, "partition": r.partition,
                           "ok": True, "seq": r.sequence, "msg_id": r.msg_id,
                           "duplicate": r.duplicate, "sent": sent})
        except jetstation.JetstationError as e:
            history.write({"ev": "send", "i": i, "key": key, "n": n,
                           "partition": partition_of(key, partitions), "ok": False,
                           "error": e.kind, "message": e.message, "sent": sent})

    tick = 0.02
    per_tick = max(1, int(rate * tick))
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < duration:
        for _ in range(per_tick):
            k = i % keys
            n = i // keys
            key = f"k{k}"
            sent = time.time()
            handle = await producer.enqueue(json.dumps({"key": key, "n": n}), key=key)
            task = asyncio.ensure_future(settle(i, key, n, sent, handle))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.sleep(tick)  # the send rate
    if pending:
        await asyncio.gather(*pending)
    await producer.close()
    return 0


async def consume() -> int:
    history = History()
    member = var("CHAOS_MEMBER")
    history.write({"ev": "start", "member": member, "pid": os.getpid()})
    client = await connect()
    while True:
        try:
            consumer = await client.consumer(
                var("CHAOS_STATION"), var("CHAOS_GROUP"), concurrency=16,
                ack_wait=int(var("CHAOS_ACK_WAIT_MS")) / 1000,
                handover_timeout=int(var("CHAOS_HANDOVER_MS")) / 1000,
                exactly_once=os.environ.get("CHAOS_EXACTLY_ONCE") == "1")
            break
        except jetstation.JetstationError as e:
            print(f"chaos member: cannot join yet: {e}", file=sys.stderr)
            await asyncio.sleep(0.5)  # retry interval while leaders are elected

    async def watch_health() -> None:
        while True:
            parts = await consumer.health()
            history.write({"ev": "health", "member": member, "partitions": [
                {"partition": p.partition, "in_sync": p.in_sync, "held": p.held,
                 "undelivered": p.undelivered, "last_error": p.last_error}
                for p in parts if p.owned]})
            await asyncio.sleep(2)  # the period of the member's health records

    handler_s = int(var("CHAOS_HANDLER_MS")) / 1000

    async def handle(m: jetstation.Delivery) -> None:
        started = time.time()
        # The handler's own work (a database write, say), so that a member
        # holds messages when a fault hits it.
        await asyncio.sleep(handler_s)
        body = json.loads(m.payload)
        history.write({"ev": "handled", "member": member, "key": m.key, "n": body["n"],
                       "partition": m.partition, "seq": m.sequence, "msg_id": m.msg_id,
                       "deliveries": m.deliveries, "redelivered": m.deliveries > 1,
                       "started": started})

    watcher = asyncio.ensure_future(watch_health())
    try:
        await consumer.consume(handle)
    finally:
        watcher.cancel()
    return 0


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in ("produce", "consume"):
        raise SystemExit("usage: worker.py produce|consume")
    sys.exit(asyncio.run(produce() if role == "produce" else consume()))
