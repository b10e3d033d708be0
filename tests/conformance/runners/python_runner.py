"""Conformance runner for Python: carries out operations read from stdin
(one JSON object per line) with the jetstation package and answers each on
stdout. It reports what happened; tests/conformance/run.py judges it."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import random
import sys
import time
from typing import Any, Dict, List, Optional, Set

import jetstation

clients: Dict[str, jetstation.Client] = {}
producers: Dict[str, jetstation.Producer] = {}
joined: Dict[str, jetstation.Consumer] = {}


def answer(value: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def generated(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    keys, size, prefix = spec.get("keys", 0), spec.get("size", 0), spec.get("prefix", "m-")
    return [
        {"payload": f"{prefix}{i}".ljust(size, "."), **({"key": f"k-{i % keys}"} if keys else {})}
        for i in range(spec["count"])
    ]


def start_of(value: Any) -> Any:
    return value["sequence"] if isinstance(value, dict) else value


async def payload_of(client: jetstation.Client, m: Dict[str, Any]) -> bytes:
    if "value" in m:
        return await client.encode_with_schema(m["schema"], m["value"])
    if "payload_b64" in m:
        return base64.b64decode(m["payload_b64"])
    return str(m["payload"]).encode()


async def connect(op: Dict[str, Any]) -> Dict[str, Any]:
    options: Dict[str, Any] = {"namespace": op.get("namespace")}
    for name in ("user", "password", "token", "request_timeout"):
        if name in op:
            options[name] = op[name]
    options.update(plain(op.get("options", {})))
    clients[op.get("as", "main")] = await jetstation.connect(op["url"], **options)
    return {}


async def station_producer(client: jetstation.Client, op: Dict[str, Any]) -> jetstation.Producer:
    """The producer a step's client keeps for its station (created once)."""
    name = f"{op.get('client', 'main')}/{op['station']}"
    if name not in producers:
        producers[name] = await client.producer(op["station"])
    return producers[name]


async def send(client: jetstation.Client, op: Dict[str, Any]) -> Dict[str, Any]:
    producer = producers[op["producer"]] if "producer" in op else await station_producer(client, op)
    messages = list(op.get("messages", [])) + (generated(op["generate"]) if "generate" in op else [])
    if op["op"] == "send_batch":  # one call; the batch carries payloads and keys
        receipts = await producer.send_batch([(await payload_of(client, m), m.get("key")) for m in messages])
    else:
        handles = []
        for m in messages:
            handles.append(
                await producer.enqueue(
                    await payload_of(client, m), key=m.get("key"), headers=m.get("headers"), msg_id=m.get("msg_id")
                )
            )
        receipts = [await h for h in handles]
    return {
        "receipts": [
            {"partition": r.partition, "sequence": r.sequence, "duplicate": r.duplicate, "msg_id": r.msg_id}
            for r in receipts
        ]
    }


def plain(options: Dict[str, Any]) -> Dict[str, Any]:
    """Contract options as Python takes them: "NaN" is the float (JSON has none)."""
    return {k: float(v) if v == "NaN" else v for k, v in options.items()}


def consumer_options(op: Dict[str, Any]) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if "start" in op:
        options["start"] = start_of(op["start"])
    for name in ("concurrency", "ack_wait", "handover_timeout", "redelivery_delay"):
        if name in op:
            options[name] = op[name]
    for name, value in plain(op.get("options", {})).items():
        if name == "start_sequence":  # one `start` takes a sequence or a datetime
            options["start"] = value
        elif name == "start_time":
            options["start"] = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            options[name] = value
    return options


async def consume(client: jetstation.Client, op: Dict[str, Any]) -> Dict[str, Any]:
    if "consumer" in op:
        consumer = joined.pop(op["consumer"])
    else:
        consumer = await client.consumer(op["station"], op["group"], **consumer_options(op))
    nack = {r["payload"]: r for r in op.get("nack", [])}
    fail: Set[str] = set(op.get("fail", []))
    until: Set[str] = set(op.get("until_payloads", []))
    count: int = op.get("count", 0)
    min_deliveries: int = op.get("min_deliveries", 0)
    crash_after: Optional[int] = op.get("crash_after")
    crash_wait: float = op.get("crash_wait", 0)  # seconds between the last ack and the crash
    crashing = False
    held: List[jetstation.Delivery] = []  # taken while crashing: never settled
    jitter = op.get("concurrency", 1) > 1
    records: List[Dict[str, Any]] = []
    second_settle: Optional[str] = None  # the error kind of acking a message twice
    acked = 0
    done = asyncio.Event()
    started = time.monotonic()

    def finished() -> bool:
        return acked >= count and not until and len(records) >= min_deliveries

    async def handle(d: jetstation.Delivery) -> None:
        nonlocal acked, second_settle, crashing
        if crashing:
            held.append(d)
            return
        text = d.payload.decode("utf-8", "replace")
        record: Dict[str, Any] = {
            "payload_b64": base64.b64encode(d.payload).decode(),
            "key": d.key,
            "headers": [list(h) for h in d.headers],
            "msg_id": d.msg_id,
            "partition": d.partition,
            "sequence": d.sequence,
            "deliveries": d.deliveries,
            "t_ms": round((time.monotonic() - started) * 1000),
        }
        if "decode" in op:  # only some messages are of the schema: others record null
            try:
                record["decoded"] = json.dumps(await client.decode_with_schema(op["decode"], d.payload))
            except jetstation.SchemaValidationError:
                record["decoded"] = None
        if jitter:  # let handlers of different keys overlap and finish out of order
            await asyncio.sleep(random.random() / 1000)
        rule = nack.get(text)
        if text in fail:
            record["action"] = "nack"
            records.append(record)
            d.nack(reason=f"rejected by handler: {text}")
        elif rule and d.deliveries <= rule["times"]:
            record["action"] = "nack"
            records.append(record)
            d.nack(delay=rule["delay"])
        else:
            record["action"] = "ack"
            records.append(record)
            d.ack()
            if op.get("settle_twice"):
                try:
                    d.ack()
                    second_settle = "none"
                except jetstation.JetstationError as error:
                    second_settle = error.kind
            acked += 1
            until.discard(text)
            if crash_after is not None and acked >= crash_after and not crashing:
                crashing = True
                await asyncio.sleep(crash_wait)
                answer({"ok": {"messages": records, "timed_out": False}})
                os._exit(0)  # a crash: nothing is closed, nothing more is committed
        if finished():
            done.set()

    tasks: Set[asyncio.Task[None]] = set()

    async def pump() -> None:
        async for delivery in consumer:
            task = asyncio.ensure_future(handle(delivery))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    pumping = asyncio.ensure_future(pump())
    timed_out = False
    if not finished():
        try:
            await asyncio.wait_for(done.wait(), op.get("timeout", 30))
        except asyncio.TimeoutError:
            timed_out = True
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    await consumer.close()
    pumping.cancel()
    await asyncio.gather(pumping, return_exceptions=True)
    result: Dict[str, Any] = {"messages": records, "timed_out": timed_out}
    if op.get("settle_twice"):
        result["second_settle"] = second_settle
    return result


