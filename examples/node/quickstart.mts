// jetstation quickstart in TypeScript: employee changes from HR to payroll.
//
//   NATS_URL=nats://127.0.0.1:4222 node quickstart.mjs   (after tsc)

import * as jetstation from 'jetstation'

const STATION = 'employee-changes'

interface Change {
  field: string
  value: string | number
}

const changes: Array<[string, Change]> = [
  ['emp-1', { field: 'name', value: 'Ada Lovelace' }],
  ['emp-2', { field: 'salary', value: 5200 }],
  ['emp-1', { field: 'title', value: 'Engineer' }],
  ['emp-3', { field: 'salary', value: 'five thousand' }], // malformed
  ['emp-2', { field: 'title', value: 'Manager' }],
]

async function main(): Promise<void> {
  const client = await jetstation.connect(process.env.NATS_URL ?? 'nats://127.0.0.1:4222', { name: 'quickstart-node' })
  try {
    await client.deleteStation(STATION).catch((e: unknown) => {
      if (!(e instanceof jetstation.NotFoundError)) throw e
    })
    await client.createStation(STATION, { partitions: 2, maxDeliveries: 3 })

    const producer = await client.producer(STATION)
    for (const [employee, change] of changes) {
      const receipt = await producer.send(change, { key: employee })
      console.log(`sent ${employee} -> partition ${receipt.partition} seq ${receipt.sequence}`)
    }
    await producer.close()

    const applied: string[] = []
    const consumer = await client.consumer(STATION, 'payroll', { redeliveryDelayMs: 100 })
    const running = consumer.consume(async (message) => {
      const change = message.json<Change>()
      if (change.field === 'salary' && typeof change.value !== 'number') {
        throw new TypeError(`salary is not a number: ${JSON.stringify(change.value)}`)
      }
      applied.push(message.key ?? '')
      console.log(`payroll applied ${message.key} ${JSON.stringify(change)}`)
    })
    while ((await client.deadLetters(STATION)).length === 0 || applied.length < changes.length - 1) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await consumer.close()
    await running

    const [letter] = await client.deadLetters(STATION)
    console.log(`dead letter after ${letter.deliveries} deliveries: ${letter.lastError}`)
    console.log(`payroll applied ${applied.length} of ${changes.length} changes`)
    console.log('quickstart OK')
  } finally {
    await client.close()
  }
}

await main()
