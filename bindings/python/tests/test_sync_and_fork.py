"""The blocking facade, and use after fork()."""

from __future__ import annotations

import os

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
