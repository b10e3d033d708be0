"""Produce throughput from Python: ``produce.py <url> <station> <count> <size>``.

Prints one JSON line per mode. Run by ``scripts/bench-produce.sh`` (not a test).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import jetstation


async def run(url: str, station: str, count: int, size: int) -> None:
    client = await jetstation.connect(url)
    payload = b"x" * size
    keys = [f"k{k}" for k in range(100)]
    for mode in ("enqueue per message", "send_batch"):
        name = f"{station}-{mode.split()[0]}"
        try:
            await client.delete_station(name)
        except jetstation.NotFoundError:
            pass
        await client.create_station(name)
        producer = await client.producer(name)
        started = time.perf_counter()
        if mode == "send_batch":
            await producer.send_batch([(payload, keys[i % 100]) for i in range(count)])
        else:
            handles = [await producer.enqueue(payload, key=keys[i % 100]) for i in range(count)]
            for h in handles:
                await h
        seconds = time.perf_counter() - started
        assert (await client.station(name)).messages == count
        print(json.dumps({"client": "jetstation (Python)", "mode": mode, "count": count,
                          "size": size, "seconds": round(seconds, 4), "rate": round(count / seconds)}))
        await producer.close()
        await client.delete_station(name)  # the next mode starts on an empty store
    await client.close()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
