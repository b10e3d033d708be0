// The installed package through `import`: send one change, receive it.
import * as jetstation from 'jetstation'

const client = await jetstation.connect(process.env.NATS_URL)
const station = 'install-esm'
await client.createStation(station, { partitions: 1 })
const producer = await client.producer(station)
await producer.send(JSON.stringify({ id: 'emp-1' }), { key: 'emp-1' })
await producer.close()
const consumer = await client.consumer(station, 'check')
for await (const message of consumer) {
  message.ack()
  if (message.key !== 'emp-1') throw new Error(`unexpected key ${message.key}`)
  break
}
await consumer.close()
await client.close()
console.log('esm quickstart OK')
