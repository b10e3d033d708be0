"""Order, dead letters, crashes, schemas and cancellation from Python."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from typing import Dict, List, Tuple

import pytest

import jetstation
from conftest import Server, wait_for


async def test_order_per_key_over_ten_thousand_messages(client: jetstation.Client) -> None:
    await client.create_station("bulk", partitions=4)
    async with await client.producer("bulk") as producer:
        batch = [({"k": f"k{i % 100}", "i": i // 100}, f"k{i % 100}") for i in range(10_000)]
        receipts = await producer.send_batch(batch)
        assert len(receipts) == 10_000 and not any(r.duplicate for r in receipts)
    seen: Dict[str, List[int]] = defaultdict(list)
    active: set[str] = set()
    consumer = await client.consumer("bulk", "g", concurrency=16)

    async def handle(message: jetstation.Delivery) -> None:
        body = json.loads(message.payload)
        assert body["k"] not in active, "one key ran twice at once"
        active.add(body["k"])
        await asyncio.sleep(0)  # yield, so that other messages could run meanwhile
        seen[body["k"]].append(body["i"])
        active.discard(body["k"])

    task = asyncio.ensure_future(consumer.consume(handle))
    async def all_seen() -> bool:
        return sum(map(len, seen.values())) >= 10_000

    await wait_for(all_seen, "all 10,000 messages")
    await consumer.close()
    await task
    assert len(seen) == 100
    assert all(v == list(range(100)) for v in seen.values())


async def test_send_batch_larger_than_one_native_chunk_keeps_order_and_checks_each_chunk_whole(
    client: jetstation.Client,
) -> None:
    await client.create_station("chunks")
    count = 10_000
    assert count > jetstation._SEND_BATCH_CHUNK
    async with await client.producer("chunks") as producer:
        for bad in [(None, "k0"), ("m", 7)]:  # a payload, then a key, of the wrong type
            batch: List[Tuple[object, object]] = [(f"m{i}", f"k{i % 7}") for i in range(count)]
            batch[9_000] = bad
            with pytest.raises(jetstation.InvalidArgumentError):
                await producer.send_batch(batch)  # type: ignore[arg-type]
            assert (await client.station("chunks")).messages == 0
        # What the core refuses (here a key with a line break) is found
        # chunk by chunk: in the first chunk nothing is sent...
        batch = [(f"m{i}", f"k{i % 7}") for i in range(count)]
        batch[1_000] = ("m", "Ada\r\nNats-Msg-Id: payslip-1")
        with pytest.raises(jetstation.InvalidArgumentError, match="message 1000 of the batch of 10000"):
            await producer.send_batch(batch)  # type: ignore[arg-type]
        await producer.flush()
        assert (await client.station("chunks")).messages == 0
        receipts = await producer.send_batch([(f"m{i}", f"k{i % 7}") for i in range(count)])
        # One partition: receipts in call order are the stream's order.
        assert [r.sequence for r in receipts] == list(range(1, count + 1))
        assert all((r.station, r.partition, r.duplicate) == ("chunks", 0, False) for r in receipts)
        assert all(r.msg_id.startswith(f"{producer.producer_id}-") for r in receipts)
        assert len({r.msg_id for r in receipts}) == count
    consumer = await client.consumer("chunks", "g")
    got: List[str] = []
    async for message in consumer:
        got.append(message.payload.decode())
        message.ack()
        if len(got) == count:
            break
    await consumer.close()
    assert got == [f"m{i}" for i in range(count)]
    # ...in a later one, the chunks before it were sent and the error says so.
    await client.create_station("later-chunk")
    async with await client.producer("later-chunk") as producer:
        batch = [(f"m{i}", f"k{i % 7}") for i in range(count)]
        batch[9_000] = ("m", "Ada\r\nNats-Msg-Id: payslip-1")
        with pytest.raises(jetstation.InvalidArgumentError, match="messages 0 to 8191 were queued") as refused:
            await producer.send_batch(batch)  # type: ignore[arg-type]
        assert "message 9000 of the batch of 10000" in str(refused.value)
        await producer.flush()
    assert (await client.station("later-chunk")).messages == 8_192


async def test_poison_message_is_dead_lettered_and_replayed(client: jetstation.Client) -> None:
    await client.create_station("hr", max_deliveries=3)
    async with await client.producer("hr") as producer:
        for body in ["ok-1", "poison", "ok-2"]:
            await producer.send(body, key="emp-1")
    handled: List[str] = []
    fixed = False

    async def handle(message: jetstation.Delivery) -> None:
        if message.payload == b"poison" and not fixed:
            raise ValueError("cannot parse")
        handled.append(message.payload.decode())

    consumer = await client.consumer("hr", "payroll", redelivery_delay=0.05)
    task = asyncio.ensure_future(consumer.consume(handle))
    async def dead_lettered() -> bool:
        return (await client.station("hr")).dead_letters > 0

    async def ok_2() -> bool:
        return "ok-2" in handled

    await wait_for(dead_lettered, "the dead letter")
    await wait_for(ok_2, "ok-2 handled")
    assert handled == ["ok-1", "ok-2"]
    [letter] = await client.dead_letters("hr")
    assert letter.payload == b"poison" and letter.deliveries == 3
    assert letter.last_error == "ValueError: cannot parse"
    assert (letter.origin_station, letter.origin_sequence, letter.group) == ("hr", 2, "payroll")
    fixed = True
    await client.replay_dead_letter("hr", letter.sequence)
    async def replayed() -> bool:
        return "poison" in handled

    await wait_for(replayed, "the replayed message handled")
    await consumer.close()
    await task


CRASHING_MEMBER = textwrap.dedent(
    """
    import asyncio, os, sys
    import jetstation

    async def main():
        client = await jetstation.connect(sys.argv[1])
        consumer = await client.consumer("acks", "g", concurrency=8, ack_wait=2.0, handover_timeout=2.0)
        held = []
        done = 0
        async for message in consumer:
            if message.sequence == 5:
                held.append(message)  # never finished
            else:
                message.ack()
                done += 1
            if done == 19:
                await asyncio.sleep(0.5)  # let the commits reach the broker
                os._exit(3)  # a crash: nothing is closed or flushed

    asyncio.run(main())
    """
)


async def test_ordered_acknowledgement_after_a_crash(client: jetstation.Client, server: Server) -> None:
    await client.create_station("acks")
    async with await client.producer("acks") as producer:
        await producer.send_batch([(f"m{i}", f"k{i}") for i in range(20)])
    crashed = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASHING_MEMBER, server.url)
    assert await asyncio.wait_for(crashed.wait(), 30) == 3
    consumer = await client.consumer("acks", "g", ack_wait=2.0, handover_timeout=2.0)
    got: List[int] = []
    async for message in consumer:
        got.append(message.sequence)
        message.ack()
        if len(got) == 16:
            break
    # The tail from the first unfinished message (5), nothing before it.
    assert min(got) == 5 and sorted(got) == list(range(5, 21))
    await consumer.close()


FROZEN_MEMBER = textwrap.dedent(
    """
    import asyncio, sys
    import jetstation

    async def main():
        client = await jetstation.connect(sys.argv[1])
        consumer = await client.consumer(sys.argv[2], "g", ack_wait=60.0, handover_timeout=2.0)
        message = await consumer.__anext__()
        claim = message.claim()
        # Known at once: the answer needs no turn of the event loop.
        print("taken", message.payload.decode(), claim.done() and await claim, flush=True)
        # The test freezes this whole process here, and says when it is back.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print("claimed", await message.claim(), flush=True)
        await consumer.close()

    asyncio.run(main())
    """
)

# The same member on the blocking facade: `next` and `claim` answer on the
# caller's thread, not the facade's loop thread.
FROZEN_SYNC_MEMBER = textwrap.dedent(
    """
    import sys
    from jetstation import sync

    with sync.connect(sys.argv[1]) as client:
        consumer = client.consumer(sys.argv[2], "g", ack_wait=60.0, handover_timeout=2.0)
        message = consumer.next(timeout=30)
        print("taken", message.payload.decode(), message.claim(), flush=True)
        # The test freezes this whole process here, and says when it is back.
        sys.stdin.readline()
        print("claimed", message.claim(), flush=True)
        consumer.close()
    """
)


@pytest.mark.parametrize("facade", ["asyncio", "sync"])
async def test_a_message_taken_before_the_process_froze_is_not_claimed_after_it(
    client: jetstation.Client, server: Server, facade: str
) -> None:
    """The process of a member stops (SIGSTOP) holding a message it took and
    has not run; the group gives the partition to another member, which runs
    it. Back, the frozen member must not run it too: its claim says no."""
    import signal

    station = f"frozen{facade}"
    await client.create_station(station)
    async with await client.producer(station) as producer:
        await producer.send("held", key="k")
    script = FROZEN_MEMBER if facade == "asyncio" else FROZEN_SYNC_MEMBER
    member = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, server.url, station,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert member.stdin is not None and member.stdout is not None
    try:
        taken = await asyncio.wait_for(member.stdout.readline(), 30)
        assert taken.split() == [b"taken", b"held", b"True"], taken
        member.send_signal(signal.SIGSTOP)
        other = await client.consumer(station, "g", ack_wait=60.0, handover_timeout=2.0)
        handled: List[Tuple[bytes, int]] = []

        async def handle(message: jetstation.Delivery) -> None:
            handled.append((message.payload, message.deliveries))

        running = asyncio.ensure_future(other.consume(handle))
        # New messages show the other member that the frozen one's pin expired.
        async with await client.producer(station) as producer:
            for i in range(200):
                await producer.send(f"new-{i}", key="k")
                if any(p == b"held" for p, _ in handled):
                    break
                # A pace, not a wait for a condition: new messages, 20 a
                # second, are what show the broker's pin expiring; the loop
                # ends as soon as the other member ran the held message.
                await asyncio.sleep(0.05)
        assert [d for p, d in handled if p == b"held"] and all(
            d > 1 for p, d in handled if p == b"held"
        ), f"the other member ran the held message, flagged as redelivered: {handled}"
        member.send_signal(signal.SIGCONT)
        member.stdin.write(b"back\n")
        await member.stdin.drain()
        claimed = await asyncio.wait_for(member.stdout.readline(), 30)
        assert claimed.split() == [b"claimed", b"False"], claimed
        assert await asyncio.wait_for(member.wait(), 30) == 0
        await other.close()
        await running
    finally:
        if member.returncode is None:
            member.send_signal(signal.SIGCONT)
            member.kill()
            await member.wait()


async def test_schema_refusal_happens_before_anything_is_sent(client: jetstation.Client) -> None:
    schema = '{"type":"object","properties":{"salary":{"type":"number"}},"required":["salary"]}'
    v = await client.register_schema("pay", "json_schema", schema)
    assert v.version == 1
    await client.create_station("payroll", schema="pay")
    async with await client.producer("payroll") as producer:
        await producer.send({"salary": 10})
        with pytest.raises(jetstation.SchemaValidationError) as refused:
            await producer.send({"salary": "ten"})
        assert isinstance(refused.value, ValueError)
        assert "/salary" in str(refused.value)
    assert (await client.station("payroll")).messages == 1
    await client.register_schema("proto", "protobuf", 'syntax = "proto3"; message M { string s = 1; }', message_type="M")
    encoded = await client.encode_with_schema("proto", {"s": "hi"})
    assert await client.decode_with_schema("proto", encoded) == {"s": "hi"}


async def test_cancelling_a_wait_cancels_the_core_operation(client: jetstation.Client) -> None:
    await client.create_station("quiet")
    consumer = await client.consumer("quiet", "g")
    waiting = asyncio.ensure_future(consumer.__anext__())
    await asyncio.sleep(0.2)  # let the wait start in the core before cancelling it
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The consumer is still usable: the cancelled wait released it.
    async with await client.producer("quiet") as producer:
        await producer.send(b"after")
    message = await asyncio.wait_for(consumer.__anext__(), 10)
    assert message.payload == b"after"
    message.ack()
    await consumer.close()


async def test_core_events_reach_python_logging(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="jetstation")
    client = await jetstation.connect(server.url)
    await client.create_station("logged")
    await client.close()
    names = {r.name for r in caplog.records}
    assert any(n.startswith("jetstation") for n in names), names
    assert any("connected" in r.getMessage() for r in caplog.records)


async def test_health_reports_each_partition(client: jetstation.Client) -> None:
    await client.create_station("healthy", partitions=2)
    async with await client.producer("healthy") as producer:
        receipts = [await producer.send(f"m{i}", key=f"k{i}") for i in range(6)]
    # The partition a key goes to is the same everywhere (receipts included).
    assert all(r.partition == jetstation.partition_of(f"k{i}", 2) for i, r in enumerate(receipts))
    consumer = await client.consumer("healthy", "g", ack_wait=2, handover_timeout=2)
    held = await consumer.__anext__()
    parts = await consumer.health()
    assert [p.partition for p in parts] == [0, 1]
    assert all(p.owned for p in parts)
    assert sum(p.held for p in parts) >= 1
    assert any(p.last_delivery is not None for p in parts)
    held.ack()
    for _ in range(5):
        (await consumer.__anext__()).ack()

    async def settled() -> bool:
        return all(p.in_sync and p.held == 0 for p in await consumer.health())

    await wait_for(settled, "every partition in sync with nothing held")
    await consumer.close()


async def test_release_costs_no_delivery_and_a_message_settles_once(client: jetstation.Client) -> None:
    await client.create_station("once", max_deliveries=1)
    async with await client.producer("once") as producer:
        await producer.send("only", key="k")
    consumer = await client.consumer("once", "g", ack_wait=2, handover_timeout=2)
    for _ in range(3):
        message = await consumer.__anext__()
        assert message.deliveries == 1, "a release is not a delivery"
        message.release()
    message = await consumer.__anext__()
    message.ack()
    with pytest.raises(jetstation.InvalidArgumentError):
        message.ack()
    with pytest.raises(jetstation.InvalidArgumentError):
        message.release()
    await consumer.close()
    assert await client.dead_letters("once") == []
    assert await client.replay_dead_letters("once") == []


async def test_unknown_and_malformed_options_are_refused(client: jetstation.Client) -> None:
    await client.create_station("strict")
    with pytest.raises(jetstation.InvalidArgumentError, match="unknown station setting"):
        await client.create_station("strict2", partitons=2)
    with pytest.raises(jetstation.InvalidArgumentError, match="unknown consumer option"):
        await client.consumer("strict", "g", concurency=2)
    with pytest.raises(jetstation.InvalidArgumentError, match="ack_wait"):
        await client.consumer("strict", "g", ack_wait=float("nan"))
    with pytest.raises(jetstation.InvalidArgumentError, match="earliest, latest"):
        await client.consumer("strict", "g", start="middle")
    with pytest.raises(jetstation.InvalidArgumentError, match="wait or fail"):
        await client.producer("strict", when_full="explode")


async def test_the_state_view_keeps_the_latest_value_while_the_history_expires(client: jetstation.Client) -> None:
    await client.create_station("people", partitions=2, compaction=True, max_age=2.0, dedup_window=1.0)
    async with await client.producer("people") as producer:
        for version in (1, 2, 3):
            for k in range(6):
                await producer.send(f"k{k} v{version}", key=f"k{k}")
        await producer.delete("k0")
    want = [(f"k{k}", f"k{k} v3") for k in range(1, 6)]

    async def view() -> List[Tuple[str, str]]:
        return sorted([(e.key, e.payload.decode()) async for e in await client.snapshot("people")])

    async def matches() -> bool:
        return await view() == want

    await wait_for(matches, "every key's latest value in the view")
    entry = await client.latest("people", "k3")
    assert entry is not None and entry.payload == b"k3 v3" and entry.partition == jetstation.partition_of("k3", 2)
    assert await client.latest("people", "k0") is None, "deleted"

    async def expired() -> bool:
        return (await client.station("people")).messages == 0

    await wait_for(expired, "the history to expire")
    assert await view() == want

    await client.create_station("accounts", compaction=True)
    async with await client.producer("accounts") as producer:
        await producer.send("open", key="a")
        await producer.delete("a")
    consumer = await client.consumer("accounts", "audit", concurrency=1)
    seen = []
    for _ in range(2):
        message = await consumer.__anext__()
        seen.append((message.key, message.is_delete))
        message.ack()
    await consumer.close()
    assert seen == [("a", False), ("a", True)]

    await client.create_station("plain")
    with pytest.raises(jetstation.InvalidArgumentError, match="no state view"):
        await client.latest("plain", "k")


async def test_a_new_group_reads_the_snapshot_then_follows_while_writers_go_on(client: jetstation.Client) -> None:
    keys = [f"e{k}" for k in range(50)]
    await client.create_station("staff", partitions=2, compaction=True)
    producer = await client.producer("staff")
    for version in range(4):
        for key in keys:
            await producer.enqueue(f"{key}:{version}", key=key)
    await producer.flush()

    async def caught_up() -> bool:
        view = [e.payload.decode() async for e in await client.snapshot("staff")]
        return sorted(view) == sorted(f"{key}:3" for key in keys)

    await wait_for(caught_up, "the view to hold every key's last version")
    stop = asyncio.Event()

    async def write() -> int:
        version = 4
        while not stop.is_set():
            for key in keys:
                await producer.enqueue(f"{key}:{version}", key=key)
            version += 1
            # Paces the writer so that it keeps writing through the bootstrap.
            await asyncio.sleep(0.02)  # paces the writer through the bootstrap
        await producer.flush()
        return version

    writer = asyncio.create_task(write())
    consumer = await client.consumer("staff", "new-service", start="snapshot", concurrency=4)
    seen: Dict[str, List[Tuple[int, int]]] = {}
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            message = await asyncio.wait_for(consumer.__anext__(), timeout=5)
        except asyncio.TimeoutError:
            break  # quiet after the writers stopped
        key, version = message.payload.decode().split(":")
        seen.setdefault(key, []).append((int(version), message.deliveries))
        message.ack()
        if loop.time() - started > 2:
            stop.set()
    stop.set()
    versions = await writer
    await consumer.close()
    await producer.close()
    assert sorted(seen) == sorted(keys)
    for key, got in seen.items():
        first = got[0][0]
        assert first >= 3, f"{key} starts from the snapshot, not the history: {got[:3]}"
        expected = first
        for version, deliveries in got[1:]:
            if version == expected and deliveries > 1:
                continue  # a redelivery, flagged
            assert version == expected + 1, f"{key}: {got}"
            expected = version
        assert expected == versions - 1, f"{key} reaches its last version"

    await client.create_station("plain-staff")
    with pytest.raises(jetstation.InvalidArgumentError, match="compaction"):
        await client.consumer("plain-staff", "g", start="snapshot")


async def test_exactly_once_a_member_crash_after_handling_leaves_nothing_to_handle_again(server: Server) -> None:
    async def crash_and_take_over(exactly_once: bool, station: str) -> List[str]:
        client = await jetstation.connect(server.url)
        await client.create_station(station)
        async with await client.producer(station) as producer:
            for i in range(20):
                await producer.send(f"m{i}", key=f"k{i}")
        options = dict(concurrency=4, ack_wait=1.0, handover_timeout=1.0, exactly_once=exactly_once)
        crashed = await jetstation.connect(server.url)
        a = await crashed.consumer(station, "payments", **options)
        held = await a.__anext__()  # m0 stays unfinished: nothing after it is committed
        assert held.payload == b"m0"
        for i in range(1, 11):
            message = await asyncio.wait_for(a.__anext__(), timeout=10)
            assert message.payload == f"m{i}".encode()
            message.ack()
        await asyncio.sleep(0.5)  # lets the records of m1..m10 be written (m0 keeps them uncommitted); no API shows a record
        await crashed.close()
        b = await client.consumer(station, "payments", **options)
        handled = []
        while True:
            try:
                message = await asyncio.wait_for(b.__anext__(), timeout=4)
            except asyncio.TimeoutError:
                break
            handled.append(message.payload.decode())
            message.ack()
        await b.close()
        await client.close()
        return sorted(handled, key=lambda p: int(p[1:]))

    assert await crash_and_take_over(True, "ledger") == ["m0"] + [f"m{i}" for i in range(11, 20)]
    # Without the option the same crash hands m1..m10 out again (at least once).
    assert len(await crash_and_take_over(False, "ledger-plain")) == 20


async def test_stats_show_partitions_and_a_groups_lag(client: jetstation.Client) -> None:
    await client.create_station("hires", partitions=2)
    async with await client.producer("hires") as producer:
        for i in range(10):
            await producer.send(f"h{i}", key=f"k{i}")
    stats = await client.station_stats("hires")
    assert [p.partition for p in stats.partitions] == [0, 1]
    assert sum(p.messages for p in stats.partitions) == 10
    assert all(p.placement is None and p.last_time is not None for p in stats.partitions)
    assert (stats.dead_letters, stats.state_keys) == (0, None)
    assert await client.purge_dead_letters("hires") == 0
    assert await client.groups("hires") == []
    consumer = await client.consumer("hires", "onboarding")
    for _ in range(4):
        (await consumer.__anext__()).ack()

    async def lag_of_six() -> bool:
        groups = await client.groups("hires")
        return len(groups) == 1 and sum(p.lag for p in groups[0].partitions) == 6

    await wait_for(lag_of_six, "the group's lag to fall to 6")
    group = (await client.groups("hires"))[0]
    assert group.group == "onboarding" and len(group.members) == 1
    assert group.members[0].partitions == [0, 1] and not group.members[0].standby
    assert {p.owner for p in group.partitions} == {group.members[0].member}
    await consumer.close()
    with pytest.raises(jetstation.NotFoundError):
        await client.station_stats("nowhere")
