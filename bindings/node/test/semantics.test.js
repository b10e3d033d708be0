'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')
const jetstation = require('..')
const { startServer } = require('./harness.js')

async function setup(t) {
  const server = await startServer()
  t.after(() => server.close())
  const client = await jetstation.connect(server.url, { requestTimeoutMs: 2000 })
  t.after(() => client.close())
  return { server, client }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
async function waitFor(condition, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    // Poll interval of waitFor; the deadline above bounds the wait.
    await sleep(20)
  }
}

test('order per key over 10,000 messages', async (t) => {
  const { client } = await setup(t)
  await client.createStation('bulk', { partitions: 4 })
  const producer = await client.producer('bulk')
  const messages = []
  for (let i = 0; i < 10000; i++) messages.push({ payload: { k: `k${i % 100}`, i: Math.floor(i / 100) }, key: `k${i % 100}` })
  // Unawaited enqueues must keep call order too.
  const handles = messages.map((m) => producer.enqueue(m.payload, { key: m.key }))
  for (const h of await Promise.all(handles)) await h.receipt()
  await producer.close()
  const seen = new Map()
  const active = new Set()
  const consumer = await client.consumer('bulk', 'g', { concurrency: 16 })
  const done = consumer.consume(async (m) => {
    const { k, i } = m.json()
    assert.ok(!active.has(k), 'one key ran twice at once')
    active.add(k)
    await sleep(0) // yield, so that other messages could run meanwhile
    if (!seen.has(k)) seen.set(k, [])
    seen.get(k).push(i)
    active.delete(k)
  })
  await waitFor(() => [...seen.values()].reduce((n, v) => n + v.length, 0) >= 10000, 'all 10,000 messages')
  await consumer.close()
  await done
  assert.equal(seen.size, 100)
  for (const [k, v] of seen) assert.deepEqual(v, [...Array(100).keys()], k)
})

test('poison message goes to the dead-letter station and can be replayed', async (t) => {
  const { client } = await setup(t)
  await client.createStation('hr', { maxDeliveries: 3 })
  const producer = await client.producer('hr')
  for (const body of ['ok-1', 'poison', 'ok-2']) await producer.send(body, { key: 'emp-1' })
  const handled = []
  let fixed = false
  const consumer = await client.consumer('hr', 'payroll', { redeliveryDelayMs: 50 })
  const done = consumer.consume(async (m) => {
    if (m.payload.toString() === 'poison' && !fixed) throw new TypeError('cannot parse')
    handled.push(m.payload.toString())
  })
  await waitFor(() => handled.includes('ok-2'), 'ok-2 handled')
  assert.deepEqual(handled, ['ok-1', 'ok-2'])
  const [letter] = await client.deadLetters('hr')
  assert.equal(letter.payload.toString(), 'poison')
  assert.equal(letter.deliveries, 3)
  assert.equal(letter.lastError, 'TypeError: cannot parse')
  assert.equal(letter.originSequence, 2)
  fixed = true
  await client.replayDeadLetter('hr', letter.sequence)
  await waitFor(() => handled.includes('poison'), 'the replayed message handled')
  await consumer.close()
  await done
})

const CRASHING_MEMBER = `
const jetstation = require(${JSON.stringify(path.resolve(__dirname, '..'))})
;(async () => {
  const client = await jetstation.connect(process.argv[1])
  const consumer = await client.consumer('acks', 'g', { concurrency: 8, ackWaitMs: 2000, handoverTimeoutMs: 2000 })
  let done = 0
  const held = []
  for (;;) {
    const m = await consumer.next()
    if (m.sequence === 5) { held.push(m); continue } // never finished
    m.ack()
    if (++done === 19) { setTimeout(() => process.exit(3), 500) ; return }
  }
})()
`

