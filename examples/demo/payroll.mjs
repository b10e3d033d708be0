// Payroll service (Node): a consumer group that receives every employee
// change, in order per employee, and converts salaries to euros. A change in
// a currency it has no rate for fails; after 3 deliveries it is dead-lettered.
// With --replay (after the fix: the rate is known) it replays dead letters.
import { connect } from '../../bindings/node/lib/index.mjs'

const RATES = { EUR: 1, USD: 0.92, GBP: 1.17 }
const replay = process.argv.includes('--replay')
if (replay) RATES.XTS = 1 // the fix: a rate for the test currency
const expected = Number(process.env.EXPECTED ?? '0')
const say = (text) => console.log(text)

const client = await connect(process.env.NATS_URL, { name: 'payroll' })
const started = performance.now()
const lastVersion = new Map()
let processed = 0
let outOfOrder = 0
let failures = 0
const reasons = new Set()

if (replay) {
  const letters = await client.deadLetters('employee-changes')
  for (const letter of letters) {
    await client.replayDeadLetter('employee-changes', letter.sequence)
    say(`replayed dead letter ${letter.sequence} (${letter.key}: ${letter.lastError})`)
  }
}

const consumer = await client.consumer('employee-changes', 'payroll', { concurrency: 8, redeliveryDelayMs: 200 })
const stop = new AbortController()
const consuming = consumer.consume(async (message) => {
  const change = message.json()
  const rate = RATES[change.currency]
  if (rate === undefined) {
    failures += 1
    reasons.add(`no exchange rate for ${change.currency}`)
    throw new Error(`no exchange rate for ${change.currency}`)
  }
  const previous = lastVersion.get(change.id) ?? 0
  if (change.version <= previous) outOfOrder += 1
  lastVersion.set(change.id, change.version)
  processed += 1
  if (replay) say(`processed ${change.id} v${change.version}: ${Math.round(change.salary * rate)} EUR`)
}, { signal: stop.signal })
// Done once every change was handled and, on the first run, the
// unconvertible one has reached the dead-letter station.
for (;;) {
  if (processed >= expected && (replay || (await client.station('employee-changes')).deadLetters >= 1)) break
  await new Promise((resolve) => setTimeout(resolve, 100)) // polls the progress above
}
stop.abort()
await consuming
await consumer.close()
const station = await client.station('employee-changes')
await client.close()
const seconds = (performance.now() - started) / 1000
if (!replay) say(`${processed} changes processed for ${lastVersion.size} employees, ${outOfOrder} out of order; ${failures} failed deliveries`)
console.log('RESULT ' + JSON.stringify({ processed, employees: lastVersion.size, outOfOrder, failures, reasons: [...reasons], deadLetters: station.deadLetters, seconds }))
