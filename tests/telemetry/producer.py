"""The Python part of the cross-language trace: sends COUNT orders, each
inside its own "checkout" span, then writes every finished span as JSON.

Usage: producer.py URL STATION COUNT OUT.json
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Dict, List

from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import jetstation
from jetstation import telemetry


def dump(spans: InMemorySpanExporter) -> List[Dict[str, Any]]:
    out = []
    for s in spans.get_finished_spans():
        out.append(
            {
                "name": s.name,
                "kind": s.kind.name.lower(),
                "trace_id": f"{s.context.trace_id:032x}",
                "span_id": f"{s.context.span_id:016x}",
                "parent": f"{s.parent.span_id:016x}" if s.parent else "",
                "links": [f"{link.context.span_id:016x}" for link in s.links],
                "attributes": {k: str(v) for k, v in (s.attributes or {}).items()},
            }
        )
    return out


async def main(url: str, station: str, count: int, out: str) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    propagate.set_global_textmap(TraceContextTextMapPropagator())
    telemetry.instrument(tracer_provider=provider)
    tracer = provider.get_tracer("shop")
    async with await jetstation.connect(url) as client:
        async with await client.producer(station) as producer:
            for i in range(count):
                with tracer.start_as_current_span(f"checkout {i}"):
                    await producer.send({"order": i}, key=f"order-{i}")
    telemetry.uninstrument()
    with open(out, "w") as f:
        json.dump(dump(spans), f)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
