"""A blocking facade for scripts and synchronous workers (Django, Flask...).

It runs the asyncio API on one background event loop thread per process and
waits for each call::

    from jetstation import sync
    with sync.connect("nats://127.0.0.1:4222") as client:
        producer = client.producer("employee-changes")
        producer.send({"id": 42}, key="emp-42")
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from types import TracebackType
from typing import Any, Coroutine, List, Optional, Sequence, Type, TypeVar, Union

import jetstation
from jetstation import DeadLetter, Delivery, Payload, Receipt, SchemaVersion, Station

T = TypeVar("T")
_Self = TypeVar("_Self")


class _Loop:
    """One event loop on a daemon thread (a new one after fork())."""

    _lock = threading.Lock()
    _instance: Optional["_Loop"] = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="jetstation-sync", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> "_Loop":
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = _Loop()
            return cls._instance

    def run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def _run(coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
    return _Loop.get().run(coro, timeout)


def connect(urls: Union[str, Sequence[str]] = "nats://127.0.0.1:4222", **options: Any) -> "Client":
    """Blocking :func:`jetstation.connect`."""
    return Client(_run(jetstation.connect(urls, **options)))


class _Closing:
    """``with`` support: leaving the block calls ``close()``."""

    def close(self) -> None:  # overridden
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class Client(_Closing):
    def __init__(self, client: jetstation.Client) -> None:
        self._client = client

    def close(self) -> None:
        _run(self._client.close())

    def create_station(self, name: str, **settings: Any) -> Station:
        return _run(self._client.create_station(name, **settings))

    def update_station(self, name: str, **settings: Any) -> Station:
        return _run(self._client.update_station(name, **settings))

    def station(self, name: str) -> Station:
        return _run(self._client.station(name))

    def stations(self) -> List[Station]:
        return _run(self._client.stations())

    def delete_station(self, name: str) -> None:
        _run(self._client.delete_station(name))

    def producer(self, station: str, **options: Any) -> "Producer":
        return Producer(_run(self._client.producer(station, **options)))

    def consumer(self, station: str, group: str, **options: Any) -> "Consumer":
        return Consumer(_run(self._client.consumer(station, group, **options)))

    def dead_letters(self, station: str) -> List[DeadLetter]:
        return _run(self._client.dead_letters(station))

    def replay_dead_letter(self, station: str, sequence: int) -> Receipt:
        return _run(self._client.replay_dead_letter(station, sequence))

    def replay_dead_letters(self, station: str) -> List[Receipt]:
        return _run(self._client.replay_dead_letters(station))

    def purge_dead_letters(self, station: str) -> int:
        return _run(self._client.purge_dead_letters(station))

    def station_stats(self, station: str) -> jetstation.StationStats:
        return _run(self._client.station_stats(station))

    def groups(self, station: str) -> List[jetstation.GroupStats]:
        return _run(self._client.groups(station))

    def register_schema(self, name: str, format: str, source: str, **options: Any) -> SchemaVersion:
        return _run(self._client.register_schema(name, format, source, **options))


class Producer(_Closing):
    def __init__(self, producer: jetstation.Producer) -> None:
        self._producer = producer

    def send(self, payload: Payload, **options: Any) -> Receipt:
        return _run(self._producer.send(payload, **options))

    def flush(self) -> None:
        _run(self._producer.flush())

    def close(self) -> None:
        _run(self._producer.close())


class Message:
    """A received message; settle it once with ``ack``, ``nack``, ``term`` or
    ``release`` (plain calls, settled at once without the loop)."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.payload: bytes = delivery.payload
        self.key: Optional[str] = delivery.key
        self.sequence: int = delivery.sequence
        self.partition: int = delivery.partition
        self.deliveries: int = delivery.deliveries

    def ack(self) -> None:
        self.delivery.ack()

    def nack(self, delay: Optional[float] = None, reason: Optional[str] = None) -> None:
        self.delivery.nack(delay, reason)

    def term(self, reason: Optional[str] = None) -> None:
        self.delivery.term(reason)

    def release(self) -> None:
        self.delivery.release()

    def claim(self) -> bool:
        """Whether the message is still this member's to run (see
        :meth:`jetstation.Delivery.claim`), asked on the calling thread.
        Blocks while the member asks the broker after a stop of its process.
        ``next`` asks before it returns a message; ask again before running
        one kept for later."""
        while True:
            ours = self.delivery.claim_now()
            if ours is not None:
                return ours
            _run(_verdict(self.delivery))


async def _verdict(delivery: Delivery) -> bool:
    """The member's verdict on ``delivery`` after a stop of its process."""
    return await delivery.claim()


class Consumer(_Closing):
    def __init__(self, consumer: jetstation.Consumer) -> None:
        self._consumer = consumer

    def next(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, or ``None`` after ``timeout`` seconds or once closed."""

        deadline = None if timeout is None else time.monotonic() + timeout

        async def one() -> Optional[Delivery]:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await asyncio.wait_for(self._consumer.__anext__(), left)
            except (StopAsyncIteration, asyncio.TimeoutError):
                return None

        while True:
            delivery = _run(one())
            if delivery is None:
                return None
            message = Message(delivery)
            # Taken on the loop's thread; asked again on this one, right
            # before the caller runs it: the process may have stopped in
            # between, and the group given the partition to another member.
            if message.claim():
                return message

    def close(self) -> None:
        _run(self._consumer.close())


__all__ = ["Client", "Consumer", "Message", "Producer", "connect"]
