'use strict'
// The Node part of the cross-language trace: consumes COUNT messages of
// STATION in GROUP with a handler, then writes every finished span as JSON.
// Usage: JETSTATION_NODE_DIR=bindings/node node consumer.js URL STATION GROUP COUNT OUT.json
const { createRequire } = require('node:module')
const path = require('node:path')
const fs = require('node:fs')

const nodeDir = path.resolve(process.env.JETSTATION_NODE_DIR)
const load = createRequire(path.join(nodeDir, 'package.json'))
const api = load('@opentelemetry/api')
const { AsyncLocalStorageContextManager } = load('@opentelemetry/context-async-hooks')
const { W3CTraceContextPropagator } = load('@opentelemetry/core')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = load('@opentelemetry/sdk-trace-base')
const jetstation = load(nodeDir)

async function main([url, station, group, count, out]) {
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  jetstation.telemetry.instrument({ tracerProvider })
  const tracer = tracerProvider.getTracer('billing')
  const client = await jetstation.connect(url)
  const consumer = await client.consumer(station, group)
  process.stdout.write('ready\n')
  let handled = 0
  await new Promise((resolve, reject) => {
    consumer.consume(async () => {
      tracer.startSpan('book invoice').end()
      if (++handled === Number(count)) resolve()
    }).catch(reject)
  })
  await consumer.close()
  await client.close()
  jetstation.telemetry.uninstrument()
  const dump = spans.getFinishedSpans().map((s) => ({
    name: s.name,
    kind: ['internal', 'server', 'client', 'producer', 'consumer'][s.kind],
    trace_id: s.spanContext().traceId,
    span_id: s.spanContext().spanId,
    parent: s.parentSpanContext?.spanId ?? '',
    links: s.links.map((l) => l.context.spanId),
    attributes: Object.fromEntries(Object.entries(s.attributes).map(([k, v]) => [k, String(v)])),
  }))
  fs.writeFileSync(out, JSON.stringify(dump))
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error)
  process.exit(1)
})