test('sendBatch larger than one native chunk keeps order and checks each chunk whole', async (t) => {
  const { client } = await setup(t)
  await client.createStation('chunks')
  const producer = await client.producer('chunks')
  const count = 10000
  const bad = [...Array(count).keys()].map((i) => ({ payload: `m${i}`, key: `k${i % 7}` }))
  bad[9000] = { payload: null, key: 'k0' }
  await assert.rejects(producer.sendBatch(bad), (e) => e instanceof jetstation.InvalidArgumentError)
  assert.equal((await client.station('chunks')).messages, 0)
  // What the core refuses (here a key with a line break) is found chunk by
  // chunk: in the first chunk nothing is sent...
  bad[9000] = { payload: 'm', key: 'k0' }
  bad[1000] = { payload: 'm', key: 'Ada\r\nNats-Msg-Id: payslip-1' }
  await assert.rejects(producer.sendBatch(bad), (e) => e instanceof jetstation.InvalidArgumentError &&
    e.message.includes('message 1000 of the batch of 10000') && e.message.includes('nothing of it was queued'))
  await producer.flush()
  assert.equal((await client.station('chunks')).messages, 0)
  const receipts = await producer.sendBatch([...Array(count).keys()].map((i) => ({ payload: `m${i}`, key: `k${i % 7}` })))
  assert.equal(receipts.length, count)
  // One partition: receipts in call order are the stream's order.
  assert.deepEqual(receipts.map((r) => r.sequence), [...Array(count).keys()].map((i) => i + 1))
  for (const r of receipts) {
    assert.deepEqual([r.station, r.partition, r.duplicate], ['chunks', 0, false])
    assert.ok(r.msgId.startsWith(`${producer.producerId}-`), r.msgId)
  }
  assert.equal(new Set(receipts.map((r) => r.msgId)).size, count)
  const consumer = await client.consumer('chunks', 'g')
  const got = []
  for await (const m of consumer) {
    got.push(m.payload.toString())
    m.ack()
    if (got.length === count) break
  }
  assert.deepEqual(got, [...Array(count).keys()].map((i) => `m${i}`))
  // ...in a later one, the chunks before it were sent and the error says so.
  await client.createStation('later-chunk')
  const later = await client.producer('later-chunk')
  const batch = [...Array(count).keys()].map((i) => ({ payload: `m${i}`, key: `k${i % 7}` }))
  batch[9000] = { payload: 'm', key: 'Ada\r\nNats-Msg-Id: payslip-1' }
  await assert.rejects(later.sendBatch(batch), (e) => e instanceof jetstation.InvalidArgumentError &&
    e.message.includes('message 9000 of the batch of 10000') && e.message.includes('messages 0 to 8191 were queued'))
  await later.flush()
  assert.equal((await client.station('later-chunk')).messages, 8192)
})

test('ordered acknowledgement after a crash', async (t) => {
  const { server, client } = await setup(t)
  await client.createStation('acks')
  const producer = await client.producer('acks')
  await producer.sendBatch([...Array(20).keys()].map((i) => ({ payload: `m${i}`, key: `k${i}` })))
  const child = spawn(process.execPath, ['-e', CRASHING_MEMBER, server.url], { stdio: 'inherit' })
  const code = await new Promise((resolve) => child.on('exit', resolve))
  assert.equal(code, 3)
  const consumer = await client.consumer('acks', 'g', { ackWaitMs: 2000, handoverTimeoutMs: 2000 })
  const got = []
  for await (const m of consumer) {
    got.push(m.sequence)
    m.ack()
    if (got.length === 16) break
  }
  assert.equal(Math.min(...got), 5)
  assert.deepEqual([...got].sort((a, b) => a - b), [...Array(16).keys()].map((i) => i + 5))
})

const FROZEN_MEMBER = `
const jetstation = require(${JSON.stringify(path.resolve(__dirname, '..'))})
const readline = require('node:readline')
;(async () => {
  const client = await jetstation.connect(process.argv[1])
  const consumer = await client.consumer('frozen', 'g', { ackWaitMs: 60000, handoverTimeoutMs: 2000 })
  const m = await consumer.next()
  console.log('taken', m.payload.toString(), await m.claim())
  // The test freezes this whole process here, and says when it is back.
  const lines = readline.createInterface({ input: process.stdin })
  await new Promise((resolve) => lines.once('line', resolve))
  console.log('claimed', await m.claim())
  lines.close()
  await consumer.close()
  await client.close()
})()
`

