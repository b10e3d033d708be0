// Conformance runner for Node: carries out operations read from stdin (one
// JSON object per line) with the jetstation package and answers each on
// stdout. It reports what happened; tests/conformance/run.py judges it.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import * as jetstation from '../../../bindings/node/lib/index.mjs'

const clients = new Map()
const producers = new Map()
const joined = new Map()

const answer = (value) => new Promise((resolve) => process.stdout.write(JSON.stringify(value) + '\n', resolve))
const b64 = (buffer) => Buffer.from(buffer).toString('base64')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function generated(spec) {
  const { count, keys = 0, size = 0, prefix = 'm-' } = spec
  return Array.from({ length: count }, (_, i) => ({
    payload: `${prefix}${i}`.padEnd(size, '.'),
    ...(keys ? { key: `k-${i % keys}` } : {}),
  }))
}

async function payloadOf(client, m) {
  if ('value' in m) return client.encodeWithSchema(m.schema, m.value)
  if ('payload_b64' in m) return Buffer.from(m.payload_b64, 'base64')
  return Buffer.from(String(m.payload))
}

const seconds = (s) => (s === undefined ? undefined : Math.round(s * 1000))

// Contract options (snake_case, seconds, RFC 3339) as Node takes them:
// camelCase, milliseconds with an Ms suffix. JSON has no NaN: "NaN" is it.
const contract = JSON.parse(readFileSync(new URL('../../../contract/jetstation.json', import.meta.url), 'utf8'))
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
function nodeOptions(record, options = {}) {
  const out = {}
  for (const [name, raw] of Object.entries(options)) {
    const value = raw === 'NaN' ? NaN : raw
    const type = contract.records[record][name]
    if (type === 'duration') out[camel(name) + 'Ms'] = value * 1000
    else if (type === 'time') out[camel(name) + 'Ms'] = Date.parse(value)
    else out[camel(name)] = value
  }
  return out
}

function consumerOptions(op) {
  const options = {}
  if (typeof op.start === 'string') options.start = op.start
  if (op.start && typeof op.start === 'object') options.startSequence = op.start.sequence
  if (op.concurrency !== undefined) options.concurrency = op.concurrency
  if (op.ack_wait !== undefined) options.ackWaitMs = seconds(op.ack_wait)
  if (op.handover_timeout !== undefined) options.handoverTimeoutMs = seconds(op.handover_timeout)
  if (op.redelivery_delay !== undefined) options.redeliveryDelayMs = seconds(op.redelivery_delay)
  return { ...options, ...nodeOptions('ConsumerOptions', op.options) }
}

/** The producer a step's client keeps for its station (created once). */
async function stationProducer(client, op) {
  const name = `${op.client ?? 'main'}/${op.station}`
  if (!producers.has(name)) producers.set(name, await client.producer(op.station))
  return producers.get(name)
}

async function send(client, op) {
  const producer = op.producer ? producers.get(op.producer) : await stationProducer(client, op)
  const messages = [...(op.messages ?? []), ...(op.generate ? generated(op.generate) : [])]
  const receipts = []
  if (op.op === 'send_batch') { // one call; the batch carries payloads and keys
    const batch = []
    for (const m of messages) batch.push({ payload: await payloadOf(client, m), key: m.key })
    receipts.push(...await producer.sendBatch(batch))
  } else {
    const handles = []
    for (const m of messages) {
      handles.push(await producer.enqueue(await payloadOf(client, m), { key: m.key, headers: m.headers, msgId: m.msg_id }))
    }
    for (const handle of handles) receipts.push(await handle.receipt())
  }
  return {
    receipts: receipts.map((r) => ({ partition: r.partition, sequence: r.sequence, duplicate: r.duplicate, msg_id: r.msgId })),
  }
}

