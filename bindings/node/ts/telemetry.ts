// OpenTelemetry for jetstation, through @opentelemetry/api (an optional peer
// dependency: install it beside jetstation). Call `telemetry.instrument()`
// once, after your SDK is registered and before connecting. Then every
// message sent gets a `create <station>` span (kind producer) whose W3C
// trace context travels in the `traceparent`/`tracestate` headers;
// `Consumer.consume` runs the handler in a `process <station>` span (kind
// consumer), child of the producer's span and linked to it (with `for await`,
// wrap your handling in `telemetry.processMessage`); and the metrics
// messaging.client.sent.messages, messaging.client.consumed.messages,
// messaging.client.operation.duration (enqueue to the broker's answer),
// messaging.process.duration and the gauge jetstation.consumer.lag are
// recorded. The Rust core times every send and counts every message handed
// out; a timer drains those measurements into the instruments every
// `intervalMs` (and `flush()` does it at once).
import type * as otel from '@opentelemetry/api'
import type * as native from '../native/index.js'

const SYSTEM = 'nats'
/** Bucket bounds (seconds) the messaging conventions recommend. */
const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

export interface InstrumentOptions {
  /** A TracerProvider; the global one by default. */
  tracerProvider?: unknown
  /** A MeterProvider; the global one by default. */
  meterProvider?: unknown
  /** How often the core's measurements are recorded (default 1000). */
  intervalMs?: number
}

/** What the telemetry needs of a delivered message. */
export interface Processed {
  readonly station: string
  readonly partition: number
  readonly headers: string[][]
  readonly deliveries: number
  readonly msgId: string | null
}

interface Member {
  readonly station: string
  readonly group: string
  readonly lag: number
}

type Attributes = Record<string, string | number>

function attributes(operation: string, station: string, partition?: number): Attributes {
  const attrs: Attributes = {
    'messaging.system': SYSTEM,
    'messaging.operation.name': operation,
    'messaging.operation.type': operation,
    'messaging.destination.name': station,
  }
  if (partition !== undefined) attrs['messaging.destination.partition.id'] = String(partition)
  return attrs
}

const headerGetter: otel.TextMapGetter<string[][]> = {
  keys: (carrier) => carrier.map(([name]) => name),
  get: (carrier, key) => carrier.find(([name]) => name.toLowerCase() === key)?.[1],
}

class Instrumentation {
  readonly clients = new Set<WeakRef<native.Client>>()
  readonly members = new Set<WeakRef<Member>>()
  private readonly tracer: otel.Tracer
  private readonly sent: otel.Counter
  private readonly consumed: otel.Counter
  private readonly operation: otel.Histogram
  private readonly processDuration: otel.Histogram
  private readonly timer: NodeJS.Timeout

  constructor(readonly api: typeof otel, options: InstrumentOptions) {
    const version = (require('../package.json') as { version: string }).version
    const tracers = (options.tracerProvider as otel.TracerProvider | undefined) ?? api.trace.getTracerProvider()
    const meters = (options.meterProvider as otel.MeterProvider | undefined) ?? api.metrics.getMeterProvider()
    this.tracer = tracers.getTracer('jetstation', version)
    const meter = meters.getMeter('jetstation', version)
    this.sent = meter.createCounter('messaging.client.sent.messages', {
      unit: '{message}', description: 'Messages the broker confirmed or refused',
    })
    this.consumed = meter.createCounter('messaging.client.consumed.messages', {
      unit: '{message}', description: 'Messages handed to the application',
    })
    this.operation = meter.createHistogram('messaging.client.operation.duration', {
      unit: 's', description: "From enqueue to the broker's answer", advice: { explicitBucketBoundaries: BOUNDS },
    })
    this.processDuration = meter.createHistogram('messaging.process.duration', {
      unit: 's', description: "The handler's run", advice: { explicitBucketBoundaries: BOUNDS },
    })
    meter
      .createObservableGauge('jetstation.consumer.lag', {
        unit: '{message}', description: "Messages of the member's partitions not delivered yet",
      })
      .addCallback((result) => {
        for (const ref of this.members) {
          const member = ref.deref()
          if (!member) { this.members.delete(ref); continue }
          let lag: number
          try { lag = member.lag } catch { continue } // closed meanwhile: nothing to report
          result.observe(lag, {
            'messaging.system': SYSTEM,
            'messaging.destination.name': member.station,
            'messaging.consumer.group.name': member.group,
          })
        }
      })
    this.timer = setInterval(() => this.drain(), options.intervalMs ?? 1000)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.drain()
  }