test('a message taken before the process froze is not claimed after it', async (t) => {
  // The process of a member stops (SIGSTOP) holding a message it took and
  // has not run; the group gives the partition to another member, which
  // runs it. Back, the frozen member must not run it too: its claim says no.
  const { server, client } = await setup(t)
  await client.createStation('frozen')
  const producer = await client.producer('frozen')
  await producer.send('held', { key: 'k' })
  const child = spawn(process.execPath, ['-e', FROZEN_MEMBER, server.url], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.after(() => { child.kill('SIGCONT'); child.kill('SIGKILL') })
  const lines = require('node:readline').createInterface({ input: child.stdout })
  const said = []
  lines.on('line', (line) => said.push(line))
  await waitFor(() => said.length === 1, 'the member taking the message')
  assert.equal(said[0], 'taken held true')
  child.kill('SIGSTOP')
  const other = await client.consumer('frozen', 'g', { ackWaitMs: 60000, handoverTimeoutMs: 2000 })
  const handled = []
  const running = other.consume(async (m) => { handled.push([m.payload.toString(), m.deliveries]) })
  // New messages show the other member that the frozen one's pin expired.
  for (let i = 0; i < 200 && !handled.some(([p]) => p === 'held'); i++) {
    await producer.send(`new-${i}`, { key: 'k' })
    // A pace, not a wait for a condition: new messages, 20 a second, are what
    // show the broker's pin expiring; the loop ends once the other member ran it.
    await sleep(50)
  }
  const held = handled.filter(([p]) => p === 'held')
  assert.ok(held.length > 0 && held.every(([, d]) => d > 1), `the other member ran it, flagged: ${JSON.stringify(handled)}`)
  child.kill('SIGCONT')
  child.stdin.write('back\n')
  await waitFor(() => said.length === 2, 'the member claiming after its freeze')
  assert.equal(said[1], 'claimed false')
  const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)))
  assert.equal(code, 0)
  await other.close()
  await running
})

test('schema refusal before anything is sent', async (t) => {
  const { client } = await setup(t)
  await client.registerSchema('pay', 'json_schema', '{"type":"object","properties":{"salary":{"type":"number"}}}')
  await client.createStation('payroll', { schema: 'pay' })
  const producer = await client.producer('payroll')
  await producer.send({ salary: 10 })
  await assert.rejects(producer.send({ salary: 'ten' }), (e) => {
    assert.ok(e instanceof jetstation.SchemaValidationError)
    assert.ok(e instanceof jetstation.InvalidArgumentError)
    assert.equal(e.code, 'schema_validation')
    assert.match(e.message, /\/salary/)
    return true
  })
  assert.equal((await client.station('payroll')).messages, 1)
  await client.registerSchema('p', 'protobuf', 'syntax = "proto3"; message M { string s = 1; }', { messageType: 'M' })
  const bytes = await client.encodeWithSchema('p', { s: 'hi' })
  assert.deepEqual(await client.decodeWithSchema('p', bytes), { s: 'hi' })
})

test('AbortSignal cancels a wait; early break closes the consumer cleanly', async (t) => {
  const { client } = await setup(t)
  await client.createStation('quiet')
  const consumer = await client.consumer('quiet', 'g')
  const controller = new AbortController()
  const waiting = consumer.next({ signal: controller.signal })
  setTimeout(() => controller.abort(), 100)
  await assert.rejects(waiting, { name: 'AbortError' })
  const producer = await client.producer('quiet')
  await producer.send('one')
  await producer.send('two')
  for await (const m of consumer) {
    assert.equal(m.payload.toString(), 'one')
    m.ack()
    break
  }
  // The loop closed the consumer: its iteration has ended.
  assert.equal(await consumer.next(), null)
  // 'two' was never taken: another member of the group receives it.
  const other = await client.consumer('quiet', 'g', { handoverTimeoutMs: 2000 })
  const m = await other.next()
  assert.equal(m.payload.toString(), 'two')
  m.ack()
  await other.close()
})

