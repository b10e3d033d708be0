'use strict'
// Produce throughput of the official Node client (nats.js, acked JetStream
// publishes), pipelined with 1,000 concurrent publishes.
// node nats_js_produce.js <url> <stream> <count> <size>; prints one JSON line.
const { connect } = require('nats')

async function main() {
  const [url, name, countArg, sizeArg] = process.argv.slice(2)
  const count = Number(countArg)
  const payload = new Uint8Array(Number(sizeArg)).fill(120)
  const nc = await connect({ servers: url })
  const jsm = await nc.jetstreamManager()
  await jsm.streams.delete(name).catch(() => {})
  await jsm.streams.add({ name, subjects: [`${name}.>`] })
  const js = nc.jetstream()
  const started = process.hrtime.bigint()
  for (let start = 0; start < count; start += 1000) {
    const batch = []
    for (let i = start; i < Math.min(count, start + 1000); i++) batch.push(js.publish(`${name}.k${i % 100}`, payload))
    await Promise.all(batch)
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  console.log(JSON.stringify({ client: 'nats.js (official Node)', mode: 'pipelined, 1000 concurrent', count, size: payload.length, seconds, rate: Math.round(count / seconds) }))
  await nc.close()
}

main().catch((e) => { console.error(e); process.exit(1) })