async def dead_letters(client: jetstation.Client, op: Dict[str, Any]) -> Dict[str, Any]:
    deadline = time.monotonic() + op.get("timeout", 0)
    while True:
        letters = await client.dead_letters(op["station"])
        if len(letters) >= op.get("at_least", 0) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # dead letters are written as the last nack is processed
    return {
        "dead_letters": [
            {
                "sequence": dl.sequence,
                "origin_station": dl.origin_station,
                "origin_partition": dl.origin_partition,
                "origin_sequence": dl.origin_sequence,
                "group": dl.group,
                "deliveries": dl.deliveries,
                "last_error": dl.last_error,
                "key": dl.key,
                "payload_b64": base64.b64encode(dl.payload).decode(),
            }
            for dl in letters
        ]
    }


async def perform(op: Dict[str, Any]) -> Dict[str, Any]:
    kind = op["op"]
    if kind == "connect":
        return await connect(op)
    client = clients[op.get("client", "main")]
    if kind in ("create_station", "update_station"):
        settings = {k: op[k] for k in ("partitions", "max_deliveries", "schema", "replicas") if k in op}
        settings.update(plain(op.get("settings", {})))
        create = client.create_station if kind == "create_station" else client.update_station
        station = await create(op["name"], **settings)
        return {"name": station.name, "partitions": station.partitions, "max_deliveries": station.max_deliveries}
    if kind == "delete_key":
        await (await station_producer(client, op)).delete(op["key"])
        return {}
    if kind == "station_stats":
        stats = await client.station_stats(op["station"])
        return {"partitions": len(stats.partitions), "messages": sum(p.messages for p in stats.partitions),
                "dead_letters": stats.dead_letters, "state_keys": stats.state_keys}
    if kind == "purge_dead_letters":
        return {"purged": await client.purge_dead_letters(op["station"])}
    if kind == "groups":
        groups = await client.groups(op["station"])
        return {"names": [g.group for g in groups], "members": sum(len(g.members) for g in groups),
                "lag": sum(p.lag for g in groups for p in g.partitions)}
    if kind == "latest":
        entry = await client.latest(op["station"], op["key"])
        return {"payload": entry.payload.decode() if entry else None}
    if kind == "snapshot":
        return {"entries": {e.key: e.payload.decode() async for e in await client.snapshot(op["station"])}}
    if kind == "delete_station":
        await client.delete_station(op["name"])
        return {}
    if kind == "close_client":
        await client.close()
        return {}
    if kind == "station":
        station = await client.station(op["name"])
        return {"messages": station.messages, "dead_letters": station.dead_letters}
    if kind == "producer":
        options: Dict[str, Any] = {k: op[k] for k in ("buffer_bytes", "delivery_timeout") if k in op}
        if op.get("fail_when_full"):
            options["when_full"] = "fail"
        options.update(plain(op.get("options", {})))
        producers[op["as"]] = await client.producer(op["station"], **options)
        return {}
    if kind == "close_producer":
        await producers[op["producer"]].close()
        return {}
    if kind in ("send", "send_batch"):
        return await send(client, op)
    if kind == "join":
        joined[op["as"]] = await client.consumer(op["station"], op["group"], **consumer_options(op))
        return {}
    if kind == "consume":
        return await consume(client, op)
    if kind == "dead_letters":
        return await dead_letters(client, op)
    if kind == "replay_dead_letter":
        r = await client.replay_dead_letter(op["station"], op["sequence"])
        return {"partition": r.partition, "sequence": r.sequence}
    if kind == "register_schema":
        v = await client.register_schema(op["name"], op["format"], op["source"], message_type=op.get("message_type"))
        return {"version": v.version}
    if kind == "encode":
        data = await client.encode_with_schema(op["schema"], op["value"])
        return {"payload_b64": base64.b64encode(data).decode()}
    raise ValueError(f"unknown operation {kind}")


async def main() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        op = json.loads(line)
        try:
            answer({"ok": await perform(op)})
        except jetstation.JetstationError as error:
            answer({"error": {"kind": error.kind, "message": str(error)}})
        except Exception as error:  # reported, so the referee shows it as a miss
            answer({"error": {"kind": "unexpected", "message": f"{type(error).__name__}: {error}"}})
    for producer in producers.values():
        try:
            await producer.close()
        except jetstation.JetstationError:
            pass  # closed already, or its server is gone
    for client in clients.values():
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
