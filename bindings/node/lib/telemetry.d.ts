export interface InstrumentOptions {
    /** A TracerProvider; the global one by default. */
    tracerProvider?: unknown;
    /** A MeterProvider; the global one by default. */
    meterProvider?: unknown;
    /** How often the core's measurements are recorded (default 1000). */
    intervalMs?: number;
}
/** What the telemetry needs of a delivered message. */
export interface Processed {
    readonly station: string;
    readonly partition: number;
    readonly headers: string[][];
    readonly deliveries: number;
    readonly msgId: string | null;
}
/**
 * Turns on tracing and metrics for every client connected from now on.
 * Throws when @opentelemetry/api is not installed.
 */
export declare function instrument(options?: InstrumentOptions): void;
/** Records what was measured, then turns instrumentation off. */
export declare function uninstrument(): void;
/** Records every measurement the core holds now (the timer does it every `intervalMs`). */
export declare function flush(): void;
/**
 * Runs `fn` in a `process <station>` span, child of the producer's span; for
 * `for await` loops (the handler of `consume` already runs in one). Without
 * instrumentation it just runs `fn`.
 */
export declare function processMessage<T>(message: Processed, group: string | undefined, fn: () => T | Promise<T>): Promise<T>;
