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
            let consumer = self.consumer
            while !Task.isCancelled {
                let message = try await withTaskCancellationHandler {
                    try await consumer.next()
                } onCancel: {
                    consumer.interrupt()
                }
                guard let message else { return nil }
                if Task.isCancelled {
                    // Arrived as the task was cancelled: give it back, uncounted.
                    try? message.release()
                    return nil
                }
                // The core handed it out on its own thread; asked again on
                // this task, it says whether the process stopped meanwhile
                // and the group gave its partition to another member.
                if await message.claim() { return message }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
}

public extension Message {
    /// Whether the message is still this member's to run: false once the
    /// process stopped after it was handed out and the group gave its
    /// partition to another member meanwhile (do not run it; settling it
    /// does nothing). Waits while the member asks the broker after such a
    /// stop. Iterating `messages` asks before it hands a message on.
    func claim() async -> Bool {
        // Most answers are known at once, and come without a suspension:
        // one is time in which the process can stop.
        if let now = claimNow() { return now }
        return await claimWhenKnown()
    }

    /// The payload as UTF-8 text.
    var text: String { String(decoding: payload(), as: UTF8.self) }
}
