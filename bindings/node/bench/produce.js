'use strict'
// Produce throughput from Node: node produce.js <url> <station> <count> <size>
// Prints one JSON line per mode. Run by scripts/bench-produce.sh (not a test).
const jetstation = require('..')

async function main() {
  const [url, station, countArg, sizeArg] = process.argv.slice(2)
  const count = Number(countArg)
  const payload = Buffer.alloc(Number(sizeArg), 'x')
  const client = await jetstation.connect(url)
  for (const mode of ['enqueue per message', 'sendBatch']) {
    const name = `${station}-${mode.split(' ')[0]}`
    await client.deleteStation(name).catch(() => {})
    await client.createStation(name)
    const producer = await client.producer(name)
    const started = process.hrtime.bigint()
    if (mode === 'sendBatch') {
      const messages = []
      for (let i = 0; i < count; i++) messages.push({ payload, key: `k${i % 100}` })
      await producer.sendBatch(messages)
    } else {
      const handles = []
      for (let i = 0; i < count; i++) handles.push(await producer.enqueue(payload, { key: `k${i % 100}` }))
      for (const h of handles) await h.receipt()
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    if ((await client.station(name)).messages !== count) throw new Error('not every message stored')
    console.log(JSON.stringify({ client: 'jetstation (Node)', mode, count, size: payload.length, seconds, rate: Math.round(count / seconds) }))
    await producer.close()
    await client.deleteStation(name) // the next mode starts on an empty store
  }
  await client.close()
}

main().catch((e) => { console.error(e); process.exit(1) })
