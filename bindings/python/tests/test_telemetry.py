"""OpenTelemetry: trace context in the headers, create/process spans linked
across the broker, and the messaging metrics, against a real nats-server."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterator, List

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import jetstation
from jetstation import telemetry

from conftest import Server


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def finished(self, name: str) -> List[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> List[Any]:
        data = self.metrics.get_metrics_data()
        found: List[Any] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    telemetry.instrument(tracer_provider=o.tracer_provider, meter_provider=o.meter_provider)
    try:
        yield o
    finally:
        telemetry.uninstrument()


def total(points: List[Any], **attrs: Any) -> float:
    return float(
        sum(
            p.value if hasattr(p, "value") else p.count
            for p in points
            if all(p.attributes.get(k) == v for k, v in attrs.items())
        )
    )


async def test_trace_context_travels_and_spans_link(server: Server, otel: Otel) -> None:
    client = await jetstation.connect(server.url)
    try:
        await client.create_station("payroll", partitions=2)
        tracer = otel.tracer_provider.get_tracer("test")
        async with await client.producer("payroll") as producer:
            with tracer.start_as_current_span("request") as request:
                await producer.send({"salary": 1}, key="emp-1")
                handle = await producer.enqueue(b"raise", key="emp-2", headers={"source": "hr"})
                await handle
            await producer.send_batch([(b"a", "emp-3"), (b"b", "emp-4")])
        creates = otel.finished("create payroll")
        assert len(creates) == 4
        for span in creates[:2]:
            assert span.kind == trace.SpanKind.PRODUCER
            assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
            assert span.attributes is not None
            assert span.attributes["messaging.system"] == "nats"
            assert span.attributes["messaging.destination.name"] == "payroll"
            assert span.attributes["messaging.operation.type"] == "create"

        consumer = await client.consumer("payroll", "ledger")
        handled: Dict[str, Any] = {}
        done = asyncio.Event()

        async def handler(d: jetstation.Delivery) -> None:
            handled[d.key or ""] = (trace.get_current_span().get_span_context(), d.header("traceparent"))
            if d.key == "emp-2":
                assert d.header("source") == "hr"
            if len(handled) == 4:
                done.set()

        task = asyncio.ensure_future(consumer.consume(handler))
        await asyncio.wait_for(done.wait(), 20)
        await consumer.close()
        await asyncio.wait_for(task, 20)

        processes = otel.finished("process payroll")
        assert len(processes) == 4
        created = {c.context.span_id: c for c in creates}
        parents = set()
        for span in processes:
            assert span.kind == trace.SpanKind.CONSUMER
            # Child of its message's create span, in that span's trace, and linked to it.
            assert span.parent is not None and span.parent.span_id in created
            create = created[span.parent.span_id]
            assert span.context.trace_id == create.context.trace_id
            assert [link.context.span_id for link in span.links] == [create.context.span_id]
            parents.add(span.parent.span_id)
            assert span.attributes is not None
            assert span.attributes["messaging.consumer.group.name"] == "ledger"
            assert span.attributes["messaging.message.delivery_count"] == 1
        # The handler ran inside its process span.
        for key, (ctx, traceparent) in handled.items():
            assert traceparent is not None
            assert f"{ctx.trace_id:032x}" == traceparent.split("-")[1], key
        assert parents == set(created)  # every message's create span has its process span

        telemetry.flush()
        sent = otel.points("messaging.client.sent.messages")
        assert total(sent, **{"messaging.destination.name": "payroll"}) == 4
        assert total(otel.points("messaging.client.operation.duration")) == 4
        consumed = otel.points("messaging.client.consumed.messages")
        assert total(consumed, **{"messaging.consumer.group.name": "ledger"}) == 4
        assert total(otel.points("messaging.process.duration")) == 4
    finally:
        await client.close()


async def test_lag_gauge_and_failed_sends(server: Server, otel: Otel) -> None:
    client = await jetstation.connect(server.url)
    try:
        await client.create_station("backlog", partitions=1)
        async with await client.producer("backlog") as producer:
            for i in range(50):
                await producer.enqueue(b"x", key=f"k{i}")
        consumer = await client.consumer("backlog", "slow", fetch_batch=10, max_ack_pending=10)
        first = await asyncio.wait_for(consumer.__anext__(), 20)
        deadline = asyncio.get_running_loop().time() + 10
        lag = 0.0
        while asyncio.get_running_loop().time() < deadline:
            lag = total(otel.points("jetstation.consumer.lag"), **{"messaging.consumer.group.name": "slow"})
            if lag > 0:
                break
            await asyncio.sleep(0.1)  # poll until the broker's count arrived; bounded by the deadline
        assert 0 < lag <= 49
        first.ack()
        await consumer.close()

        # A refused send is counted with its error type.
        async with await client.producer("backlog", delivery_timeout=1) as late:
            await client.delete_station("backlog")
            with pytest.raises(jetstation.JetstationError):
                await late.send(b"gone")
        telemetry.flush()
        failed = [
            p for p in otel.points("messaging.client.sent.messages") if "error.type" in p.attributes
        ]
        assert failed and failed[0].attributes["error.type"] in {"not_found", "timed_out"}
    finally:
        await client.close()


async def test_not_instrumented_adds_no_headers(server: Server) -> None:
    client = await jetstation.connect(server.url)
    try:
        await client.create_station("plain")
        async with await client.producer("plain") as producer:
            await producer.send(b"x", key="k")
        async with await client.consumer("plain", "g") as consumer:
            d = await asyncio.wait_for(consumer.__anext__(), 20)
            assert d.header("traceparent") is None
            with telemetry.process(d, "g"):
                d.ack()
    finally:
        await client.close()
