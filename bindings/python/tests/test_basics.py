"""Stations, producer and consumer from Python, against a real server."""

from __future__ import annotations

import asyncio

import pytest

import jetstation


async def test_round_trip_with_context_managers(client: jetstation.Client) -> None:
    station = await client.create_station("hr", partitions=2, max_deliveries=3)
    assert station.partitions == 2 and station.max_deliveries == 3
    async with await client.producer("hr") as producer:
        r = await producer.send({"name": "Ada"}, key="emp-1", headers={"source": "hr"})
        assert r.station == "hr" and r.sequence == 1 and not r.duplicate
        again = await producer.send(b"x", key="emp-1", msg_id="fixed")
        dup = await producer.send(b"x", key="emp-1", msg_id="fixed")
        assert dup.duplicate and dup.sequence == again.sequence
        handle = await producer.enqueue("text", key="emp-2")
        receipt = await handle
        assert receipt.msg_id.startswith(producer.producer_id)
        with pytest.raises(jetstation.InvalidArgumentError, match="already awaited"):
            await handle
        stored = await producer.enqueue("later", key="emp-2")
        await producer.flush()
        later = await stored  # already stored: the await does not suspend
        assert later.station == "hr" and later.sequence == receipt.sequence + 1
        with pytest.raises(jetstation.InvalidArgumentError, match="already awaited"):
            await stored
    with pytest.raises(jetstation.ClosedError):
        await producer.send(b"late")
    async with await client.consumer("hr", "payroll", concurrency=1) as consumer:
        seen = []
        async for message in consumer:
            seen.append(message.payload)
            if message.key == "emp-1" and message.payload == b'{"name":"Ada"}':
                assert message.header("source") == "hr"
            message.ack()
            if len(seen) == 4:
                break
    assert sorted(seen) == sorted([b'{"name":"Ada"}', b"x", b"text", b"later"])
    assert (await client.station("hr")).messages == 4
    assert [s.name for s in await client.stations()] == ["hr"]
