"use strict";
// One Error class per stable error kind, shared with every other language.
// `code` and `kind` hold the stable name; `cause` keeps the native error.
Object.defineProperty(exports, "__esModule", { value: true });
exports.kinds = exports.BrokerError = exports.BufferFullError = exports.ClosedError = exports.ServerTooOldError = exports.IncompatibleSchemaError = exports.SchemaValidationError = exports.PayloadTooLargeError = exports.InvalidArgumentError = exports.AlreadyExistsError = exports.NotFoundError = exports.AuthError = exports.TimeoutError = exports.ConnectionError = exports.JetstationError = void 0;
exports.mapError = mapError;
class JetstationError extends Error {
    static kind = 'broker';
    kind;
    /** The stable kind, as on every jetstation error in every language. */
    code;
    constructor(message, options) {
        super(message, options);
        const cls = new.target;
        this.name = cls.name;
        this.kind = cls.kind;
        this.code = cls.kind;
    }
}
exports.JetstationError = JetstationError;
class ConnectionError extends JetstationError {
    static kind = 'connection';
}
exports.ConnectionError = ConnectionError;
class TimeoutError extends JetstationError {
    static kind = 'timeout';
}
exports.TimeoutError = TimeoutError;
class AuthError extends JetstationError {
    static kind = 'auth';
}
exports.AuthError = AuthError;
class NotFoundError extends JetstationError {
    static kind = 'not_found';
}
exports.NotFoundError = NotFoundError;
class AlreadyExistsError extends JetstationError {
    static kind = 'already_exists';
}
exports.AlreadyExistsError = AlreadyExistsError;
class InvalidArgumentError extends JetstationError {
    static kind = 'invalid_argument';
}
exports.InvalidArgumentError = InvalidArgumentError;
class PayloadTooLargeError extends InvalidArgumentError {
    static kind = 'payload_too_large';
}
exports.PayloadTooLargeError = PayloadTooLargeError;
class SchemaValidationError extends InvalidArgumentError {
    static kind = 'schema_validation';
}
exports.SchemaValidationError = SchemaValidationError;
class IncompatibleSchemaError extends InvalidArgumentError {
    static kind = 'incompatible_schema';
}
exports.IncompatibleSchemaError = IncompatibleSchemaError;
class ServerTooOldError extends JetstationError {
    static kind = 'server_too_old';
}
exports.ServerTooOldError = ServerTooOldError;
class ClosedError extends JetstationError {
    static kind = 'closed';
}
exports.ClosedError = ClosedError;
class BufferFullError extends JetstationError {
    static kind = 'buffer_full';
}
exports.BufferFullError = BufferFullError;
class BrokerError extends JetstationError {
    static kind = 'broker';
}
exports.BrokerError = BrokerError;
const byKind = Object.fromEntries([
    ConnectionError, TimeoutError, AuthError, NotFoundError, AlreadyExistsError, InvalidArgumentError,
    PayloadTooLargeError, SchemaValidationError, IncompatibleSchemaError, ServerTooOldError, ClosedError,
    BufferFullError, BrokerError,
].map((cls) => [cls.kind, cls]));
/** Every stable kind. */
exports.kinds = Object.keys(byKind);
/** Turns a native error ("[kind] message") into its JetstationError class. */
function mapError(error) {
    if (error instanceof JetstationError)
        return error;
    const message = error instanceof Error ? error.message : '';
    const match = /^\[([a-z_]+)\] ([\s\S]*)$/.exec(message);
    if (!match)
        return error;
    const Cls = byKind[match[1]] ?? BrokerError;
    return new Cls(match[2], { cause: error });
}
