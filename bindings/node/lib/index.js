'use strict'
// jetstation for Node.js: every behaviour lives in the Rust core (../native);
// this facade converts payloads, maps errors to classes, and offers async
// iteration, AbortSignal and Symbol.asyncDispose.

const native = require('../native/index.js')
const errors = require('./errors.js')

const { mapError } = errors

async function call(fn) {
  try {
    return await fn()
  } catch (error) {
    throw mapError(error)
  }
}

function sync(fn) {
  try {
    return fn()
  } catch (error) {
    throw mapError(error)
  }
}

function toBuffer(payload) {
  if (Buffer.isBuffer(payload)) return payload
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
  if (payload !== null && typeof payload === 'object') return Buffer.from(JSON.stringify(payload), 'utf8')
  throw new errors.InvalidArgumentError(
    `payload must be a Buffer, Uint8Array, string or JSON object, not ${payload === null ? 'null' : typeof payload}`,
  )
}

function toHeaders(headers) {
  return headers ? Object.entries(headers).map(([k, v]) => [k, String(v)]) : undefined
}

function abortError(signal) {
  const error = new Error('the operation was aborted', { cause: signal.reason })
  error.name = 'AbortError'
  error.code = 'ABORT_ERR'
  return error
}

/** Rejects as soon as `signal` aborts (the core operation may still finish). */
function abortable(promise, signal) {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(abortError(signal))
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v) },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e) },
    )
  })
}

/** Connects and checks the server (2.12 or newer, JetStream enabled). */
async function connect(urls = 'nats://127.0.0.1:4222', options = {}) {
  const list = Array.isArray(urls) ? urls : [urls]
  return new Client(await call(() => native.connect(list, options)))
}

class Client {
  constructor(inner) {
    this._inner = inner
  }
  get serverVersion() { return this._inner.serverVersion }
  createStation(name, config) { return call(() => this._inner.createStation(name, config)) }
  updateStation(name, config) { return call(() => this._inner.updateStation(name, config)) }
  station(name) { return call(() => this._inner.station(name)) }
  stations() { return call(() => this._inner.stations()) }
  deleteStation(name) { return call(() => this._inner.deleteStation(name)) }
  async producer(station, options) { return new Producer(await call(() => this._inner.producer(station, options))) }
  async consumer(station, group, options) {
    return new Consumer(await call(() => this._inner.consumer(station, group, options)))
  }
  deleteGroup(station, group) { return call(() => this._inner.deleteGroup(station, group)) }
  deadLetters(station) { return call(() => this._inner.deadLetters(station)) }
  replayDeadLetter(station, sequence) { return call(() => this._inner.replayDeadLetter(station, sequence)) }
  replayDeadLetters(station) { return call(() => this._inner.replayDeadLetters(station)) }
  registerSchema(name, format, source, { messageType, compatibility } = {}) {
    return call(() => this._inner.registerSchema(name, format, source, messageType, compatibility))
  }
  schema(name, version) { return call(() => this._inner.schema(name, version)) }
  schemas() { return call(() => this._inner.schemas()) }
  setSchemaCompatibility(name, mode) { return call(() => this._inner.setSchemaCompatibility(name, mode)) }
  deleteSchemaVersion(name, version) { return call(() => this._inner.deleteSchemaVersion(name, version)) }
  /** Encodes a plain value with a Protobuf/Avro schema (or validates JSON). */
  encodeWithSchema(name, value, version) {
    return call(() => this._inner.encodeWithSchema(name, JSON.stringify(value), version))
  }
  async decodeWithSchema(name, payload, version) {
    return JSON.parse(await call(() => this._inner.decodeWithSchema(name, toBuffer(payload), version)))
  }
  close() { return call(() => this._inner.close()) }
  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() { await this.close() }
}

class SendHandle {
  constructor(inner) {
    this._inner = inner
  }
  /** Resolves with the receipt once the broker stored the message. */
  receipt() {
    const ready = sync(() => this._inner.tryReceipt())
    return ready ? Promise.resolve(ready) : call(() => this._inner.wait())
  }
}

