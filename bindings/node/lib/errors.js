'use strict'
// One Error class per stable error kind, shared with every other language.
// `code` and `kind` hold the stable name; `cause` keeps the native error.

class JetstationError extends Error {
  static kind = 'broker'
  constructor(message, options) {
    super(message, options)
    this.name = new.target.name
    this.kind = new.target.kind
    this.code = new.target.kind
  }
}

class ConnectionError extends JetstationError { static kind = 'connection' }
class TimeoutError extends JetstationError { static kind = 'timeout' }
class AuthError extends JetstationError { static kind = 'auth' }
class NotFoundError extends JetstationError { static kind = 'not_found' }
class AlreadyExistsError extends JetstationError { static kind = 'already_exists' }
class InvalidArgumentError extends JetstationError { static kind = 'invalid_argument' }
class PayloadTooLargeError extends InvalidArgumentError { static kind = 'payload_too_large' }
class SchemaValidationError extends InvalidArgumentError { static kind = 'schema_validation' }
class IncompatibleSchemaError extends InvalidArgumentError { static kind = 'incompatible_schema' }
class ServerTooOldError extends JetstationError { static kind = 'server_too_old' }
class ClosedError extends JetstationError { static kind = 'closed' }
class BufferFullError extends JetstationError { static kind = 'buffer_full' }
class BrokerError extends JetstationError { static kind = 'broker' }

const classes = {
  JetstationError, ConnectionError, TimeoutError, AuthError, NotFoundError, AlreadyExistsError,
  InvalidArgumentError, PayloadTooLargeError, SchemaValidationError, IncompatibleSchemaError,
  ServerTooOldError, ClosedError, BufferFullError, BrokerError,
}
const byKind = Object.fromEntries(
  Object.values(classes).filter((c) => c !== JetstationError).map((c) => [c.kind, c]),
)

/** Turns a native error ("[kind] message") into its JetstationError class. */
function mapError(error) {
  if (error instanceof JetstationError) return error
  const match = /^\[([a-z_]+)\] ([\s\S]*)$/.exec(error?.message ?? '')
  if (!match) return error
  const Cls = byKind[match[1]] ?? BrokerError
  return new Cls(match[2], { cause: error })
}

module.exports = { ...classes, mapError, kinds: Object.keys(byKind) }
