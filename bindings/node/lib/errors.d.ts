export type ErrorKind = 'connection' | 'timeout' | 'auth' | 'not_found' | 'already_exists' | 'invalid_argument' | 'payload_too_large' | 'server_too_old' | 'closed' | 'buffer_full' | 'schema_validation' | 'incompatible_schema' | 'broker';
export declare class JetstationError extends Error {
    static readonly kind: ErrorKind;
    readonly kind: ErrorKind;
    /** The stable kind, as on every jetstation error in every language. */
    readonly code: ErrorKind;
    constructor(message: string, options?: ErrorOptions);
}
export declare class ConnectionError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class TimeoutError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class AuthError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class NotFoundError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class AlreadyExistsError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class InvalidArgumentError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class PayloadTooLargeError extends InvalidArgumentError {
    static readonly kind: ErrorKind;
}
export declare class SchemaValidationError extends InvalidArgumentError {
    static readonly kind: ErrorKind;
}
export declare class IncompatibleSchemaError extends InvalidArgumentError {
    static readonly kind: ErrorKind;
}
export declare class ServerTooOldError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class ClosedError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class BufferFullError extends JetstationError {
    static readonly kind: ErrorKind;
}
export declare class BrokerError extends JetstationError {
    static readonly kind: ErrorKind;
}
/** Every stable kind. */
export declare const kinds: ErrorKind[];
/** Turns a native error ("[kind] message") into its JetstationError class. */
export declare function mapError(error: unknown): unknown;
