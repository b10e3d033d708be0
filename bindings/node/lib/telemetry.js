"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.instrument = instrument;
exports.uninstrument = uninstrument;
exports.flush = flush;
exports.processMessage = processMessage;
exports.attachClient = attachClient;
exports.attachMember = attachMember;
exports.active = active;
exports.headersFor = headersFor;
const SYSTEM = 'nats';
/** Bucket bounds (seconds) the messaging conventions recommend. */
const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
function attributes(operation, station, partition) {
    const attrs = {
        'messaging.system': SYSTEM,
        'messaging.operation.name': operation,
        'messaging.operation.type': operation,
        'messaging.destination.name': station,
    };
    if (partition !== undefined)
        attrs['messaging.destination.partition.id'] = String(partition);
    return attrs;
}
const headerGetter = {
    keys: (carrier) => carrier.map(([name]) => name),
    get: (carrier, key) => carrier.find(([name]) => name.toLowerCase() === key)?.[1],
};
class Instrumentation {
    api;
    clients = new Set();
    members = new Set();
    tracer;
    sent;
    consumed;
    operation;
    processDuration;
    timer;
    constructor(api, options) {
        this.api = api;
        const version = require('../package.json').version;
        const tracers = options.tracerProvider ?? api.trace.getTracerProvider();
        const meters = options.meterProvider ?? api.metrics.getMeterProvider();
        this.tracer = tracers.getTracer('jetstation', version);
        const meter = meters.getMeter('jetstation', version);
        this.sent = meter.createCounter('messaging.client.sent.messages', {
            unit: '{message}', description: 'Messages the broker confirmed or refused',
        });
        this.consumed = meter.createCounter('messaging.client.consumed.messages', {
            unit: '{message}', description: 'Messages handed to the application',
        });
        this.operation = meter.createHistogram('messaging.client.operation.duration', {
            unit: 's', description: "From enqueue to the broker's answer", advice: { explicitBucketBoundaries: BOUNDS },
        });
        this.processDuration = meter.createHistogram('messaging.process.duration', {
            unit: 's', description: "The handler's run", advice: { explicitBucketBoundaries: BOUNDS },
        });
        meter
            .createObservableGauge('jetstation.consumer.lag', {
            unit: '{message}', description: "Messages of the member's partitions not delivered yet",
        })
            .addCallback((result) => {
            for (const ref of this.members) {
                const member = ref.deref();
                if (!member) {
                    this.members.delete(ref);
                    continue;
                }
                let lag;
                try {
                    lag = member.lag;
                }
                catch {
                    continue;
                } // closed meanwhile: nothing to report
                result.observe(lag, {
                    'messaging.system': SYSTEM,
                    'messaging.destination.name': member.station,
                    'messaging.consumer.group.name': member.group,
                });
            }
        });
        this.timer = setInterval(() => this.drain(), options.intervalMs ?? 1000);
        this.timer.unref();
    }
    stop() {
        clearInterval(this.timer);
        this.drain();
    }
    drain() {
        for (const ref of this.clients) {
            const client = ref.deref();
            if (!client) {
                this.clients.delete(ref);
                continue;
            }
            const drained = client.drainTelemetry();
            const counts = new Map();
            for (const s of drained.sends) {
                const attrs = attributes('send', s.station, s.partition);
                if (s.error)
                    attrs['error.type'] = s.error;
                this.operation.record(s.seconds, attrs);
                const key = `${s.station}\u0000${s.partition}\u0000${s.error ?? ''}`;
                const entry = counts.get(key);
                if (entry)
                    entry.n++;
                else
                    counts.set(key, { attrs, n: 1 });
            }
            for (const { attrs, n } of counts.values())
                this.sent.add(n, attrs);
            for (const c of drained.consumed) {
                this.consumed.add(c.count, { ...attributes('receive', c.station, c.partition), 'messaging.consumer.group.name': c.group });
            }
        }
    }
    create(station, headers) {
        const carrier = { ...headers };
        if (Object.keys(carrier).some((name) => name.toLowerCase() === 'traceparent'))
            return carrier;
        const api = this.api;
        const span = this.tracer.startSpan(`create ${station}`, {
            kind: api.SpanKind.PRODUCER,
            attributes: attributes('create', station),
        });
        api.propagation.inject(api.trace.setSpan(api.context.active(), span), carrier);
        span.end();
        return carrier;
    }
    async process(message, group, fn) {
        const api = this.api;
        const carried = api.propagation.extract(api.ROOT_CONTEXT, message.headers, headerGetter);
        const producer = api.trace.getSpanContext(carried);
        const linked = producer !== undefined && api.trace.isSpanContextValid(producer);
        const parent = linked ? carried : api.context.active();
        const attrs = {
            ...attributes('process', message.station, message.partition),
            'messaging.message.delivery_count': message.deliveries,
        };
        if (message.msgId !== null)
            attrs['messaging.message.id'] = message.msgId;
        if (group !== undefined)
            attrs['messaging.consumer.group.name'] = group;
        const span = this.tracer.startSpan(`process ${message.station}`, { kind: api.SpanKind.CONSUMER, attributes: attrs, links: linked ? [{ context: producer }] : [] }, parent);
        const started = performance.now();
        let failed = false;
        try {
            return await api.context.with(api.trace.setSpan(parent, span), fn);
        }
        catch (error) {
            failed = true;
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: String(error?.message ?? error) });
            throw error;
        }
        finally {
            span.end();
            const duration = attributes('process', message.station, message.partition);
            if (group !== undefined)
                duration['messaging.consumer.group.name'] = group;
            if (failed)
                duration['error.type'] = 'handler_error';
            this.processDuration.record((performance.now() - started) / 1000, duration);
        }
    }
}
let state = null;
/**
 * Turns on tracing and metrics for every client connected from now on.
 * Throws when @opentelemetry/api is not installed.
 */
function instrument(options = {}) {
    if (state)
        return;
    if (options.intervalMs !== undefined && !(options.intervalMs > 0)) {
        throw new RangeError(`intervalMs must be a positive number of milliseconds, got ${options.intervalMs}`);
    }
    let api;
    try {
        api = require('@opentelemetry/api');
    }
    catch (cause) {
        throw new Error('jetstation telemetry needs @opentelemetry/api: npm install @opentelemetry/api', { cause });
    }
    state = new Instrumentation(api, options);
}
/** Records what was measured, then turns instrumentation off. */
function uninstrument() {
    const current = state;
    state = null;
    current?.stop();
}
/** Records every measurement the core holds now (the timer does it every `intervalMs`). */
function flush() {
    state?.drain();
}
/**
 * Runs `fn` in a `process <station>` span, child of the producer's span; for
 * `for await` loops (the handler of `consume` already runs in one). Without
 * instrumentation it just runs `fn`.
 */
async function processMessage(message, group, fn) {
    return state ? state.process(message, group, fn) : fn();
}
/** @internal */
function attachClient(client) {
    if (!state)
        return;
    client.enableTelemetry();
    state.clients.add(new WeakRef(client));
}
/** @internal */
function attachMember(member) {
    state?.members.add(new WeakRef(member));
}
/** @internal */
function active() {
    return state !== null;
}
/** @internal */
function headersFor(station, headers) {
    return state ? state.create(station, headers) : headers;
}
