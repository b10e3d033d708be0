"use strict";
var __createBinding = (this && this.__createBinding) || (Object.create ? (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    var desc = Object.getOwnPropertyDescriptor(m, k);
    if (!desc || ("get" in desc ? !m.__esModule : desc.writable || desc.configurable)) {
      desc = { enumerable: true, get: function() { return m[k]; } };
    }
    Object.defineProperty(o, k2, desc);
}) : (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    o[k2] = m[k];
}));
var __exportStar = (this && this.__exportStar) || function(m, exports) {
    for (var p in m) if (p !== "default" && !Object.prototype.hasOwnProperty.call(exports, p)) __createBinding(exports, m, p);
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.Consumer = exports.Message = exports.Producer = exports.SendHandle = exports.Client = exports.telemetry = void 0;
exports.connect = connect;
exports.setLogger = setLogger;
// jetstation for Node.js: every behaviour lives in the Rust core (../native);
// this facade converts payloads, maps errors to classes, and offers async
// iteration, AbortSignal and Symbol.asyncDispose. Compiled by `npm run
// build:ts` into lib/ (CommonJS, declarations, and an ES module entry).
const native = require("../native/index.js");
const errors_1 = require("./errors");
const options_1 = require("./options");
const telemetry = require("./telemetry");
exports.telemetry = telemetry;
__exportStar(require("./errors"), exports);
Symbol.asyncDispose ??= Symbol.for('Symbol.asyncDispose');
async function call(fn) {
    try {
        return await fn();
    }
    catch (error) {
        throw (0, errors_1.mapError)(error);
    }
}
function sync(fn) {
    try {
        return fn();
    }
    catch (error) {
        throw (0, errors_1.mapError)(error);
    }
}
function toBuffer(payload) {
    if (Buffer.isBuffer(payload))
        return payload;
    if (payload instanceof Uint8Array)
        return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (typeof payload === 'string')
        return Buffer.from(payload, 'utf8');
    if (payload !== null && typeof payload === 'object')
        return Buffer.from(JSON.stringify(payload), 'utf8');
    throw new errors_1.InvalidArgumentError(`payload must be a Buffer, Uint8Array, string or JSON object, not ${payload === null ? 'null' : typeof payload}`);
}
function toHeaders(headers) {
    return headers ? Object.entries(headers).map(([k, v]) => [k, String(v)]) : undefined;
}
function abortError(signal) {
    const error = new Error('the operation was aborted', { cause: signal.reason });
    error.name = 'AbortError';
    error.code = 'ABORT_ERR';
    return error;
}
/** Rejects as soon as `signal` aborts (the core operation may still finish). */
function abortable(promise, signal) {
    if (!signal)
        return promise;
    if (signal.aborted)
        return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
        const onAbort = () => reject(abortError(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        promise.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e) => { signal.removeEventListener('abort', onAbort); reject(e); });
    });
}
/** Connects and checks the server (2.12 or newer, JetStream enabled). */
async function connect(urls = 'nats://127.0.0.1:4222', options = {}) {
    const list = Array.isArray(urls) ? urls : [urls];
    (0, options_1.checkOptions)('connect', options);
    const inner = await call(() => native.connect(list, options));
    telemetry.attachClient(inner);
    return new Client(inner);
}
class Client {
    inner;
    /** @internal */
    constructor(inner) {
        this.inner = inner;
    }
    get serverVersion() { return this.inner.serverVersion; }
    createStation(name, config) {
        return call(async () => { (0, options_1.checkOptions)('station', config); return this.inner.createStation(name, config); });
    }
    updateStation(name, config) {
        return call(async () => { (0, options_1.checkOptions)('station', config); return this.inner.updateStation(name, config); });
    }
    station(name) { return call(() => this.inner.station(name)); }
    stations() { return call(() => this.inner.stations()); }
    deleteStation(name) { return call(() => this.inner.deleteStation(name)); }
    async producer(station, options) {
        (0, options_1.checkOptions)('producer', options);
        return new Producer(await call(() => this.inner.producer(station, options)));
    }
    async consumer(station, group, options) {
        (0, options_1.checkOptions)('consumer', options);
        const consumer = new Consumer(await call(() => this.inner.consumer(station, group, options)));
        telemetry.attachMember(consumer);
        return consumer;
    }
    deleteGroup(station, group) { return call(() => this.inner.deleteGroup(station, group)); }
    deadLetters(station) { return call(() => this.inner.deadLetters(station)); }
    replayDeadLetter(station, sequence) {
        return call(() => this.inner.replayDeadLetter(station, sequence));
    }
    /** The station's partitions (messages, bytes, sequences, times, cluster placement), dead letters and schema. */
    stationStats(station) { return call(() => this.inner.stationStats(station)); }
    /** The station's consumer groups: live members and the partitions each owns, and the lag per partition. */
    groups(station) { return call(() => this.inner.groups(station)); }
    /** The latest message of `key` in a compacted station, or null (never written, or deleted). */
    latest(station, key) {
        return call(() => this.inner.latest(station, key));
    }
    /** Every key's latest message in a compacted station: `for await (const entry of client.snapshot(station))`. */
    async *snapshot(station) {
        const snapshot = await call(() => this.inner.snapshot(station));
        for (;;) {
            const entry = await call(() => snapshot.next());
            if (entry === null)
                return;
            yield entry;
        }
    }
    /** Replays every dead letter of `station`, oldest first. */
    replayDeadLetters(station) { return call(() => this.inner.replayDeadLetters(station)); }
    /** Removes every dead letter of `station` for good; returns how many there were. */
    purgeDeadLetters(station) { return call(() => this.inner.purgeDeadLetters(station)); }
    registerSchema(name, format, source, { messageType, compatibility } = {}) {
        return call(() => this.inner.registerSchema(name, format, source, messageType, compatibility));
    }
    schema(name, version) { return call(() => this.inner.schema(name, version)); }
    schemas() { return call(() => this.inner.schemas()); }
    setSchemaCompatibility(name, mode) {
        return call(() => this.inner.setSchemaCompatibility(name, mode));
    }
    deleteSchemaVersion(name, version) {
        return call(() => this.inner.deleteSchemaVersion(name, version));
    }
    /** Encodes a plain value with a Protobuf/Avro schema (or validates JSON). */
    encodeWithSchema(name, value, version) {
        return call(() => this.inner.encodeWithSchema(name, JSON.stringify(value), version));
    }
    async decodeWithSchema(name, payload, version) {
        return JSON.parse(await call(() => this.inner.decodeWithSchema(name, toBuffer(payload), version)));
    }
    close() { return call(() => this.inner.close()); }
    async [Symbol.asyncDispose]() { await this.close(); }
}
exports.Client = Client;
/** Messages per native call of `sendBatch`. */
const SEND_BATCH_CHUNK = 4096;
/** Where `tryReceipt` writes a stored message's partition, sequence and duplicate flag. */
const receiptNumbers = new Float64Array(3);
class SendHandle {
    inner;
    station;
    /** @internal */
    constructor(inner, station) {
        this.inner = inner;
        this.station = station;
    }
    /** Resolves with the receipt once the broker stored the message. */
    receipt() {
        // A stored message's receipt comes as its id, with its numbers in
        // `receiptNumbers`: an object literal made here costs less than a
        // native object or array made per message.
        let msgId;
        try {
            msgId = native.tryReceipt(this.inner, receiptNumbers);
        }
        catch (error) {
            return Promise.reject((0, errors_1.mapError)(error)); // a failed message, or awaited twice
        }
        if (msgId === null)
            return call(() => native.waitReceipt(this.inner));
        return Promise.resolve({
            station: this.station,
            partition: receiptNumbers[0],
            sequence: receiptNumbers[1],
            duplicate: receiptNumbers[2] === 1,
            msgId,
        });
    }
}
exports.SendHandle = SendHandle;
class Producer {
    inner;
    waiting = null;
    /** The station this producer sends to. */
    station;
    producerId;
    /** The native producer as an external, for the per-message `tryEnqueue`. */
    sender;
    /** @internal */
    constructor(inner) {
        this.inner = inner;
        // Read once: every send uses the station, and a native getter makes a new string per call.
        this.station = inner.station;
        this.producerId = inner.producerId;
        this.sender = inner.sender();
    }
    /** Sends and resolves once the broker stored the message. */
    send(payload, { key, headers, msgId, signal } = {}) {
        const hdrs = toHeaders(telemetry.headersFor(this.station, headers));
        return abortable(call(() => this.inner.send(toBuffer(payload), key, hdrs, msgId)), signal);
    }
    /**
     * Queues the message at once when the producer has room and returns its
     * handle; returns null, queueing nothing, when it would have to wait for
     * room (then use `enqueue`). Never waits.
     */
    tryEnqueue(payload, { key, headers, msgId } = {}) {
        if (this.waiting)
            return null; // an enqueue waiting for room goes first
        const hdrs = toHeaders(telemetry.headersFor(this.station, headers));
        const ready = sync(() => native.tryEnqueue(this.sender, toBuffer(payload), key, hdrs, msgId));
        return ready ? new SendHandle(ready, this.station) : null;
    }
    /**
     * Queues a message and resolves with a handle (its `receipt()` resolves
     * once stored). Messages keep the order of the calls, also when one has to
     * wait for room in the buffer.
     */
    async enqueue(payload, { key, headers, msgId } = {}) {
        const data = toBuffer(payload);
        const hdrs = toHeaders(telemetry.headersFor(this.station, headers));
        while (this.waiting)
            await this.waiting;
        const ready = sync(() => native.tryEnqueue(this.sender, data, key, hdrs, msgId));
        if (ready)
            return new SendHandle(ready, this.station);
        const pending = call(() => this.inner.enqueue(data, key, hdrs, msgId));
        this.waiting = pending.then(() => { }, () => { }).finally(() => { this.waiting = null; });
        return new SendHandle(await pending, this.station);
    }
    /**
     * Sends many `{ payload, key }` in one call; receipts in order.
     *
     * Messages are checked (key, size, schema) and queued in chunks of 4,096,
     * each chunk checked whole before any of it is queued: a batch of up to
     * 4,096 messages with a refused message sends nothing. In a larger batch
     * the chunks before the refused message's chunk are queued and sent; the
     * error names the message and says so.
     */
    async sendBatch(messages) {
        for (const m of messages) {
            if (m.key != null && typeof m.key !== 'string')
                throw new errors_1.InvalidArgumentError(`key must be a string, not ${typeof m.key}`);
        }
        const traced = telemetry.active(); // then each message carries its own trace context
        const payloads = messages.map((m) => toBuffer(m.payload));
        // Chunks of SEND_BATCH_CHUNK, by column (payloads, keys, headers when
        // traced): the JavaScript thread hands over the next chunk while the
        // earlier ones are sent, and turns each chunk's receipts into objects as
        // it completes, instead of converting every message before the first
        // leaves and every receipt after the last is stored.
        const chunks = [];
        for (let start = 0; start < messages.length; start += SEND_BATCH_CHUNK) {
            const end = Math.min(start + SEND_BATCH_CHUNK, messages.length);
            const keys = new Array(end - start);
            for (let i = start; i < end; i++)
                keys[i - start] = messages[i].key ?? undefined;
            const headers = traced
                ? keys.map(() => toHeaders(telemetry.headersFor(this.station, undefined)))
                : undefined;
            const chunk = payloads.slice(start, end);
            const queued = await call(() => this.inner.enqueueBatch(chunk, keys, headers, start, messages.length));
            const receipts = call(() => queued.wait()).then((r) => this.receipts(r));
            receipts.catch(() => { }); // awaited below in order; meanwhile a failure is not unhandled
            chunks.push(receipts);
        }
        const receipts = [];
        for (const chunk of chunks)
            receipts.push(...(await chunk));
        return receipts;
    }
    /** The receipt objects of one chunk, from its columns. */
    receipts(columns) {
        const { partitions, sequences, duplicates } = columns;
        const msgIds = columns.msgIds.split('\n');
        const receipts = new Array(msgIds.length);
        for (let i = 0; i < msgIds.length; i++) {
            receipts[i] = {
                station: this.station,
                partition: partitions[i],
                sequence: sequences[i],
                duplicate: duplicates[i] === 1,
                msgId: msgIds[i],
            };
        }
        return receipts;
    }
    /** Deletes `key` from a compacted station: a tombstone, stored in the key's order. */
    delete(key) { return call(() => this.inner.delete(key)); }
    flush() { return call(() => this.inner.flush()); }
    close() { return call(() => this.inner.close()); }
    async [Symbol.asyncDispose]() { await this.close(); }
}
exports.Producer = Producer;
class Message {
    inner;
    payload;
    key;
    headers;
    station;
    partition;
    sequence;
    deliveries;
    msgId;
    /** A tombstone: its key was deleted. */
    isDelete;
    /** @internal */
    constructor(inner) {
        this.inner = inner;
        this.payload = inner.payload;
        this.key = inner.key;
        this.headers = inner.headers;
        this.station = inner.station;
        this.partition = inner.partition;
        this.sequence = inner.sequence;
        this.deliveries = inner.deliveries;
        this.msgId = inner.msgId;
        this.isDelete = inner.isDelete;
    }
    header(name) { return this.inner.header(name); }
    /** The payload parsed as JSON. */
    json() { return JSON.parse(this.payload.toString('utf8')); }
    /**
     * Whether the message is still this member's to run: false once the
     * process stopped after it was handed out and the group gave its partition
     * to another member meanwhile (do not run it; settling it does nothing).
     * Waits while the member asks the broker after such a stop. `next()`,
     * iteration and `consume` ask before they hand a message on.
     */
    async claim() {
        // Most answers are known at once, and come without a turn of the event
        // loop: one turn is time in which the process can stop.
        return this.inner.claimNow() ?? (await call(() => this.inner.claim()));
    }
    /** Done: committed once every earlier message of its partition is done. */
    ack() { sync(() => this.inner.ack()); }
    /** Failed: redelivered after `delayMs` (or the growing default), or dead-lettered. */
    nack({ delayMs, reason } = {}) { sync(() => this.inner.nack(delayMs, reason)); }
    /** Never again: dead-lettered at once. */
    term(reason) { sync(() => this.inner.term(reason)); }
    /** Gives the message back unprocessed, without counting a delivery. */
    release() { sync(() => this.inner.release()); }
    /** Still working: postpones the redelivery by the ack wait. */
    inProgress() { return call(() => this.inner.inProgress()); }
}
exports.Message = Message;
class Consumer {
    inner;
    /** @internal */
    constructor(inner) {
        this.inner = inner;
    }
    get station() { return this.inner.station; }
    get group() { return this.inner.group; }
    /** Messages of this member's partitions the broker has not delivered yet. */
    get lag() { return this.inner.lag; }
    /** The next message, or null once closed. Rejects with AbortError on abort. */
    async next({ signal } = {}) {
        if (signal?.aborted)
            throw abortError(signal);
        const onAbort = () => this.inner.interrupt();
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
            for (;;) {
                const message = await call(() => this.inner.next());
                if (signal?.aborted) {
                    // Interrupted, or aborted as it arrived: give it back, uncounted.
                    if (message)
                        message.release();
                    throw abortError(signal);
                }
                if (!message)
                    return null;
                // The core handed it out on its own thread; asked again on this
                // thread, it says whether the process stopped meanwhile and the
                // group gave its partition to another member.
                const taken = new Message(message);
                if (await taken.claim())
                    return taken;
            }
        }
        finally {
            signal?.removeEventListener('abort', onAbort);
        }
    }
    /** Every message until closed or aborted; leaving the loop closes the consumer. */
    async *messages({ signal } = {}) {
        try {
            for (;;) {
                const message = await this.next({ signal });
                if (message === null)
                    return;
                yield message;
            }
        }
        finally {
            await this.close();
        }
    }
    [Symbol.asyncIterator]() {
        return this.messages();
    }
    /** How each partition of this member is doing (owned, in sync, held, undelivered, last error). */
    health() { return call(() => this.inner.health()); }
    /**
     * Runs `handler` on every message until closed (or `signal` aborts): a
     * resolved handler acks, a rejected one nacks with its error as reason.
     */
    async consume(handler, { signal } = {}) {
        const running = new Set();
        try {
            for (;;) {
                let message;
                try {
                    message = await this.next({ signal });
                }
                catch (error) {
                    if (error?.name === 'AbortError')
                        break;
                    throw error;
                }
                if (message === null)
                    break;
                const current = message;
                const task = Promise.resolve()
                    .then(() => telemetry.processMessage(current, this.group, () => handler(current)))
                    .then(() => current.ack(), (error) => {
                    const e = error;
                    current.nack({ reason: `${e?.name ?? 'Error'}: ${e?.message ?? String(error)}` });
                })
                    .finally(() => running.delete(task));
                running.add(task);
            }
        }
        finally {
            await Promise.allSettled([...running]);
        }
    }
    /** Stops fetching, waits for held messages to be settled, commits. */
    close() { return call(() => this.inner.close()); }
    async [Symbol.asyncDispose]() { await this.close(); }
}
exports.Consumer = Consumer;
/**
 * Sends core log events at or above `filter` to `logger` (`null` silences
 * them). Silent by default; DEBUG=jetstation logs to standard error.
 */
function setLogger(logger, filter = 'info') {
    sync(() => native.setLogger(logger, filter));
}
function stderrLogger(record) {
    process.stderr.write(`jetstation ${record.level} ${record.target}: ${record.message}\n`);
}
if (/\bjetstation\b/.test(process.env.DEBUG ?? ''))
    setLogger(stderrLogger, process.env.JETSTATION_LOG ?? 'debug');
