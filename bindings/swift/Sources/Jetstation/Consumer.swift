// Swift conveniences over the generated consumer: messages as an
// AsyncSequence whose iteration ends when its task is cancelled.
import Foundation

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
                // Arrived as the task was cancelled: give it back, uncounted.
                try? message.release()
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
