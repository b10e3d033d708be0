// The stable error kind and message of every jetstation error.
import Foundation

public extension JetstationError {
    /// The stable kind, the same name as in every other language
    /// ("not_found", "schema_validation", ...).
    var kind: String {
        switch self {
        case .Connection: return "connection"
        case .Timeout: return "timeout"
        case .Auth: return "auth"
        case .NotFound: return "not_found"
        case .AlreadyExists: return "already_exists"
        case .InvalidArgument: return "invalid_argument"
        case .PayloadTooLarge: return "payload_too_large"
        case .ServerTooOld: return "server_too_old"
        case .Closed: return "closed"
        case .BufferFull: return "buffer_full"
        case .SchemaValidation: return "schema_validation"
        case .IncompatibleSchema: return "incompatible_schema"
        case .Broker: return "broker"
        }
    }

    /// What went wrong and what to do about it.
    var message: String {
        switch self {
        case .Connection(let m), .Timeout(let m), .Auth(let m), .NotFound(let m), .AlreadyExists(let m),
             .InvalidArgument(let m), .PayloadTooLarge(let m), .ServerTooOld(let m), .Closed(let m),
             .BufferFull(let m), .SchemaValidation(let m), .IncompatibleSchema(let m), .Broker(let m):
            return m
        }
    }
}
