// Swift conveniences over the generated producer: one enqueue that takes
// the synchronous path when it can, and receipts without an async hop.
import Foundation

public extension Producer {
    /// Queues a message and returns its handle; await the handle's
    /// `receipt()` for the receipt. Messages of one key are stored in the
    /// order `enqueue` was called. Takes the synchronous path when the
    /// producer has room, and waits for room (async) only when it has none.
    func enqueue(_ message: OutgoingMessage) async throws -> SendHandle {
        if let handle = try tryEnqueue(message: message) { return handle }
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
