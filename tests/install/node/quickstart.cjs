// The installed package through `require`: send one change, receive it.
const jetstation = require('jetstation')

async function main() {
  const client = await jetstation.connect(process.env.NATS_URL)
  const station = 'install-cjs'
  await client.createStation(station, { partitions: 1 })
  const producer = await client.producer(station)
  await producer.send(JSON.stringify({ id: 'emp-2' }), { key: 'emp-2' })
  await producer.close()
  const consumer = await client.consumer(station, 'check')
  for await (const message of consumer) {
    message.ack()
    if (message.key !== 'emp-2') throw new Error(`unexpected key ${message.key}`)
    break
  }
  await consumer.close()
  await client.close()
  console.log('cjs quickstart OK')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
