// The names each options object accepts. Anything else is refused with
// InvalidArgumentError: a misspelt option would otherwise be ignored and the
// default used without a word. The lists are checked against the native
// types at compile time, both ways (a name that does not exist, a name left
// out).
import type { ConnectOptions, ConsumerOptions, ProducerOptions, StationConfig } from '../native/index.js'
import { InvalidArgumentError } from './errors'

type Names<T> = ReadonlyArray<keyof T>
type Complete<T, L extends Names<T>> = [Exclude<keyof T, L[number]>] extends [never] ? true : false

const connect = [
  'token', 'user', 'password', 'nkeySeed', 'credsFile', 'tlsRequired', 'tlsCa', 'tlsCert', 'tlsKey', 'namespace',
  'name', 'connectTimeoutMs', 'requestTimeoutMs', 'maxReconnectDelayMs',
] as const satisfies Names<ConnectOptions>
const station = [
  'partitions', 'replicas', 'storage', 'maxAgeMs', 'maxBytes', 'maxMessages', 'dedupWindowMs', 'maxDeliveries',
  'compaction', 'deleteGraceMs', 'schema', 'schemaVersion',
] as const satisfies Names<StationConfig>
const producer = [
  'maxBatchMessages', 'maxBatchBytes', 'lingerMs', 'maxInFlight', 'bufferBytes', 'whenFull', 'deliveryTimeoutMs',
  'producerId',
] as const satisfies Names<ProducerOptions>
const consumer = [
  'concurrency', 'start', 'startSequence', 'startTimeMs', 'ackWaitMs', 'maxAckPending', 'redeliveryDelayMs',
  'maxRedeliveryDelayMs', 'fetchBatch', 'handoverTimeoutMs', 'exactlyOnce', 'exactlyOnceRetentionMs',
] as const satisfies Names<ConsumerOptions>

// Compile-time: every option of the native types is listed.
const complete: [
  Complete<ConnectOptions, typeof connect>,
  Complete<StationConfig, typeof station>,
  Complete<ProducerOptions, typeof producer>,
  Complete<ConsumerOptions, typeof consumer>,
] = [true, true, true, true]
void complete

const known = {
  connect: new Set<string>(connect),
  station: new Set<string>(station),
  producer: new Set<string>(producer),
  consumer: new Set<string>(consumer),
}

/** Throws InvalidArgumentError for a name `what` does not accept. */
export function checkOptions(what: keyof typeof known, options: object | null | undefined): void {
  if (options === null || options === undefined) return
  for (const name of Object.keys(options)) {
    if (!known[what].has(name)) {
      throw new InvalidArgumentError(
        `unknown ${what === 'station' ? 'station setting' : `${what} option`} ${JSON.stringify(name)}; ` +
          `the ${what} options are ${[...known[what]].join(', ')}`,
      )
    }
  }
}