async function consume(client, op) {
  let consumer
  if (op.consumer) {
    consumer = joined.get(op.consumer)
    joined.delete(op.consumer)
  } else {
    consumer = await client.consumer(op.station, op.group, consumerOptions(op))
  }
  const nack = new Map((op.nack ?? []).map((rule) => [rule.payload, rule]))
  const fail = new Set(op.fail ?? [])
  const until = new Set(op.until_payloads ?? [])
  const count = op.count ?? 0
  const minDeliveries = op.min_deliveries ?? 0
  const jitter = (op.concurrency ?? 1) > 1
  const records = []
  let secondSettle = null // the error kind of acking a message twice
  let acked = 0
  const started = performance.now()
  const finished = () => acked >= count && until.size === 0 && records.length >= minDeliveries
  let done
  const allDone = new Promise((resolve) => { done = resolve })
  const running = new Set()
  let crashing = false
  const held = [] // taken while crashing: never settled

  async function handle(message) {
    if (crashing) {
      held.push(message)
      return
    }
    const text = message.payload.toString('utf8')
    const record = {
      payload_b64: b64(message.payload),
      key: message.key,
      headers: message.headers,
      msg_id: message.msgId,
      partition: message.partition,
      sequence: message.sequence,
      deliveries: message.deliveries,
      t_ms: Math.round(performance.now() - started),
    }
    if (op.decode) {
      // Only some messages are of the schema: others record null.
      record.decoded = await client.decodeWithSchema(op.decode, message.payload).then(JSON.stringify, (error) => {
        if (error instanceof jetstation.SchemaValidationError) return null
        throw error
      })
    }
    if (jitter) await sleep(Math.random()) // handlers of different keys overlap and finish out of order
    const rule = nack.get(text)
    if (fail.has(text)) {
      records.push({ ...record, action: 'nack' })
      message.nack({ reason: `rejected by handler: ${text}` })
    } else if (rule && message.deliveries <= rule.times) {
      records.push({ ...record, action: 'nack' })
      message.nack({ delayMs: seconds(rule.delay) })
    } else {
      records.push({ ...record, action: 'ack' })
      message.ack()
      if (op.settle_twice) {
        try {
          message.ack()
          secondSettle = 'none'
        } catch (error) {
          secondSettle = error.kind ?? 'unexpected'
        }
      }
      acked += 1
      until.delete(text)
      if (op.crash_after !== undefined && acked >= op.crash_after && !crashing) {
        crashing = true
        await sleep((op.crash_wait ?? 0) * 1000) // seconds between the last ack and the crash
        await answer({ ok: { messages: records, timed_out: false } })
        process.exit(0) // a crash: nothing is closed, nothing more is committed
      }
    }
    if (finished()) done()
  }

  const pump = (async () => {
    for await (const message of consumer) {
      const task = handle(message)
      running.add(task)
      task.finally(() => running.delete(task))
    }
  })()
  let timedOut = false
  if (!finished()) {
    let timer
    const timeout = new Promise((resolve) => { timer = setTimeout(() => { timedOut = true; resolve() }, (op.timeout ?? 30) * 1000) })
    await Promise.race([allDone, timeout])
    clearTimeout(timer)
  }
  await Promise.allSettled([...running])
  await consumer.close()
  await pump.catch(() => {})
  return { messages: records, timed_out: timedOut, ...(op.settle_twice ? { second_settle: secondSettle } : {}) }
}

async function deadLetters(client, op) {
  const deadline = performance.now() + (op.timeout ?? 0) * 1000
  let letters
  for (;;) {
    letters = await client.deadLetters(op.station)
    if (letters.length >= (op.at_least ?? 0) || performance.now() > deadline) break
    await sleep(100) // dead letters are written as the last nack is processed
  }
  return {
    dead_letters: letters.map((dl) => ({
      sequence: dl.sequence,
      origin_station: dl.originStation,
      origin_partition: dl.originPartition,
      origin_sequence: dl.originSequence,
      group: dl.group,
      deliveries: dl.deliveries,
      last_error: dl.lastError,
      key: dl.key ?? null,
      payload_b64: b64(dl.payload),
    })),
  }
}

