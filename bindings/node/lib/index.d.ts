import type { ConnectOptions, ConsumerOptions, DeadLetter, GroupPartitionStats, GroupStats, LogRecord, MemberStats, PartitionHealth, PartitionStats, Placement, ProducerOptions, Replica, Receipt, SchemaInfo, SchemaVersion, StateEntry, Station, StationConfig, StationStats } from '../native/index.js';
import * as telemetry from './telemetry';
export * from './errors';
export { telemetry };
export type { ConnectOptions, ConsumerOptions, DeadLetter, GroupPartitionStats, GroupStats, LogRecord, MemberStats, PartitionHealth, PartitionStats, Placement, ProducerOptions, Receipt, Replica, SchemaInfo, SchemaVersion, StateEntry, Station, StationConfig, StationStats, };
/** What `send` accepts: bytes, text (UTF-8), or a JSON-serialisable object. */
export type Payload = Buffer | Uint8Array | string | object;
export interface SendOptions {
    key?: string;
    headers?: Record<string, string>;
    msgId?: string;
    /** Stops waiting (the message may still be stored). */
    signal?: AbortSignal;
}
export type Compatibility = 'none' | 'backward' | 'forward' | 'full';
export type SchemaFormat = 'json_schema' | 'protobuf' | 'avro';
export type Handler = (message: Message) => Promise<void> | void;
/** Connects and checks the server (2.12 or newer, JetStream enabled). */
export declare function connect(urls?: string | string[], options?: ConnectOptions): Promise<Client>;
export declare class Client {
    private readonly inner;
    get serverVersion(): string;
    createStation(name: string, config?: StationConfig): Promise<Station>;
    updateStation(name: string, config?: StationConfig): Promise<Station>;
    station(name: string): Promise<Station>;
    stations(): Promise<Station[]>;
    deleteStation(name: string): Promise<void>;
    producer(station: string, options?: ProducerOptions): Promise<Producer>;
    consumer(station: string, group: string, options?: ConsumerOptions): Promise<Consumer>;
    deleteGroup(station: string, group: string): Promise<void>;
    deadLetters(station: string): Promise<DeadLetter[]>;
    replayDeadLetter(station: string, sequence: number): Promise<Receipt>;
    /** The station's partitions (messages, bytes, sequences, times, cluster placement), dead letters and schema. */
    stationStats(station: string): Promise<StationStats>;
    /** The station's consumer groups: live members and the partitions each owns, and the lag per partition. */
    groups(station: string): Promise<GroupStats[]>;
    /** The latest message of `key` in a compacted station, or null (never written, or deleted). */
    latest(station: string, key: string): Promise<StateEntry | null>;
    /** Every key's latest message in a compacted station: `for await (const entry of client.snapshot(station))`. */
    snapshot(station: string): AsyncGenerator<StateEntry, void, undefined>;
    /** Replays every dead letter of `station`, oldest first. */
    replayDeadLetters(station: string): Promise<Receipt[]>;
    /** Removes every dead letter of `station` for good; returns how many there were. */
    purgeDeadLetters(station: string): Promise<number>;
    registerSchema(name: string, format: SchemaFormat, source: string, { messageType, compatibility }?: {
        messageType?: string;
        compatibility?: Compatibility;
    }): Promise<SchemaVersion>;
    schema(name: string, version?: number): Promise<SchemaVersion>;
    schemas(): Promise<SchemaInfo[]>;
    setSchemaCompatibility(name: string, mode: Compatibility): Promise<void>;
    deleteSchemaVersion(name: string, version: number): Promise<void>;
    /** Encodes a plain value with a Protobuf/Avro schema (or validates JSON). */
    encodeWithSchema(name: string, value: unknown, version?: number): Promise<Buffer>;
    decodeWithSchema(name: string, payload: Payload, version?: number): Promise<unknown>;
    close(): Promise<void>;
    [Symbol.asyncDispose](): Promise<void>;
}
export declare class SendHandle {
    private readonly inner;
    private readonly station;
    /** Resolves with the receipt once the broker stored the message. */
    receipt(): Promise<Receipt>;
}
export declare class Producer {
    private readonly inner;
    private waiting;
    /** The station this producer sends to. */
    readonly station: string;
    readonly producerId: string;
    /** The native producer as an external, for the per-message `tryEnqueue`. */
    private readonly sender;
    /** Sends and resolves once the broker stored the message. */
    send(payload: Payload, { key, headers, msgId, signal }?: SendOptions): Promise<Receipt>;
    /**
     * Queues the message at once when the producer has room and returns its
     * handle; returns null, queueing nothing, when it would have to wait for
     * room (then use `enqueue`). Never waits.
     */
    tryEnqueue(payload: Payload, { key, headers, msgId }?: Omit<SendOptions, 'signal'>): SendHandle | null;
    /**
     * Queues a message and resolves with a handle (its `receipt()` resolves
     * once stored). Messages keep the order of the calls, also when one has to
     * wait for room in the buffer.
     */
    enqueue(payload: Payload, { key, headers, msgId }?: Omit<SendOptions, 'signal'>): Promise<SendHandle>;
    /**
     * Sends many `{ payload, key }` in one call; receipts in order.
     *
     * Messages are checked (key, size, schema) and queued in chunks of 4,096,
     * each chunk checked whole before any of it is queued: a batch of up to
     * 4,096 messages with a refused message sends nothing. In a larger batch
     * the chunks before the refused message's chunk are queued and sent; the
     * error names the message and says so.
     */
    sendBatch(messages: Array<{
        payload: Payload;
        key?: string;
    }>): Promise<Receipt[]>;
    /** The receipt objects of one chunk, from its columns. */
    private receipts;
    /** Deletes `key` from a compacted station: a tombstone, stored in the key's order. */
    delete(key: string): Promise<Receipt>;
    flush(): Promise<void>;
    close(): Promise<void>;
    [Symbol.asyncDispose](): Promise<void>;
}
export declare class Message {
    private readonly inner;
    readonly payload: Buffer;
    readonly key: string | null;
    readonly headers: string[][];
    readonly station: string;
    readonly partition: number;
    readonly sequence: number;
    readonly deliveries: number;
    readonly msgId: string | null;
    /** A tombstone: its key was deleted. */
    readonly isDelete: boolean;
    header(name: string): string | null;
    /** The payload parsed as JSON. */
    json<T = unknown>(): T;
    /**
     * Whether the message is still this member's to run: false once the
     * process stopped after it was handed out and the group gave its partition
     * to another member meanwhile (do not run it; settling it does nothing).
     * Waits while the member asks the broker after such a stop. `next()`,
     * iteration and `consume` ask before they hand a message on.
     */
    claim(): Promise<boolean>;
    /** Done: committed once every earlier message of its partition is done. */
    ack(): void;
    /** Failed: redelivered after `delayMs` (or the growing default), or dead-lettered. */
    nack({ delayMs, reason }?: {
        delayMs?: number;
        reason?: string;
    }): void;
    /** Never again: dead-lettered at once. */
    term(reason?: string): void;
    /** Gives the message back unprocessed, without counting a delivery. */
    release(): void;
    /** Still working: postpones the redelivery by the ack wait. */
    inProgress(): Promise<void>;
}
export declare class Consumer implements AsyncIterable<Message> {
    private readonly inner;
    get station(): string;
    get group(): string;
    /** Messages of this member's partitions the broker has not delivered yet. */
    get lag(): number;
    /** The next message, or null once closed. Rejects with AbortError on abort. */
    next({ signal }?: {
        signal?: AbortSignal;
    }): Promise<Message | null>;
    /** Every message until closed or aborted; leaving the loop closes the consumer. */
    messages({ signal }?: {
        signal?: AbortSignal;
    }): AsyncGenerator<Message, void, undefined>;
    [Symbol.asyncIterator](): AsyncIterator<Message>;
    /** How each partition of this member is doing (owned, in sync, held, undelivered, last error). */
    health(): Promise<PartitionHealth[]>;
    /**
     * Runs `handler` on every message until closed (or `signal` aborts): a
     * resolved handler acks, a rejected one nacks with its error as reason.
     */
    consume(handler: Handler, { signal }?: {
        signal?: AbortSignal;
    }): Promise<void>;
    /** Stops fetching, waits for held messages to be settled, commits. */
    close(): Promise<void>;
    [Symbol.asyncDispose](): Promise<void>;
}
/**
 * Sends core log events at or above `filter` to `logger` (`null` silences
 * them). Silent by default; DEBUG=jetstation logs to standard error.
 */
export declare function setLogger(logger: ((record: LogRecord) => void) | null, filter?: string): void;
