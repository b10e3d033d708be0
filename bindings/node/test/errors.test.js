'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const jetstation = require('..')
const { startServer } = require('./harness.js')

async function expectKind(promise, Cls, kind) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.constructor, Cls, `${e.constructor.name}: ${e.message}`)
    assert.ok(e instanceof jetstation.JetstationError)
    assert.equal(e.code, kind)
    assert.equal(e.kind, kind)
    assert.ok(e.cause instanceof Error, 'the native error is kept as cause')
    assert.ok(e.message.length > 0 && !e.message.startsWith('['))
    return true
  })
}

test('each error kind maps to its class and code', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const port = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)) }) })
  await expectKind(jetstation.connect(`nats://127.0.0.1:${port}`), jetstation.ConnectionError, 'connection')
  const client = await jetstation.connect(server.url, { requestTimeoutMs: 2000 })
  t.after(() => client.close())
  await expectKind(client.station('missing'), jetstation.NotFoundError, 'not_found')
  await expectKind(client.createStation('bad name'), jetstation.InvalidArgumentError, 'invalid_argument')
  await client.createStation('s', { partitions: 2 })
  await expectKind(client.createStation('s', { partitions: 3 }), jetstation.AlreadyExistsError, 'already_exists')
  await expectKind(client.createStation('r3', { replicas: 3 }), jetstation.BrokerError, 'broker')
  const closed = await client.producer('s')
  await closed.close()
  await expectKind(closed.send('x'), jetstation.ClosedError, 'closed')
  await client.registerSchema('emp', 'json_schema', '{"type":"object","properties":{"n":{"type":"integer"}}}')
  await expectKind(
    client.registerSchema('emp', 'json_schema', '{"type":"object","properties":{"n":{"type":"string"}}}'),
    jetstation.IncompatibleSchemaError, 'incompatible_schema')
  await client.createStation('typed', { schema: 'emp' })
  await expectKind((await client.producer('typed')).send({ n: 'x' }), jetstation.SchemaValidationError, 'schema_validation')

  const small = await startServer({ config: 'max_payload: 2048' })
  t.after(() => small.close())
  const c = await jetstation.connect(small.url, { requestTimeoutMs: 2000 })
  t.after(() => c.close())
  await c.createStation('big')
  await expectKind((await c.producer('big')).send(Buffer.alloc(4096)), jetstation.PayloadTooLargeError, 'payload_too_large')
  const fast = await c.producer('big', { bufferBytes: 4096, whenFull: 'fail' })
  const slow = await c.producer('big', { deliveryTimeoutMs: 500 })
  small.stop()
  await assert.rejects((async () => { for (let i = 0; i < 10; i++) await fast.enqueue(Buffer.alloc(1500)) })(),
    (e) => e instanceof jetstation.BufferFullError && e.code === 'buffer_full')
  await expectKind(slow.send('z'), jetstation.TimeoutError, 'timeout')

  const secured = await startServer({ config: 'authorization { users: [ { user: app, password: s3cret } ] }' })
  t.after(() => secured.close())
  await expectKind(jetstation.connect(secured.url, { user: 'app', password: 'no' }), jetstation.AuthError, 'auth')

  const old = await startServer({ binary: process.env.NATS_SERVER_OLD_BIN ?? '/usr/sbin/nats-server' })
  t.after(() => old.close())
  await expectKind(jetstation.connect(old.url), jetstation.ServerTooOldError, 'server_too_old')
  assert.deepEqual([...jetstation.kinds].sort(), [
    'already_exists', 'auth', 'broker', 'buffer_full', 'closed', 'connection', 'incompatible_schema',
    'invalid_argument', 'not_found', 'payload_too_large', 'schema_validation', 'server_too_old', 'timeout',
  ])
})

test('a misspelt option is refused, not ignored', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  await assert.rejects(jetstation.connect(server.url, { requestTimeOutMs: 1000 }), jetstation.InvalidArgumentError)
  const client = await jetstation.connect(server.url)
  t.after(() => client.close())
  await assert.rejects(client.createStation('s', { partitons: 2 }), /unknown station setting "partitons"/)
  await client.createStation('s')
  await assert.rejects(client.producer('s', { whenfull: 'fail' }), jetstation.InvalidArgumentError)
  await assert.rejects(client.consumer('s', 'g', { concurency: 2 }), (error) => error.kind === 'invalid_argument')
})