test('a release costs no delivery and a message settles once', async (t) => {
  const { client } = await setup(t)
  await client.createStation('once', { maxDeliveries: 1 })
  const producer = await client.producer('once')
  await producer.send('only', { key: 'k' })
  await producer.close()
  const consumer = await client.consumer('once', 'g', { ackWaitMs: 2000, handoverTimeoutMs: 2000 })
  for (let i = 0; i < 3; i++) {
    const message = await consumer.next()
    assert.equal(message.deliveries, 1, 'a release is not a delivery')
    message.release()
  }
  const message = await consumer.next()
  message.ack()
  assert.throws(() => message.ack(), (error) => error.kind === 'invalid_argument')
  await consumer.close()
  assert.deepEqual(await client.deadLetters('once'), [])
  assert.deepEqual(await client.replayDeadLetters('once'), [])
  await client.registerSchema('mode', 'json_schema', '{"type":"object"}')
  await client.setSchemaCompatibility('mode', 'none')
  assert.equal((await client.schemas()).find((s) => s.name === 'mode').compatibility, 'none')
  await assert.rejects(client.setSchemaCompatibility('mode', 'sideways'), (error) => error.kind === 'invalid_argument')
})

test('the state view keeps the latest value of every key; a deleted key leaves it', async (t) => {
  const { client } = await setup(t)
  await client.createStation('people', { partitions: 2, compaction: true })
  const producer = await client.producer('people')
  for (const version of [1, 2, 3]) for (let k = 0; k < 5; k++) await producer.send(`k${k} v${version}`, { key: `k${k}` })
  await producer.delete('k0')
  await producer.close()
  const want = [1, 2, 3, 4].map((k) => [`k${k}`, `k${k} v3`])
  const view = async () => {
    const out = []
    for await (const entry of client.snapshot('people')) out.push([entry.key, entry.payload.toString()])
    return out.sort()
  }
  await waitFor(async () => JSON.stringify(await view()) === JSON.stringify(want), "every key's latest value")
  assert.equal((await client.latest('people', 'k2')).payload.toString(), 'k2 v3')
  assert.equal(await client.latest('people', 'k0'), null)
  const consumer = await client.consumer('people', 'audit', { concurrency: 1 })
  let deletes = 0
  for (let i = 0; i < 16; i++) {
    const message = await consumer.next()
    if (message.isDelete) deletes += 1
    message.ack()
  }
  await consumer.close()
  assert.equal(deletes, 1)
})

test('stats show partitions and a group lag that falls as the member commits', async (t) => {
  const { client } = await setup(t)
  await client.createStation('hires', { partitions: 2 })
  const producer = await client.producer('hires')
  for (let i = 0; i < 10; i++) await producer.send(`h${i}`, { key: `k${i}` })
  await producer.close()
  const stats = await client.stationStats('hires')
  assert.deepEqual(stats.partitions.map((p) => p.partition), [0, 1])
  assert.equal(stats.partitions.reduce((n, p) => n + p.messages, 0), 10)
  assert.ok(stats.partitions.every((p) => p.placement == null && p.lastTimeMs > 0))
  assert.deepEqual(await client.groups('hires'), [])
  assert.equal(await client.purgeDeadLetters('hires'), 0)
  const consumer = await client.consumer('hires', 'onboarding')
  const iterator = consumer[Symbol.asyncIterator]()
  for (let i = 0; i < 4; i++) (await iterator.next()).value.ack()
  const lag = async () => {
    const groups = await client.groups('hires')
    return groups.length === 1 && groups[0].partitions.reduce((n, p) => n + p.lag, 0) === 6
  }
  const deadline = Date.now() + 10000
  while (!(await lag())) {
    assert.ok(Date.now() < deadline, 'the group lag never fell to 6')
    // Poll interval while commits reach the broker; the deadline above bounds the wait.
    await sleep(100) // poll interval; the 10 s deadline above bounds the wait
  }
  const [group] = await client.groups('hires')
  assert.equal(group.group, 'onboarding')
  assert.deepEqual(group.members.map((m) => m.partitions), [[0, 1]])
  assert.deepEqual(group.members.map((m) => m.standby), [false])
  assert.ok(group.partitions.every((p) => p.owner === group.members[0].member))
  await consumer.close()
  await assert.rejects(client.stationStats('nowhere'), (error) => error.kind === 'not_found')
})
