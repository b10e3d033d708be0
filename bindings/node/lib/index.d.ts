// Types of the jetstation package (the facade in index.js). Durations are
// milliseconds. The native module's own types are generated in
// native/index.d.ts (committed; the build fails when they drift).
import type {
  ConnectOptions,
  LogRecord,
  ConsumerOptions,
  DeadLetter,
  PartitionHealth,
  ProducerOptions,
  Receipt,
  SchemaInfo,
  SchemaVersion,
  Station,
  StationConfig,
} from '../native/index.js'

export type {
  ConnectOptions, LogRecord, ConsumerOptions, DeadLetter, PartitionHealth, ProducerOptions, Receipt, SchemaInfo,
  SchemaVersion, Station, StationConfig,
}

/** What `send` accepts: bytes, text (UTF-8), or a JSON-serialisable object. */
export type Payload = Buffer | Uint8Array | string | object

export interface SendOptions {
  key?: string
  headers?: Record<string, string>
  msgId?: string
  /** Stops waiting (the message may still be stored). */
  signal?: AbortSignal
}

export declare function connect(urls?: string | string[], options?: ConnectOptions): Promise<Client>
/** Core log events at or above `filter` go to `logger`; null silences them. */
export declare function setLogger(logger: ((record: LogRecord) => void) | null, filter?: string): void

export type Compatibility = 'none' | 'backward' | 'forward' | 'full'

export declare class Client {
  get serverVersion(): string
  createStation(name: string, config?: StationConfig): Promise<Station>
  updateStation(name: string, config?: StationConfig): Promise<Station>
  station(name: string): Promise<Station>
  stations(): Promise<Station[]>
  deleteStation(name: string): Promise<void>
  producer(station: string, options?: ProducerOptions): Promise<Producer>
  consumer(station: string, group: string, options?: ConsumerOptions): Promise<Consumer>
  deleteGroup(station: string, group: string): Promise<void>
  deadLetters(station: string): Promise<DeadLetter[]>
  replayDeadLetter(station: string, sequence: number): Promise<Receipt>
  replayDeadLetters(station: string): Promise<Receipt[]>
  registerSchema(
    name: string,
    format: 'json_schema' | 'protobuf' | 'avro',
    source: string,
    options?: { messageType?: string; compatibility?: Compatibility },
  ): Promise<SchemaVersion>
  schema(name: string, version?: number): Promise<SchemaVersion>
  schemas(): Promise<SchemaInfo[]>
  setSchemaCompatibility(name: string, mode: Compatibility): Promise<void>
  deleteSchemaVersion(name: string, version: number): Promise<void>
  encodeWithSchema(name: string, value: unknown, version?: number): Promise<Buffer>
  decodeWithSchema(name: string, payload: Payload, version?: number): Promise<unknown>
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

export declare class SendHandle {
  /** Resolves once the broker stored the message. */
  receipt(): Promise<Receipt>
}

export declare class Producer {
  get station(): string
  get producerId(): string
  send(payload: Payload, options?: SendOptions): Promise<Receipt>
  enqueue(payload: Payload, options?: Omit<SendOptions, 'signal'>): Promise<SendHandle>
  sendBatch(messages: Array<{ payload: Payload; key?: string }>): Promise<Receipt[]>
  flush(): Promise<void>
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

export declare class Message {
  readonly payload: Buffer
  readonly key: string | null
  readonly headers: string[][]
  readonly station: string
  readonly partition: number
  readonly sequence: number
  readonly deliveries: number
  readonly msgId: string | null
  header(name: string): string | null
  json<T = unknown>(): T
  ack(): void
  nack(options?: { delayMs?: number; reason?: string }): void
  term(reason?: string): void
  /** Gives the message back unprocessed, without counting a delivery. */
  release(): void
  inProgress(): Promise<void>
}

export type Handler = (message: Message) => Promise<void> | void

export declare class Consumer implements AsyncIterable<Message> {
  get station(): string
  get group(): string
  next(options?: { signal?: AbortSignal }): Promise<Message | null>
  messages(options?: { signal?: AbortSignal }): AsyncGenerator<Message, void, undefined>
  [Symbol.asyncIterator](): AsyncIterator<Message>
  consume(handler: Handler, options?: { signal?: AbortSignal }): Promise<void>
  /** How each partition of this member is doing. */
  health(): Promise<PartitionHealth[]>
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

export type ErrorKind =
  | 'connection' | 'timeout' | 'auth' | 'not_found' | 'already_exists' | 'invalid_argument'
  | 'payload_too_large' | 'server_too_old' | 'closed' | 'buffer_full' | 'schema_validation'
  | 'incompatible_schema' | 'broker'

export declare class JetstationError extends Error {
  static readonly kind: ErrorKind
  readonly kind: ErrorKind
  /** The stable kind, as on every jetstation error in every language. */
  readonly code: ErrorKind
}
export declare class ConnectionError extends JetstationError {}
export declare class TimeoutError extends JetstationError {}
export declare class AuthError extends JetstationError {}
export declare class NotFoundError extends JetstationError {}
export declare class AlreadyExistsError extends JetstationError {}
export declare class InvalidArgumentError extends JetstationError {}
export declare class PayloadTooLargeError extends InvalidArgumentError {}
export declare class SchemaValidationError extends InvalidArgumentError {}
export declare class IncompatibleSchemaError extends InvalidArgumentError {}
export declare class ServerTooOldError extends JetstationError {}
export declare class ClosedError extends JetstationError {}
export declare class BufferFullError extends JetstationError {}
export declare class BrokerError extends JetstationError {}
export declare function mapError(error: unknown): unknown
export declare const kinds: ErrorKind[]
