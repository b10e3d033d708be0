"""jetstation quickstart in Python: employee changes from HR to payroll.

Run against a nats-server (2.12+, JetStream enabled):

    NATS_URL=nats://127.0.0.1:4222 python examples/python/quickstart.py
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, List, Tuple

import jetstation

STATION = "employee-changes"

CHANGES: List[Tuple[str, Dict[str, Any]]] = [
    ("emp-1", {"field": "name", "value": "Ada Lovelace"}),
    ("emp-2", {"field": "salary", "value": 5200}),
    ("emp-1", {"field": "title", "value": "Engineer"}),
    ("emp-3", {"field": "salary", "value": "five thousand"}),  # malformed
    ("emp-2", {"field": "title", "value": "Manager"}),
]


async def main() -> None:
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    async with await jetstation.connect(url, name="quickstart-py") as client:
        try:
            await client.delete_station(STATION)
        except jetstation.NotFoundError:
            pass
        await client.create_station(STATION, partitions=2, max_deliveries=3)

        async with await client.producer(STATION) as producer:
            for employee, change in CHANGES:
                receipt = await producer.send(change, key=employee)
                print(f"sent {employee} -> partition {receipt.partition} seq {receipt.sequence}")

        applied: List[str] = []

        async def apply(message: jetstation.Delivery) -> None:
            change = json.loads(message.payload)
            if change["field"] == "salary" and not isinstance(change["value"], (int, float)):
                raise ValueError(f"salary is not a number: {change['value']!r}")
            applied.append(message.key or "")
            print(f"payroll applied {message.key} {change}")

        consumer = await client.consumer(STATION, "payroll", redelivery_delay=0.1)
        worker = asyncio.ensure_future(consumer.consume(apply))
        while not await client.dead_letters(STATION):
            # Poll until the dead letter exists (the test running this has a timeout).
            await asyncio.sleep(0.05)
        while len(applied) < len(CHANGES) - 1:
            # Poll until the good changes are applied.
            await asyncio.sleep(0.05)
        await consumer.close()
        await worker

        letter = (await client.dead_letters(STATION))[0]
        print(f"dead letter after {letter.deliveries} deliveries: {letter.last_error}")
        print(f"payroll applied {len(applied)} of {len(CHANGES)} changes")
        print("quickstart OK")


if __name__ == "__main__":
    asyncio.run(main())