class Producer {
  constructor(inner) {
    this._inner = inner
    this._waiting = null
  }
  get station() { return this._inner.station }
  get producerId() { return this._inner.producerId }
  /** Sends and resolves once the broker stored the message. */
  send(payload, { key, headers, msgId, signal } = {}) {
    return abortable(call(() => this._inner.send(toBuffer(payload), key, toHeaders(headers), msgId)), signal)
  }
  /**
   * Queues a message and resolves with a handle (its `receipt()` resolves
   * once stored). Messages keep the order of the calls, also when one has to
   * wait for room in the buffer.
   */
  async enqueue(payload, { key, headers, msgId } = {}) {
    const data = toBuffer(payload)
    const hdrs = toHeaders(headers)
    while (this._waiting) await this._waiting
    const ready = sync(() => this._inner.tryEnqueue(data, key, hdrs, msgId))
    if (ready) return new SendHandle(ready)
    const pending = call(() => this._inner.enqueue(data, key, hdrs, msgId))
    this._waiting = pending.then(() => {}, () => {}).finally(() => { this._waiting = null })
    return new SendHandle(await pending)
  }
  /** Sends many `{ payload, key }` in one call; receipts in order. */
  sendBatch(messages) {
    return call(() => this._inner.sendBatch(messages.map((m) => ({ payload: toBuffer(m.payload), key: m.key }))))
  }
  flush() { return call(() => this._inner.flush()) }
  close() { return call(() => this._inner.close()) }
  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() { await this.close() }
}

class Message {
  constructor(inner) {
    this._inner = inner
    this.payload = inner.payload
    this.key = inner.key
    this.headers = inner.headers
    this.station = inner.station
    this.partition = inner.partition
    this.sequence = inner.sequence
    this.deliveries = inner.deliveries
    this.msgId = inner.msgId
  }
  header(name) { return this._inner.header(name) }
  /** The payload parsed as JSON. */
  json() { return JSON.parse(this.payload.toString('utf8')) }
  ack() { sync(() => this._inner.ack()) }
  nack({ delayMs, reason } = {}) { sync(() => this._inner.nack(delayMs, reason)) }
  term(reason) { sync(() => this._inner.term(reason)) }
  /** Gives the message back unprocessed, without counting a delivery. */
  release() { sync(() => this._inner.release()) }
  inProgress() { return call(() => this._inner.inProgress()) }
}

class Consumer {
  constructor(inner) {
    this._inner = inner
  }
  get station() { return this._inner.station }
  get group() { return this._inner.group }

  /** The next message, or null once closed. Rejects with AbortError on abort. */
  async next({ signal } = {}) {
    if (signal?.aborted) throw abortError(signal)
    const onAbort = () => this._inner.interrupt()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const message = await call(() => this._inner.next())
      if (signal?.aborted) {
        // Interrupted, or aborted as it arrived: give it back.
        if (message) message.release()
        throw abortError(signal)
      }
      return message ? new Message(message) : null
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Every message until closed or aborted; leaving the loop closes the consumer. */
  async *messages({ signal } = {}) {
    try {
      for (;;) {
        const message = await this.next({ signal })
        if (message === null) return
        yield message
      }
    } finally {
      await this.close()
    }
  }

  [Symbol.asyncIterator]() {
    return this.messages()
  }

  /** How each partition of this member is doing (owned, in sync, held, undelivered, last error). */
  health() { return call(() => this._inner.health()) }

  /**
   * Runs `handler` on every message until closed (or `signal` aborts): a
   * resolved handler acks, a rejected one nacks with its error as reason.
   */
  async consume(handler, { signal } = {}) {
    const running = new Set()
    try {
      for (;;) {
        let message
        try {
          message = await this.next({ signal })
        } catch (error) {
          if (error?.name === 'AbortError') break
          throw error
        }
        if (message === null) break
        const task = Promise.resolve()
          .then(() => handler(message))
          .then(
            () => message.ack(),
            (error) => message.nack({ reason: `${error?.name ?? 'Error'}: ${error?.message ?? error}` }),
          )
          .finally(() => running.delete(task))
        running.add(task)
      }
    } finally {
      await Promise.allSettled([...running])
    }
  }

  /** Stops fetching, waits for held messages to be settled, commits. */
  close() { return call(() => this._inner.close()) }
  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() { await this.close() }
}

/**
 * Sends core log events at or above `filter` to `logger` (`null` silences
 * them). Silent by default; DEBUG=jetstation logs to standard error.
 */
function setLogger(logger, filter = 'info') {
  sync(() => native.setLogger(logger, filter))
}

function stderrLogger(record) {
  process.stderr.write(`jetstation ${record.level} ${record.target}: ${record.message}\n`)
}

if (/\bjetstation\b/.test(process.env.DEBUG ?? '')) setLogger(stderrLogger, process.env.JETSTATION_LOG ?? 'debug')

module.exports = {
  connect,
  setLogger,
  Client,
  Producer,
  Consumer,
  Message,
  SendHandle,
  ...errors,
}
