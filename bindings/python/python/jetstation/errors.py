"""The exceptions jetstation raises: one class per stable error kind.

Every class derives from :class:`JetstationError` (whose ``kind`` is the
stable name shared with every other language) and, where one fits, from the
builtin exception a Python caller would expect.
"""

from __future__ import annotations

from typing import ClassVar


class JetstationError(Exception):
    """Base class of every jetstation error."""

    kind: ClassVar[str] = "broker"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionFailedError(JetstationError, ConnectionError):
    """The broker cannot be reached, or the connection broke."""

    kind = "connection"


class TimedOutError(JetstationError, TimeoutError):
    """An operation did not complete in time; its effect is unknown."""

    kind = "timeout"


class AuthError(JetstationError, PermissionError):
    """Credentials were refused, or a permission is missing."""

    kind = "auth"


class NotFoundError(JetstationError, LookupError):
    """A station, group, schema or message does not exist."""

    kind = "not_found"


class AlreadyExistsError(JetstationError):
    """Something exists already with other settings."""

    kind = "already_exists"


class InvalidArgumentError(JetstationError, ValueError):
    """An argument is malformed (names, options, headers...)."""

    kind = "invalid_argument"


class PayloadTooLargeError(InvalidArgumentError):
    """A message is larger than the broker accepts."""

    kind = "payload_too_large"


class SchemaValidationError(InvalidArgumentError):
    """A payload does not match its station's schema; nothing was sent."""

    kind = "schema_validation"


class IncompatibleSchemaError(InvalidArgumentError):
    """A new schema version breaks the schema's compatibility mode."""

    kind = "incompatible_schema"


class ServerTooOldError(JetstationError):
    """The nats-server is older than 2.12."""

    kind = "server_too_old"


class ClosedError(JetstationError):
    """The client, producer or consumer was closed."""

    kind = "closed"


class BufferFullError(JetstationError):
    """The producer's buffer is full and the producer fails fast."""

    kind = "buffer_full"


class BrokerError(JetstationError):
    """Any other error reported by the broker."""

    kind = "broker"


__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "BrokerError",
    "BufferFullError",
    "ClosedError",
    "ConnectionFailedError",
    "IncompatibleSchemaError",
    "InvalidArgumentError",
    "JetstationError",
    "NotFoundError",
    "PayloadTooLargeError",
    "SchemaValidationError",
    "ServerTooOldError",
    "TimedOutError",
]
