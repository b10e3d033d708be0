"""HR service (Python): registers the `employee` schema, declares the
`employee-changes` station and publishes every change of every employee,
keyed by employee id so each employee's changes stay in order."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import jetstation

DEPARTMENTS = ["engineering", "finance", "sales", "support"]
CHANGES = ["hired", "salary review", "team move", "promotion"]


def history(employees: int) -> List[Dict[str, Any]]:
    """Four changes per employee, interleaved the way HR records them."""
    out = []
    for step, change in enumerate(CHANGES):
        for n in range(1, employees + 1):
            out.append({
                "id": f"e-{n}", "version": step + 1, "name": f"Employee {n}",
                "department": DEPARTMENTS[(n + step) % len(DEPARTMENTS)],
                "salary": 3000 + 100 * n + 250 * step, "currency": "EUR", "change": change,
            })
    return out


def say(text: str) -> None:
    print(text, flush=True)


async def main() -> None:
    url, employees = os.environ["NATS_URL"], int(os.environ.get("EMPLOYEES", "25"))
    async with await jetstation.connect(url, name="hr-service") as client:
        schema = (Path(__file__).parent / "employee.schema.json").read_text()
        version = await client.register_schema("employee", "json_schema", schema)
        say(f"registered schema employee v{version.version} (JSON Schema)")
        await client.create_station("employee-changes", partitions=4, max_deliveries=3, schema="employee")
        say("station employee-changes: 4 partitions, dead letter after 3 deliveries, schema employee")

        changes = history(employees)
        started = time.monotonic()
        async with await client.producer("employee-changes") as producer:
            handles = [await producer.enqueue(change, key=change["id"]) for change in changes]
            for handle in handles:
                await handle
            sent_in = time.monotonic() - started
            say(f"published {len(changes)} changes for {employees} employees in {sent_in * 1000:.0f} ms")

            malformed = dict(changes[0], version=9, salary="a lot")
            try:
                await producer.send(malformed, key=malformed["id"])
                refused = "NOT refused"
            except jetstation.SchemaValidationError as error:
                refused = error.message
                say(f"refused before sending: {error.message}")

            # Valid for the schema, but payroll has no rate for this currency.
            poison = dict(changes[-1], id="e-7", version=5, salary=4100, currency="XTS", change="relocation")
            await producer.send(poison, key=poison["id"])
            say("published e-7 v5 (currency XTS: payroll cannot convert it yet)")
    print("RESULT " + json.dumps({
        "sent": len(changes) + 1, "employees": employees, "seconds": sent_in, "refused": refused,
    }), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
