// Swift conveniences over the generated bindings: consumers as an
// AsyncSequence whose iteration ends when its task is cancelled.
import Foundation

public extension Client {
    /// Connects and checks the server (2.12 or newer, JetStream enabled).
    static func connect(_ urls: String..., options: ConnectOptions = ConnectOptions()) async throws -> Client {
        try await Jetstation.connect(urls: urls, options: options)
    }
}

public extension Client {
    /// A producer with the default options.
    func producer(station: String) async throws -> Producer {
        try await producer(station: station, options: ProducerOptions())
    }
}

public extension Producer {
    /// Queues a message and returns its handle; await the handle's
    /// `receipt()` for the receipt. Messages of one key are stored in the
    /// order `enqueue` was called. Takes the synchronous path when the
    /// producer has room, and waits for room (async) only when it has none.
    func enqueue(_ message: OutgoingMessage) async throws -> SendHandle {
        if let handle = try tryEnqueueMessage(message: message) { return handle }
        return try await enqueueMessage(message: message)
    }
}

public extension SendHandle {
    /// The receipt, once the broker stored the message (no async call when
    /// it already has).
    func receipt() async throws -> Receipt {
        if let receipt = try tryReceipt() { return receipt }
        return try await waitReceipt()
    }
}

public extension Consumer {
    /// The messages; the iteration ends when the consumer is closed or the
    /// iterating task is cancelled.
    var messages: Messages { Messages(consumer: self) }
}

public struct Messages: AsyncSequence, Sendable {
    public typealias Element = Message
    let consumer: Consumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: Consumer

        public mutating func next() async throws -> Message? {
            if Task.isCancelled { return nil }
            let consumer = self.consumer
            let message = try await withTaskCancellationHandler {
                try await consumer.next()
            } onCancel: {
                consumer.interrupt()
            }
            if Task.isCancelled, let message {
                // Arrived as the task was cancelled: give it back at once.
                try? message.nack(reason: "released: the iterating task was cancelled", delay: 0)
                return nil
            }
            return message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
}

public extension Message {
    /// The payload as UTF-8 text.
    var text: String { String(decoding: payload(), as: UTF8.self) }
}

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
