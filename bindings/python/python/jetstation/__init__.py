"""jetstation: NATS JetStream stations, ordered producers and consumer groups.

All behaviour lives in the Rust core (``jetstation._native``); this package
adapts it to asyncio: payload conversion, async context managers, and the
handler style of consumption.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

_Self = TypeVar("_Self")
from types import TracebackType

from . import _native, telemetry
from ._native import (
    DeadLetter,
    Delivery,
    GroupPartitionStats,
    GroupStats,
    MemberStats,
    PartitionHealth,
    PartitionStats,
    Placement,
    Replica,
    Receipt,
    SchemaInfo,
    SchemaVersion,
    SendHandle,
    StateEntry,
    Station,
    StationStats,
)
from .errors import (
    AlreadyExistsError,
    AuthError,
    BrokerError,
    BufferFullError,
    ClosedError,
    ConnectionFailedError,
    IncompatibleSchemaError,
    InvalidArgumentError,
    JetstationError,
    NotFoundError,
    PayloadTooLargeError,
    SchemaValidationError,
    ServerTooOldError,
    TimedOutError,
)

__version__: str = _native.__version__

Payload = Union[bytes, bytearray, memoryview, str, Mapping[str, Any], List[Any]]
"""What ``send`` accepts: bytes, text (UTF-8), or a JSON-serialisable object."""

Headers = Optional[Mapping[str, str]]

_SEND_BATCH_CHUNK = 4096
"""Messages per native call of ``Producer.send_batch``."""

# Core events reach the standard `logging` module under the "jetstation"
# logger; JETSTATION_LOG sets the core's own filter (default "info").
_native.init_logging(os.environ.get("JETSTATION_LOG", "info"))
atexit.register(_native.shutdown)
# The module reads the process id once (every call checks it, to refuse
# objects across fork()); a child reads its own.
os.register_at_fork(after_in_child=_native.after_fork_in_child)


def _payload(payload: Payload) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (Mapping, list)):
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")
    raise InvalidArgumentError(
        f"payload must be bytes, str, or a JSON object/list, not {type(payload).__name__}"
    )


def _headers(headers: Headers, station: str) -> Optional[List[Tuple[str, str]]]:
    if telemetry._state is not None:  # the message carries the trace context
        headers = telemetry._headers_for(station, None if headers is None else dict(headers))
    return None if headers is None else [(str(k), str(v)) for k, v in headers.items()]


async def connect(
    urls: Union[str, Sequence[str]] = "nats://127.0.0.1:4222", **options: Any
) -> "Client":
    """Connects to NATS and checks the server (>= 2.12, JetStream enabled).

    Options: ``token``, ``user`` / ``password``, ``nkey_seed``, ``creds_file``,
    ``tls_required``, ``tls_ca``, ``tls_cert``, ``tls_key``, ``namespace``,
    ``name``, ``connect_timeout``, ``request_timeout``, ``max_reconnect_delay``
    (seconds).
    """
    url_list = [urls] if isinstance(urls, str) else list(urls)
    client = Client(await _native.connect(url_list, **options))
    telemetry._attach_client(client)
    return client


def partition_of(key: str, partitions: int) -> int:
    """The partition ``key`` goes to in a station of ``partitions`` partitions
    (a stable hash, the same in every language)."""
    return _native.partition_of(key, partitions)


class _AsyncClosing:
    """``async with`` support: leaving the block awaits ``close()``."""

    async def close(self) -> None:  # overridden
        raise NotImplementedError

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()


class Client(_AsyncClosing):
    """A connection to NATS. Use ``async with`` to close it."""

    def __init__(self, native: _native.Client) -> None:
        self._native = native

    @property
    def server_version(self) -> str:
        return self._native.server_version

    @property
    def namespace(self) -> Optional[str]:
        return self._native.namespace

    async def close(self) -> None:
        await self._native.close()
        telemetry.flush()

    async def create_station(self, name: str, **settings: Any) -> Station:
        """Creates a station; a no-op when it exists with the same settings.

        Settings: ``partitions``, ``replicas``, ``storage`` ("file"/"memory"),
        ``max_age`` (s), ``max_bytes``, ``max_messages``, ``dedup_window`` (s),
        ``max_deliveries``, ``compaction``, ``delete_grace`` (s), ``schema``,
        ``schema_version``.
        """
        return await self._native.create_station(name, **settings)

    async def update_station(self, name: str, **settings: Any) -> Station:
        return await self._native.create_station(name, update=True, **settings)

    async def station(self, name: str) -> Station:
        return await self._native.station(name)

    async def stations(self) -> List[Station]:
        return await self._native.stations()

    async def delete_station(self, name: str) -> None:
        await self._native.delete_station(name)

    async def producer(self, station: str, **options: Any) -> "Producer":
        """A producer. Options: ``max_batch_messages``, ``max_batch_bytes``,
        ``linger`` (s), ``max_in_flight``, ``buffer_bytes``, ``when_full``
        ("wait"/"fail"), ``delivery_timeout`` (s), ``producer_id``."""
        return Producer(await self._native.producer(station, **options))

    async def consumer(self, station: str, group: str, **options: Any) -> "Consumer":
        """Joins consumer group ``group``. Options: ``concurrency``, ``start``
        ("earliest", "latest", "snapshot", a sequence, or an aware datetime), ``ack_wait``,
        ``max_ack_pending``, ``redelivery_delay``, ``max_redelivery_delay``,
        ``fetch_batch``, ``handover_timeout`` (seconds), ``exactly_once``
        (record every handled message and skip a redelivered one found in the
        record) and ``exactly_once_retention`` (seconds a partition's record outlives its last write)."""
        consumer = Consumer(await self._native.consumer(station, group, **options))
        telemetry._attach_consumer(consumer)
        return consumer

    async def delete_group(self, station: str, group: str) -> None:
        await self._native.delete_group(station, group)

    async def dead_letters(self, station: str) -> List[DeadLetter]:
        return await self._native.dead_letters(station)

    async def replay_dead_letter(self, station: str, sequence: int) -> Receipt:
        return await self._native.replay_dead_letter(station, sequence)

    async def purge_dead_letters(self, station: str) -> int:
        """Removes every dead letter of ``station`` for good; returns how many."""
        return await self._native.purge_dead_letters(station)

    async def replay_dead_letters(self, station: str) -> List[Receipt]:
        """Replays every dead letter of ``station``, oldest first."""
        return await self._native.replay_dead_letters(station)

    async def station_stats(self, station: str) -> StationStats:
        """The station's partitions (messages, bytes, first and last sequence
        and time, cluster placement), dead letters, schema and state keys."""
        return await self._native.station_stats(station)

    async def groups(self, station: str) -> List[GroupStats]:
        """The station's consumer groups: live members and the partitions
        each owns, and per partition what is pending, unacknowledged,
        redelivered and the lag behind the last message."""
        return await self._native.groups(station)

    async def latest(self, station: str, key: str) -> Optional[StateEntry]:
        """The latest message of ``key`` in a compacted station, or ``None``
        (never written, or deleted)."""
        return await self._native.latest(station, key)

    async def snapshot(self, station: str) -> AsyncIterator[StateEntry]:
        """Every key's latest message in a compacted station:
        ``async for entry in await client.snapshot(station)``."""
        return await self._native.snapshot(station)

    async def register_schema(
        self,
        name: str,
        format: str,
        source: str,
        *,
        message_type: Optional[str] = None,
        compatibility: Optional[str] = None,
    ) -> SchemaVersion:
        """Registers a version (format: "json_schema", "protobuf", "avro")."""
        return await self._native.register_schema(
            name, format, source, message_type=message_type, compatibility=compatibility
        )

    async def schema(self, name: str, version: Optional[int] = None) -> SchemaVersion:
        return await self._native.schema(name, version)

    async def schemas(self) -> List[SchemaInfo]:
        return await self._native.schemas()

    async def set_schema_compatibility(self, name: str, mode: str) -> None:
        await self._native.set_schema_compatibility(name, mode)

    async def delete_schema_version(self, name: str, version: int) -> None:
        await self._native.delete_schema_version(name, version)

    async def encode_with_schema(
        self, name: str, value: Any, version: Optional[int] = None
    ) -> bytes:
        """Encodes a JSON-like value as Protobuf/Avro (or validated JSON)."""
        return await self._native.encode_with_schema(name, json.dumps(value), version)

    async def decode_with_schema(
        self, name: str, payload: bytes, version: Optional[int] = None
    ) -> Any:
        return json.loads(await self._native.decode_with_schema(name, payload, version))


class Producer(_AsyncClosing):
    """Sends to one station. Use ``async with`` to flush and close it."""

    def __init__(self, native: _native.Producer) -> None:
        self._native = native
        # Read once: every send uses the station, and the native getter
        # makes a new string per call.
        self._station = native.station
        self._producer_id = native.producer_id

    @property
    def station(self) -> str:
        return self._station

    @property
    def producer_id(self) -> str:
        return self._producer_id

    async def send(
        self,
        payload: Payload,
        *,
        key: Optional[str] = None,
        headers: Headers = None,
        msg_id: Optional[str] = None,
    ) -> Receipt:
        """Sends and waits until the broker stored the message."""
        return await self._native.send(
            _payload(payload), key=key, headers=_headers(headers, self.station), msg_id=msg_id
        )

    async def enqueue(
        self,
        payload: Payload,
        *,
        key: Optional[str] = None,
        headers: Headers = None,
        msg_id: Optional[str] = None,
    ) -> SendHandle:
        """Queues a message; await the returned handle for its receipt."""
        data = payload if type(payload) is bytes else _payload(payload)
        hdrs = None if headers is None and telemetry._state is None else _headers(headers, self._station)
        handle = self._native.try_enqueue(data, key, hdrs, msg_id)
        if handle is None:  # the producer must wait (buffer full...)
            handle = await self._native.enqueue(data, key=key, headers=hdrs, msg_id=msg_id)
        return handle

    async def send_batch(
        self, messages: Sequence[Tuple[Payload, Optional[str]]]
    ) -> List[Receipt]:
        """Sends many (payload, key) pairs in one call; receipts in order.

        Messages are checked (key, size, schema) and queued in chunks of
        4,096, each chunk checked whole before any of it is queued: a batch
        of up to 4,096 messages with a refused message sends nothing. In a
        larger batch the chunks before the refused message's chunk are
        queued and sent; the error names the message and says so."""
        for _, k in messages:
            if k is not None and not isinstance(k, str):
                raise InvalidArgumentError(f"key must be a str, not {type(k).__name__}")
        outgoing = (
            [(_payload(p), k, None) for p, k in messages]
            if telemetry._state is None
            # each message carries its own trace context
            else [(_payload(p), k, _headers(None, self._station)) for p, k in messages]
        )
        # Chunks of _SEND_BATCH_CHUNK: the next chunk is handed over while the
        # earlier ones are sent, and each chunk's receipts become objects as
        # it completes, instead of converting every message before the first
        # leaves and every receipt after the last is stored.
        waits: List[asyncio.Future[List[Receipt]]] = []
        try:
            for start in range(0, len(outgoing), _SEND_BATCH_CHUNK):
                queued = await self._native.enqueue_batch(
                    outgoing[start : start + _SEND_BATCH_CHUNK], start, len(outgoing)
                )
                waits.append(asyncio.ensure_future(queued.wait()))
        except BaseException:
            for wait in waits:  # what is queued is sent; its receipts are not awaited
                wait.cancel()
            raise
        results = await asyncio.gather(*waits, return_exceptions=True)
        receipts: List[Receipt] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            receipts.extend(result)
        return receipts

    async def delete(self, key: str) -> Receipt:
        """Deletes ``key`` from a compacted station: a tombstone, stored in
        the key's order; consumers see it with ``is_delete``."""
        return await self._native.delete(key)

    async def flush(self) -> None:
        await self._native.flush()

    async def close(self) -> None:
        await self._native.close()

    @property
    def outstanding(self) -> int:
        return self._native.outstanding


Handler = Callable[[Delivery], Awaitable[None]]


class Consumer(_AsyncClosing):
    """A member of a consumer group: ``async for message in consumer``."""

    def __init__(self, native: _native.Consumer) -> None:
        self._native = native

    @property
    def station(self) -> str:
        return self._native.station

    @property
    def group(self) -> str:
        return self._native.group

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            message = await self._native.__anext__()
            # The core handed it out on its own thread; asked again here, on
            # this loop, it says whether the process stopped meanwhile and
            # the group gave its partition to another member.
            if await message.claim():
                return message

    async def close(self) -> None:
        """Stops fetching, waits for held messages to be settled, commits."""
        await self._native.close()

    async def health(self) -> List[PartitionHealth]:
        """How each partition of this member is doing: owned, in sync, held
        and undelivered messages, the last delivery (POSIX time) and the last
        pull failure (repaired by the member itself)."""
        return await self._native.health()

    async def consume(self, handler: Handler) -> None:
        """Runs ``handler`` on every message until the consumer is closed.

        The core hands over at most ``concurrency`` messages at once (never
        two of one key). A handler that returns acks its message; one that
        raises nacks it (redelivered later, then dead-lettered), with the
        exception as the recorded reason.
        """
        running: "set[asyncio.Task[None]]" = set()

        async def run(message: Delivery) -> None:
            # Asked again as the handler starts: this task ran a turn after
            # the message was taken.
            if not await message.claim():
                return
            try:
                with telemetry.process(message, self.group):
                    await handler(message)
            except asyncio.CancelledError:
                message.release()  # not processed, not failed: no delivery counted
                raise
            except Exception as error:  # the reason travels to the dead letter
                message.nack(reason=f"{type(error).__name__}: {error}")
            else:
                message.ack()

        try:
            async for message in self:
                task = asyncio.ensure_future(run(message))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)


__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "BrokerError",
    "BufferFullError",
    "Client",
    "ClosedError",
    "ConnectionFailedError",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "Handler",
    "IncompatibleSchemaError",
    "InvalidArgumentError",
    "JetstationError",
    "NotFoundError",
    "PartitionHealth",
    "StateEntry",
    "StationStats",
    "PartitionStats",
    "Placement",
    "Replica",
    "GroupStats",
    "MemberStats",
    "GroupPartitionStats",
    "Payload",
    "PayloadTooLargeError",
    "Producer",
    "Receipt",
    "SchemaInfo",
    "SchemaValidationError",
    "SchemaVersion",
    "SendHandle",
    "ServerTooOldError",
    "Station",
    "TimedOutError",
    "connect",
    "partition_of",
]
