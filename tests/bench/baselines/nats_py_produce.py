"""Produce throughput of the official nats-py client (acked JetStream
publishes): sequential awaits, and pipelined with 1,000 concurrent publishes.
``nats_py_produce.py <url> <stream> <count> <size>``; prints JSON lines."""

import asyncio
import json
import sys
import time

import nats


async def main(url: str, name: str, count: int, size: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    payload = b"x" * size
    for mode in ("sequential await js.publish", "pipelined, 1000 concurrent"):
        stream = f"{name}{'seq' if mode.startswith('seq') else 'pipe'}"
        try:
            await js.delete_stream(stream)
        except Exception:
            pass
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        n = count // 10 if mode.startswith("seq") else count  # sequential is slow
        started = time.perf_counter()
        if mode.startswith("seq"):
            for i in range(n):
                await js.publish(f"{stream}.k{i % 100}", payload)
        else:
            for start in range(0, n, 1000):
                await asyncio.gather(
                    *(js.publish(f"{stream}.k{i % 100}", payload) for i in range(start, min(n, start + 1000)))
                )
        seconds = time.perf_counter() - started
        print(json.dumps({"client": "nats-py", "mode": mode, "count": n, "size": size,
                          "seconds": round(seconds, 4), "rate": round(n / seconds)}))
    await nc.close()


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
