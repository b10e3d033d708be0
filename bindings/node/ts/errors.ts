// One Error class per stable error kind, shared with every other language.
// `code` and `kind` hold the stable name; `cause` keeps the native error.

export type ErrorKind =
  | 'connection' | 'timeout' | 'auth' | 'not_found' | 'already_exists' | 'invalid_argument'
  | 'payload_too_large' | 'server_too_old' | 'closed' | 'buffer_full' | 'schema_validation'
  | 'incompatible_schema' | 'broker'

export class JetstationError extends Error {
  static readonly kind: ErrorKind = 'broker'
  readonly kind: ErrorKind
  /** The stable kind, as on every jetstation error in every language. */
  readonly code: ErrorKind
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    const cls = new.target as typeof JetstationError
    this.name = cls.name
    this.kind = cls.kind
    this.code = cls.kind
  }
}

export class ConnectionError extends JetstationError { static override readonly kind: ErrorKind = 'connection' }
export class TimeoutError extends JetstationError { static override readonly kind: ErrorKind = 'timeout' }
export class AuthError extends JetstationError { static override readonly kind: ErrorKind = 'auth' }
export class NotFoundError extends JetstationError { static override readonly kind: ErrorKind = 'not_found' }
export class AlreadyExistsError extends JetstationError { static override readonly kind: ErrorKind = 'already_exists' }
export class InvalidArgumentError extends JetstationError { static override readonly kind: ErrorKind = 'invalid_argument' }
export class PayloadTooLargeError extends InvalidArgumentError { static override readonly kind: ErrorKind = 'payload_too_large' }
export class SchemaValidationError extends InvalidArgumentError { static override readonly kind: ErrorKind = 'schema_validation' }
export class IncompatibleSchemaError extends InvalidArgumentError { static override readonly kind: ErrorKind = 'incompatible_schema' }
export class ServerTooOldError extends JetstationError { static override readonly kind: ErrorKind = 'server_too_old' }
export class ClosedError extends JetstationError { static override readonly kind: ErrorKind = 'closed' }
export class BufferFullError extends JetstationError { static override readonly kind: ErrorKind = 'buffer_full' }
export class BrokerError extends JetstationError { static override readonly kind: ErrorKind = 'broker' }

const byKind: Record<string, typeof JetstationError> = Object.fromEntries(
  [
    ConnectionError, TimeoutError, AuthError, NotFoundError, AlreadyExistsError, InvalidArgumentError,
    PayloadTooLargeError, SchemaValidationError, IncompatibleSchemaError, ServerTooOldError, ClosedError,
    BufferFullError, BrokerError,
  ].map((cls) => [cls.kind, cls]),
)

/** Every stable kind. */
export const kinds = Object.keys(byKind) as ErrorKind[]

/** Turns a native error ("[kind] message") into its JetstationError class. */
export function mapError(error: unknown): unknown {
  if (error instanceof JetstationError) return error
  const message = error instanceof Error ? error.message : ''
  const match = /^\[([a-z_]+)\] ([\s\S]*)$/.exec(message)
  if (!match) return error
  const Cls = byKind[match[1]] ?? BrokerError
  return new Cls(match[2], { cause: error })
}
