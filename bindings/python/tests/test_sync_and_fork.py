"""The blocking facade, use after fork(), and leaving the interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import jetstation
from jetstation import sync
from conftest import Server


def test_sync_facade(server: Server) -> None:
    with sync.connect(server.url) as client:
        client.create_station("sync-st")
        with client.producer("sync-st") as producer:
            receipt = producer.send({"hello": "world"}, key="k")
            assert receipt.sequence == 1
        with client.consumer("sync-st", "g") as consumer:
            message = consumer.next(timeout=10)
            assert message is not None and message.payload == b'{"hello":"world"}'
            message.ack()
            assert consumer.next(timeout=0.3) is None
        assert client.station("sync-st").messages == 1
        with pytest.raises(jetstation.NotFoundError):
            client.station("nope")


def test_a_forked_child_gets_its_own_runtime_and_a_clear_error(server: Server) -> None:
    client = sync.connect(server.url)
    client.create_station("forked")
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            try:
                client.station("forked")
            except jetstation.ClosedError as e:
                if "fork" in e.message:
                    code = 2
            if code == 2:
                with sync.connect(server.url) as own:
                    own.producer("forked").send(b"from the child")
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, f"child exited with {os.WEXITSTATUS(status)}"
    assert client.station("forked").messages == 1
    client.close()


# Leaves the interpreter with sends, receipts and callbacks into Python still
# under way on the runtime's threads, as a script that returns early does.
EXIT_WHILE_SENDING = """
import asyncio, sys
import jetstation

async def main(url, station):
    client = await jetstation.connect(url)
    await client.create_station(station)
    producer = await client.producer(station)
    handles = [await producer.enqueue(b"x" * 256, key=f"k{i % 10}") for i in range(20000)]
    await handles[-1]
    pending = [asyncio.ensure_future(producer.send(b"y", key="k")) for _ in range(2000)]
    await asyncio.sleep(0)  # one turn of the loop starts the sends; then leave with them under way

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_leaving_the_interpreter_while_sending_stops_cleanly(server: Server) -> None:
    # Stopping the runtime at exit races with its own threads; the race was
    # lost about every other run when a runtime thread could end up owning
    # the runtime ("Cannot drop a runtime in a context where blocking is not
    # allowed"), so a few runs show it.
    for run in range(6):
        result = subprocess.run(
            [sys.executable, "-c", EXIT_WHILE_SENDING, server.url, f"exit-{run}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0 and "panicked" not in result.stderr, f"run {run}: {result.stderr}"
