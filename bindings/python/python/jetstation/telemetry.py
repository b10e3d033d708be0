"""OpenTelemetry for jetstation, through ``opentelemetry-api``.

Call :func:`instrument` once, after your OpenTelemetry SDK is set up and
before connecting (``pip install "jetstation[otel]"`` brings the API)::

    from jetstation import telemetry
    telemetry.instrument()

Then:

- every message sent gets a ``create <station>`` span (kind producer), a
  child of the current span, and carries its W3C trace context in the
  ``traceparent``/``tracestate`` headers, whatever language consumes it;
- ``Consumer.consume`` runs the handler in a ``process <station>`` span
  (kind consumer) whose parent is the producer's span, with a link to it;
  with ``async for``, wrap the handling in ``with telemetry.process(d):``;
- the metrics ``messaging.client.sent.messages``,
  ``messaging.client.consumed.messages``,
  ``messaging.client.operation.duration`` (enqueue to the broker's answer),
  ``messaging.process.duration`` and the gauge ``jetstation.consumer.lag``.

The Rust core times every send and counts every message handed out; a
background thread drains those measurements into the instruments every
``interval`` seconds (and :func:`flush` does it at once).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

if TYPE_CHECKING:
    from . import Client, Consumer, Delivery

SYSTEM = "nats"
# Bucket bounds (seconds) the messaging conventions recommend.
_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]

_lock = threading.Lock()
_state: Optional["_Instrumentation"] = None


class _Headers:
    """Reads the (name, value) pairs of a delivery for the propagator."""

    @staticmethod
    def get(carrier: List[Tuple[str, str]], key: str) -> Optional[List[str]]:
        values = [v for n, v in carrier if n.lower() == key]
        return values or None

    @staticmethod
    def keys(carrier: List[Tuple[str, str]]) -> List[str]:
        return [n for n, _ in carrier]


class _Instrumentation:
    def __init__(self, tracer_provider: Any, meter_provider: Any, interval: float) -> None:
        from opentelemetry import metrics, trace

        from . import __version__

        self.trace = trace
        self.tracer = trace.get_tracer("jetstation", __version__, tracer_provider)
        meter = metrics.get_meter("jetstation", __version__, meter_provider)
        self.sent = meter.create_counter(
            "messaging.client.sent.messages", "{message}", "Messages the broker confirmed or refused"
        )
        self.consumed = meter.create_counter(
            "messaging.client.consumed.messages", "{message}", "Messages handed to the application"
        )
        self.operation = meter.create_histogram(
            "messaging.client.operation.duration",
            "s",
            "From enqueue to the broker's answer",
            explicit_bucket_boundaries_advisory=_BOUNDS,
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            "s",
            "The handler's run",
            explicit_bucket_boundaries_advisory=_BOUNDS,
        )
        meter.create_observable_gauge(
            "jetstation.consumer.lag",
            [self._observe_lag],
            "{message}",
            "Messages of the member's partitions not delivered yet",
        )
        self.clients: "weakref.WeakSet[Client]" = weakref.WeakSet()
        self.consumers: "weakref.WeakSet[Consumer]" = weakref.WeakSet()
        self.drain_lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(interval,), name="jetstation-telemetry", daemon=True
        )
        self.thread.start()

    def _run(self, interval: float) -> None:
        while not self.stop.wait(interval):
            self.drain()

    def drain(self) -> None:
        with self.drain_lock:
            for client in list(self.clients):
                sends, consumed, _dropped = client._native.drain_telemetry()
                counts: Dict[Tuple[str, int, Optional[str]], int] = {}
                for station, partition, seconds, error in sends:
                    attrs = _attributes("send", station, partition)
                    if error is not None:
                        attrs["error.type"] = error
                    self.operation.record(seconds, attrs)
                    key = (station, partition, error)
                    counts[key] = counts.get(key, 0) + 1
                for (station, partition, error), n in counts.items():
                    attrs = _attributes("send", station, partition)
                    if error is not None:
                        attrs["error.type"] = error
                    self.sent.add(n, attrs)
                for station, group, partition, n in consumed:
                    attrs = _attributes("receive", station, partition)
                    attrs["messaging.consumer.group.name"] = group
                    self.consumed.add(n, attrs)

    def _observe_lag(self, _options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        for consumer in list(self.consumers):
            try:
                lag = consumer._native.lag
            except Exception:  # closed meanwhile: nothing to report
                continue
            yield Observation(
                lag,
                {
                    "messaging.system": SYSTEM,
                    "messaging.destination.name": consumer.station,
                    "messaging.consumer.group.name": consumer.group,
                },
            )

    def create(self, station: str, headers: Optional[Dict[str, str]]) -> Dict[str, str]:
        from opentelemetry import propagate

        carrier = dict(headers) if headers else {}
        if any(n.lower() == "traceparent" for n in carrier):
            return carrier
        span = self.tracer.start_span(
            f"create {station}",
            kind=self.trace.SpanKind.PRODUCER,
            attributes=_attributes("create", station, None),
        )
        propagate.inject(carrier, context=self.trace.set_span_in_context(span))
        span.end()
        return carrier

    @contextlib.contextmanager
    def process(self, delivery: "Delivery", group: Optional[str]) -> Iterator[Any]:
        from opentelemetry import propagate

        parent = propagate.extract(delivery.headers, getter=_Headers)  # type: ignore[arg-type]
        producer = self.trace.get_current_span(parent).get_span_context()
        links = [self.trace.Link(producer)] if producer.is_valid else []
        attrs = _attributes("process", delivery.station, delivery.partition)
        attrs["messaging.message.delivery_count"] = delivery.deliveries
        if delivery.msg_id is not None:
            attrs["messaging.message.id"] = delivery.msg_id
        if group is not None:
            attrs["messaging.consumer.group.name"] = group
        started = time.perf_counter()
        failed = False
        with self.tracer.start_as_current_span(
            f"process {delivery.station}",
            context=parent if producer.is_valid else None,
            kind=self.trace.SpanKind.CONSUMER,
            links=links,
            attributes=attrs,
        ) as span:
            try:
                yield span
            except BaseException:
                failed = True
                raise
            finally:
                duration_attrs = _attributes("process", delivery.station, delivery.partition)
                if group is not None:
                    duration_attrs["messaging.consumer.group.name"] = group
                if failed:
                    duration_attrs["error.type"] = "handler_error"
                self.process_duration.record(time.perf_counter() - started, duration_attrs)


def _attributes(operation: str, station: str, partition: Optional[int]) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": station,
    }
    if partition is not None:
        attrs["messaging.destination.partition.id"] = str(partition)
    return attrs


def instrument(
    *, tracer_provider: Any = None, meter_provider: Any = None, interval: float = 1.0
) -> None:
    """Turns on tracing and metrics for every client connected from now on
    (the global providers unless given). Raises ``ImportError`` with a hint
    when ``opentelemetry-api`` is not installed."""
    global _state
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError as missing:
        raise ImportError(
            'jetstation.telemetry needs opentelemetry-api: pip install "jetstation[otel]"'
        ) from missing
    if interval <= 0:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"interval must be positive seconds, got {interval!r}")
    with _lock:
        if _state is None:
            _state = _Instrumentation(tracer_provider, meter_provider, interval)


def uninstrument() -> None:
    """Drains what was measured and turns instrumentation off."""
    global _state
    with _lock:
        state, _state = _state, None
    if state is not None:
        state.stop.set()
        state.drain()


def flush() -> None:
    """Records every measurement the core holds now (the background thread
    does it every ``interval`` seconds)."""
    state = _state
    if state is not None:
        state.drain()


def process(delivery: "Delivery", group: Optional[str] = None) -> "contextlib.AbstractContextManager[Any]":
    """A ``process <station>`` span around your handling of ``delivery``,
    child of the producer's span; a no-op when not instrumented::

        async for d in consumer:
            with telemetry.process(d, consumer.group):
                ...
    """
    state = _state
    if state is None:
        return contextlib.nullcontext()
    return state.process(delivery, group)


# Used by the facade (jetstation/__init__.py).


def _attach_client(client: "Client") -> None:
    state = _state
    if state is not None:
        client._native.enable_telemetry()
        state.clients.add(client)


def _attach_consumer(consumer: "Consumer") -> None:
    state = _state
    if state is not None:
        state.consumers.add(consumer)


def _headers_for(station: str, headers: Optional[Dict[str, str]]) -> Optional[Dict[str, str]]:
    state = _state
    if state is None:
        return headers
    return state.create(station, headers)