async function perform(op) {
  if (op.op === 'connect') {
    const options = { namespace: op.namespace }
    for (const name of ['user', 'password', 'token']) if (name in op) options[name] = op[name]
    if ('request_timeout' in op) options.requestTimeoutMs = seconds(op.request_timeout)
    Object.assign(options, nodeOptions('ConnectOptions', op.options))
    clients.set(op.as ?? 'main', await jetstation.connect(op.url, options))
    return {}
  }
  const client = clients.get(op.client ?? 'main')
  switch (op.op) {
    case 'create_station':
    case 'update_station': {
      const config = {}
      if ('partitions' in op) config.partitions = op.partitions
      if ('max_deliveries' in op) config.maxDeliveries = op.max_deliveries
      if ('schema' in op) config.schema = op.schema
      if ('replicas' in op) config.replicas = op.replicas
      Object.assign(config, nodeOptions('StationConfig', op.settings))
      const create = op.op === 'create_station' ? client.createStation : client.updateStation
      const station = await create.call(client, op.name, config)
      return { name: station.name, partitions: station.partitions, max_deliveries: station.maxDeliveries }
    }
    case 'delete_key':
      await (await stationProducer(client, op)).delete(op.key)
      return {}
    case 'station_stats': {
      const s = await client.stationStats(op.station)
      return {
        partitions: s.partitions.length,
        messages: s.partitions.reduce((n, p) => n + p.messages, 0),
        dead_letters: s.deadLetters,
        state_keys: s.stateKeys ?? null,
      }
    }
    case 'purge_dead_letters':
      return { purged: await client.purgeDeadLetters(op.station) }
    case 'groups': {
      const groups = await client.groups(op.station)
      return {
        names: groups.map((g) => g.group),
        members: groups.reduce((n, g) => n + g.members.length, 0),
        lag: groups.flatMap((g) => g.partitions).reduce((n, p) => n + p.lag, 0),
      }
    }
    case 'latest': {
      const entry = await client.latest(op.station, op.key)
      return { payload: entry ? entry.payload.toString() : null }
    }
    case 'snapshot': {
      const entries = {}
      for await (const e of client.snapshot(op.station)) entries[e.key] = e.payload.toString()
      return { entries }
    }
    case 'delete_station':
      await client.deleteStation(op.name)
      return {}
    case 'close_client':
      await client.close()
      return {}
    case 'station': {
      const station = await client.station(op.name)
      return { messages: station.messages, dead_letters: station.deadLetters }
    }
    case 'producer': {
      const options = {}
      if ('buffer_bytes' in op) options.bufferBytes = op.buffer_bytes
      if ('delivery_timeout' in op) options.deliveryTimeoutMs = seconds(op.delivery_timeout)
      if (op.fail_when_full) options.whenFull = 'fail'
      Object.assign(options, nodeOptions('ProducerOptions', op.options))
      producers.set(op.as, await client.producer(op.station, options))
      return {}
    }
    case 'close_producer':
      await producers.get(op.producer).close()
      return {}
    case 'send':
    case 'send_batch':
      return send(client, op)
    case 'join':
      joined.set(op.as, await client.consumer(op.station, op.group, consumerOptions(op)))
      return {}
    case 'consume':
      return consume(client, op)
    case 'dead_letters':
      return deadLetters(client, op)
    case 'replay_dead_letter': {
      const r = await client.replayDeadLetter(op.station, op.sequence)
      return { partition: r.partition, sequence: r.sequence }
    }
    case 'register_schema': {
      const v = await client.registerSchema(op.name, op.format, op.source, op.message_type ? { messageType: op.message_type } : undefined)
      return { version: v.version }
    }
    case 'encode':
      return { payload_b64: b64(await client.encodeWithSchema(op.schema, op.value)) }
    default:
      throw new Error(`unknown operation ${op.op}`)
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  const op = JSON.parse(line)
  try {
    await answer({ ok: await perform(op) })
  } catch (error) {
    if (error instanceof jetstation.JetstationError) {
      await answer({ error: { kind: error.kind, message: error.message } })
    } else {
      await answer({ error: { kind: 'unexpected', message: String(error?.stack ?? error) } })
    }
  }
}
for (const producer of producers.values()) await producer.close().catch(() => {})
for (const client of clients.values()) await client.close().catch(() => {})
