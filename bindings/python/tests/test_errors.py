"""Each stable error kind reaches Python as its own exception class."""

from __future__ import annotations

import asyncio
import os
import pickle
from typing import Awaitable, Callable, Type

import pytest

import jetstation
from conftest import Server


async def raises(cls: Type[jetstation.JetstationError], kind: str, action: Awaitable[object]) -> jetstation.JetstationError:
    with pytest.raises(cls) as caught:
        await action
    error = caught.value
    assert type(error) is cls and error.kind == kind, (type(error), error)
    assert str(error) == error.message and error.message
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.kind == kind and copy.message == error.message
    return error


async def test_every_error_kind_maps_to_its_exception(server: Server, client: jetstation.Client) -> None:
    free = Server.__new__(Server)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = await raises(jetstation.ConnectionFailedError, "connection", jetstation.connect(f"nats://127.0.0.1:{port}"))
    assert isinstance(e, ConnectionError)

    await raises(jetstation.NotFoundError, "not_found", client.station("missing"))
    await raises(jetstation.InvalidArgumentError, "invalid_argument", client.create_station("bad name"))
    await client.create_station("s", partitions=2)
    await raises(jetstation.AlreadyExistsError, "already_exists", client.create_station("s", partitions=3))
    await raises(jetstation.BrokerError, "broker", client.create_station("r3", replicas=3))

    producer = await client.producer("s")
    await producer.close()
    await raises(jetstation.ClosedError, "closed", producer.send(b"x"))

    await client.register_schema("emp", "json_schema", '{"type":"object","properties":{"n":{"type":"integer"}}}')
    await raises(
        jetstation.IncompatibleSchemaError,
        "incompatible_schema",
        client.register_schema("emp", "json_schema", '{"type":"object","properties":{"n":{"type":"string"}}}'),
    )
    await client.create_station("typed", schema="emp")
    typed = await client.producer("typed")
    await raises(jetstation.SchemaValidationError, "schema_validation", typed.send({"n": "x"}))

    small = Server("max_payload: 2048")
    try:
        async with await jetstation.connect(small.url) as c:
            await c.create_station("big")
            p = await c.producer("big", buffer_bytes=1 << 20)
            await raises(jetstation.PayloadTooLargeError, "payload_too_large", p.send(b"x" * 4096))
            fast = await c.producer("big", buffer_bytes=4096, when_full="fail")
            slow = await c.producer("big", delivery_timeout=0.5)
            small.stop()
            with pytest.raises(jetstation.BufferFullError) as full:
                for _ in range(10):
                    await fast.enqueue(b"y" * 1500)
            assert full.value.kind == "buffer_full"
            e = await raises(jetstation.TimedOutError, "timeout", slow.send(b"z"))
            assert isinstance(e, TimeoutError)
    finally:
        small.close()

    secured = Server("authorization { users: [ { user: app, password: s3cret } ] }")
    try:
        e = await raises(jetstation.AuthError, "auth", jetstation.connect(secured.url, user="app", password="no"))
        assert isinstance(e, PermissionError)
    finally:
        secured.close()

    old_bin = os.environ.get("NATS_SERVER_OLD_BIN", "/usr/sbin/nats-server")
    old = Server(binary=old_bin)
    try:
        e = await raises(jetstation.ServerTooOldError, "server_too_old", jetstation.connect(old.url))
        assert "2.9" in e.message and "2.12.0" in e.message
    finally:
        old.close()


def test_every_kind_of_the_core_has_a_class() -> None:
    kinds = {cls.kind for cls in vars(jetstation).values() if isinstance(cls, type) and issubclass(cls, jetstation.JetstationError)}
    assert kinds == {
        "connection", "timeout", "auth", "not_found", "already_exists", "invalid_argument",
        "payload_too_large", "server_too_old", "closed", "buffer_full", "schema_validation",
        "incompatible_schema", "broker",
    }