  drain(): void {
    for (const ref of this.clients) {
      const client = ref.deref()
      if (!client) { this.clients.delete(ref); continue }
      const drained = client.drainTelemetry()
      const counts = new Map<string, { attrs: Attributes; n: number }>()
      for (const s of drained.sends) {
        const attrs = attributes('send', s.station, s.partition)
        if (s.error) attrs['error.type'] = s.error
        this.operation.record(s.seconds, attrs)
        const key = `${s.station}\u0000${s.partition}\u0000${s.error ?? ''}`
        const entry = counts.get(key)
        if (entry) entry.n++
        else counts.set(key, { attrs, n: 1 })
      }
      for (const { attrs, n } of counts.values()) this.sent.add(n, attrs)
      for (const c of drained.consumed) {
        this.consumed.add(c.count, { ...attributes('receive', c.station, c.partition), 'messaging.consumer.group.name': c.group })
      }
    }
  }

  create(station: string, headers: Record<string, string> | undefined): Record<string, string> {
    const carrier: Record<string, string> = { ...headers }
    if (Object.keys(carrier).some((name) => name.toLowerCase() === 'traceparent')) return carrier
    const api = this.api
    const span = this.tracer.startSpan(`create ${station}`, {
      kind: api.SpanKind.PRODUCER,
      attributes: attributes('create', station),
    })
    api.propagation.inject(api.trace.setSpan(api.context.active(), span), carrier)
    span.end()
    return carrier
  }

  async process<T>(message: Processed, group: string | undefined, fn: () => T | Promise<T>): Promise<T> {
    const api = this.api
    const carried = api.propagation.extract(api.ROOT_CONTEXT, message.headers, headerGetter)
    const producer = api.trace.getSpanContext(carried)
    const linked = producer !== undefined && api.trace.isSpanContextValid(producer)
    const parent = linked ? carried : api.context.active()
    const attrs: Attributes = {
      ...attributes('process', message.station, message.partition),
      'messaging.message.delivery_count': message.deliveries,
    }
    if (message.msgId !== null) attrs['messaging.message.id'] = message.msgId
    if (group !== undefined) attrs['messaging.consumer.group.name'] = group
    const span = this.tracer.startSpan(
      `process ${message.station}`,
      { kind: api.SpanKind.CONSUMER, attributes: attrs, links: linked ? [{ context: producer }] : [] },
      parent,
    )
    const started = performance.now()
    let failed = false
    try {
      return await api.context.with(api.trace.setSpan(parent, span), fn)
    } catch (error) {
      failed = true
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: String((error as Error | undefined)?.message ?? error) })
      throw error
    } finally {
      span.end()
      const duration: Attributes = attributes('process', message.station, message.partition)
      if (group !== undefined) duration['messaging.consumer.group.name'] = group
      if (failed) duration['error.type'] = 'handler_error'
      this.processDuration.record((performance.now() - started) / 1000, duration)
    }
  }
}

let state: Instrumentation | null = null

/**
 * Turns on tracing and metrics for every client connected from now on.
 * Throws when @opentelemetry/api is not installed.
 */
export function instrument(options: InstrumentOptions = {}): void {
  if (state) return
  if (options.intervalMs !== undefined && !(options.intervalMs > 0)) {
    throw new RangeError(`intervalMs must be a positive number of milliseconds, got ${options.intervalMs}`)
  }
  let api: typeof otel
  try {
    api = require('@opentelemetry/api') as typeof otel
  } catch (cause) {
    throw new Error('jetstation telemetry needs @opentelemetry/api: npm install @opentelemetry/api', { cause })
  }
  state = new Instrumentation(api, options)
}

/** Records what was measured, then turns instrumentation off. */
export function uninstrument(): void {
  const current = state
  state = null
  current?.stop()
}

/** Records every measurement the core holds now (the timer does it every `intervalMs`). */
export function flush(): void {
  state?.drain()
}

/**
 * Runs `fn` in a `process <station>` span, child of the producer's span; for
 * `for await` loops (the handler of `consume` already runs in one). Without
 * instrumentation it just runs `fn`.
 */
export async function processMessage<T>(message: Processed, group: string | undefined, fn: () => T | Promise<T>): Promise<T> {
  return state ? state.process(message, group, fn) : fn()
}

/** @internal */
export function attachClient(client: native.Client): void {
  if (!state) return
  client.enableTelemetry()
  state.clients.add(new WeakRef(client))
}

/** @internal */
export function attachMember(member: Member): void {
  state?.members.add(new WeakRef(member))
}

/** @internal */
export function active(): boolean {
  return state !== null
}

/** @internal */
export function headersFor(station: string, headers: Record<string, string> | undefined): Record<string, string> | undefined {
  return state ? state.create(station, headers) : headers
}
