'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const jetstation = require('..')
const { startServer } = require('./harness.js')

test('round trip, handles, and the package from import and require', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const client = await jetstation.connect(server.url, { requestTimeoutMs: 2000 })
  const station = await client.createStation('hr', { partitions: 2, maxDeliveries: 3 })
  assert.equal(station.partitions, 2)
  const producer = await client.producer('hr')
  const r = await producer.send({ name: 'Ada' }, { key: 'emp-1', headers: { source: 'hr' } })
  assert.equal(r.sequence, 1)
  assert.equal(r.duplicate, false)
  const handle = await producer.enqueue(new Uint8Array([1, 2, 3]), { key: 'emp-2' })
  const receipt = await handle.receipt()
  assert.ok(receipt.msgId.startsWith(producer.producerId))
  await assert.rejects(handle.receipt(), jetstation.InvalidArgumentError, 'a handle gives its receipt once')
  const pending = await producer.enqueue('y', { key: 'emp-2' })
  const [first, second] = await Promise.allSettled([pending.receipt(), pending.receipt()])
  assert.equal(first.status, 'fulfilled')
  assert.ok(second.reason instanceof jetstation.InvalidArgumentError, 'also while the first wait is pending')
  assert.equal((await producer.send('x', { msgId: 'fixed' })).duplicate, false)
  assert.equal((await producer.send('x', { msgId: 'fixed' })).duplicate, true)
  await producer.close()
  await assert.rejects(producer.send('late'), jetstation.ClosedError)

  const consumer = await client.consumer('hr', 'payroll')
  const got = []
  for await (const message of consumer) {
    got.push(message.payload.toString('hex'))
    if (message.key === 'emp-1') assert.equal(message.header('source'), 'hr')
    message.ack()
    if (got.length === 4) break
  }
  assert.equal(got.length, 4)
  assert.equal((await client.station('hr')).messages, 4)
  const esm = await import('../lib/index.mjs')
  assert.equal(esm.connect, jetstation.connect)
  await client.close()
})

test('core log events reach a pluggable logger', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const records = []
  jetstation.setLogger((r) => records.push(r), 'jetstation=debug')
  t.after(() => jetstation.setLogger(null))
  const client = await jetstation.connect(server.url)
  await client.createStation('logged')
  await client.close()
  for (let i = 0; i < 50 && !records.some((r) => r.message.includes('connected')); i++) {
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.ok(records.some((r) => r.message.includes('connected') && r.target.startsWith('jetstation')), JSON.stringify(records))
  assert.ok(records.every((r) => ['error', 'warn', 'info', 'debug', 'trace'].includes(r.level)))
})

test('health reports each partition of a member', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const client = await jetstation.connect(server.url, { requestTimeoutMs: 2000 })
  await client.createStation('healthy', { partitions: 2 })
  const producer = await client.producer('healthy')
  for (let i = 0; i < 4; i++) await producer.send(`m${i}`, { key: `k${i}` })
  await producer.close()
  const consumer = await client.consumer('healthy', 'g', { ackWaitMs: 2000, handoverTimeoutMs: 2000 })
  let received = 0
  for await (const message of consumer) {
    if (received === 0) {
      const parts = await consumer.health()
      assert.deepEqual(parts.map((p) => p.partition), [0, 1])
      assert.ok(parts.every((p) => p.owned))
      assert.ok(parts.reduce((n, p) => n + p.held, 0) >= 1)
      assert.ok(parts.some((p) => typeof p.lastDeliveryMs === 'number'))
    }
    message.ack()
    if (++received === 4) break
  }
  await client.close()
})

test('tryEnqueue queues at once when there is room and returns null, queueing nothing, when it would wait', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const client = await jetstation.connect(server.url, { requestTimeoutMs: 2000 })
  t.after(() => client.close())
  await client.createStation('try')
  const producer = await client.producer('try')
  const handle = producer.tryEnqueue('stored', { key: 'k' })
  assert.ok(handle instanceof jetstation.SendHandle)
  assert.equal((await handle.receipt()).sequence, 1)
  // A buffer with room for one such message, and a broker that confirms
  // nothing: the first is queued, the second finds no room.
  const small = await client.producer('try', { bufferBytes: 4096 })
  server.stop()
  assert.ok(small.tryEnqueue(Buffer.alloc(2500), { key: 'k' }) instanceof jetstation.SendHandle)
  assert.equal(small.tryEnqueue(Buffer.alloc(2500), { key: 'k' }), null)
  assert.throws(() => producer.tryEnqueue(42), jetstation.InvalidArgumentError)
})
