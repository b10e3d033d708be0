'use strict'
// OpenTelemetry: trace context in the headers, create/process spans linked
// across the broker, and the messaging metrics, against a real nats-server.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const api = require('@opentelemetry/api')
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
const { W3CTraceContextPropagator } = require('@opentelemetry/core')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { MeterProvider, InMemoryMetricExporter, AggregationTemporality, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics')
const jetstation = require('..')
const { startServer } = require('./harness.js')

api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
api.propagation.setGlobalPropagator(new W3CTraceContextPropagator())

function otel() {
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  return {
    tracerProvider,
    meterProvider,
    finished: (name) => spans.getFinishedSpans().filter((s) => s.name === name),
    async points(metric) {
      const { resourceMetrics } = await reader.collect()
      return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === metric).flatMap((m) => m.dataPoints)
    },
  }
}

const total = (points, attrs = {}) =>
  points
    .filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
    .reduce((sum, p) => sum + (typeof p.value === 'number' ? p.value : p.value.count), 0)

test('trace context travels in the headers; process spans are children of create spans, linked; metrics', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const o = otel()
  jetstation.telemetry.instrument({ tracerProvider: o.tracerProvider, meterProvider: o.meterProvider })
  t.after(() => jetstation.telemetry.uninstrument())
  const client = await jetstation.connect(server.url)
  t.after(() => client.close())
  await client.createStation('payroll', { partitions: 2 })
  const producer = await client.producer('payroll')
  const tracer = o.tracerProvider.getTracer('test')
  const request = tracer.startSpan('request')
  await api.context.with(api.trace.setSpan(api.context.active(), request), async () => {
    await producer.send({ salary: 1 }, { key: 'emp-1' })
    await (await producer.enqueue('raise', { key: 'emp-2', headers: { source: 'hr' } })).receipt()
  })
  request.end()
  await producer.sendBatch([{ payload: 'a', key: 'emp-3' }, { payload: 'b', key: 'emp-4' }])
  await producer.close()

  const creates = o.finished('create payroll')
  assert.equal(creates.length, 4)
  for (const span of creates.slice(0, 2)) {
    assert.equal(span.kind, api.SpanKind.PRODUCER)
    assert.equal(span.parentSpanContext?.spanId, request.spanContext().spanId)
    assert.equal(span.attributes['messaging.system'], 'nats')
    assert.equal(span.attributes['messaging.operation.type'], 'create')
  }

  const consumer = await client.consumer('payroll', 'ledger')
  const handled = new Map()
  await new Promise((resolve, reject) => {
    consumer.consume(async (m) => {
      handled.set(m.key, { active: api.trace.getSpanContext(api.context.active()), traceparent: m.header('traceparent') })
      if (m.key === 'emp-2') assert.equal(m.header('source'), 'hr')
      if (handled.size === 4) resolve()
    }).catch(reject)
  })
  await consumer.close()

  const created = new Map(creates.map((c) => [c.spanContext().spanId, c]))
  const processes = o.finished('process payroll')
  assert.equal(processes.length, 4)
  for (const span of processes) {
    assert.equal(span.kind, api.SpanKind.CONSUMER)
    const create = created.get(span.parentSpanContext?.spanId)
    assert.ok(create, 'a process span is the child of its message\'s create span')
    assert.equal(span.spanContext().traceId, create.spanContext().traceId)
    assert.deepEqual(span.links.map((l) => l.context.spanId), [create.spanContext().spanId])
    assert.equal(span.attributes['messaging.consumer.group.name'], 'ledger')
  }
  assert.equal(new Set(processes.map((s) => s.parentSpanContext.spanId)).size, 4)
  for (const [key, { active, traceparent }] of handled) {
    assert.equal(active.traceId, traceparent.split('-')[1], key)
  }

  jetstation.telemetry.flush()
  assert.equal(total(await o.points('messaging.client.sent.messages'), { 'messaging.destination.name': 'payroll' }), 4)
  assert.equal(total(await o.points('messaging.client.operation.duration')), 4)
  assert.equal(total(await o.points('messaging.client.consumed.messages'), { 'messaging.consumer.group.name': 'ledger' }), 4)
  assert.equal(total(await o.points('messaging.process.duration')), 4)
})

test('the lag gauge follows the broker; without instrumentation no header is added', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const plainClient = await jetstation.connect(server.url)
  await plainClient.createStation('plain')
  await plainClient.producer('plain').then(async (p) => { await p.send('x', { key: 'k' }); await p.close() })
  const plain = await plainClient.consumer('plain', 'g')
  const d = await plain.next()
  assert.equal(d.header('traceparent'), null)
  assert.equal(await jetstation.telemetry.processMessage(d, 'g', () => 7), 7)
  d.ack()
  await plain.close()
  await plainClient.close()

  const o = otel()
  jetstation.telemetry.instrument({ tracerProvider: o.tracerProvider, meterProvider: o.meterProvider })
  t.after(() => jetstation.telemetry.uninstrument())
  const client = await jetstation.connect(server.url)
  t.after(() => client.close())
  await client.createStation('backlog')
  const producer = await client.producer('backlog')
  for (let i = 0; i < 50; i++) await producer.enqueue('x', { key: `k${i}` })
  await producer.close()
  const consumer = await client.consumer('backlog', 'slow', { fetchBatch: 10, maxAckPending: 10 })
  const first = await consumer.next()
  let lag = 0
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    lag = total(await o.points('jetstation.consumer.lag'), { 'messaging.consumer.group.name': 'slow' })
    if (lag > 0) break
    await new Promise((r) => setTimeout(r, 100)) // poll until the broker's count arrived; the deadline bounds it
  }
  assert.ok(lag > 0 && lag <= 49, `lag ${lag}`)
  first.ack()
  await consumer.close()
})
