// Swift conveniences over the generated producer: one enqueue that takes
// the synchronous path when it can, and receipts without an async hop.
import Foundation

public extension Producer {
    /// Queues a message and returns its handle; await the handle's
    /// `receipt()` for the receipt. Messages of one key are stored in the
    /// order `enqueue` was called. Takes the synchronous path when the
    /// producer has room, and waits for room (async) only when it has none.
    func enqueue(_ message: OutgoingMessage) async throws -> SendHandle {
        let handle: SendHandle
        if message.headers.isEmpty && message.msgId == nil {
            // The key lent as bytes (a short one is held inline by `Data`).
            handle = try tryEnqueueKeyed(
                payload: message.payload, key: utf8Bytes(message.key ?? ""), keyed: message.key != nil)
        } else {
            handle = try tryEnqueue(
                payload: message.payload, key: message.key, headers: message.headers, msgId: message.msgId)
        }
        if !handle.isQueued() { try await enqueueHeld(handle: handle) }
        return handle
    }

    /// Queues the message at once when the producer has room and returns
    /// its handle; returns `nil`, queueing nothing, when it would have to
    /// wait for room (then use `enqueue(_:)`). Never waits.
    func tryEnqueue(_ message: OutgoingMessage) throws -> SendHandle? {
        let handle = try tryEnqueue(
            payload: message.payload, key: message.key, headers: message.headers, msgId: message.msgId)
        return handle.isQueued() ? handle : nil
    }

    /// Sends many messages, `payloads[i]` with `keys[i]`; returns their
    /// receipts in order, or throws the first failed message's error. The
    /// messages cross into the core in chunks of `sendBatchChunk`, each
    /// queued after the one before, so a large batch is never copied across
    /// in one buffer and the first chunk is on its way while the next is
    /// handed over. A chunk's payloads cross as one borrowed buffer with
    /// their lengths. Each chunk is checked whole (key, size, schema) before
    /// any of it is queued: a batch of up to `sendBatchChunk` messages with
    /// a refused message sends nothing; in a larger one the chunks before
    /// the refused message's chunk are queued and sent, and the error names
    /// the message and says so.
    func sendBatch(payloads: [Data], keys: [String?]) async throws -> [Receipt] {
        guard payloads.count == keys.count else {
            throw JetstationError.InvalidArgument(message: "payloads and keys must have the same length")
        }
        var queued: [BatchHandle] = []
        var start = 0
        while start < payloads.count {
            let end = min(start + sendBatchChunk, payloads.count)
            var joined = Data(capacity: payloads[start..<end].reduce(0) { $0 + $1.count })
            var lengths: [UInt32] = []
            lengths.reserveCapacity(end - start)
            for payload in payloads[start..<end] {
                guard let length = UInt32(exactly: payload.count) else {
                    throw JetstationError.InvalidArgument(message: "a payload of \(payload.count) bytes is too large to send")
                }
                joined.append(payload)
                lengths.append(length)
            }
            let chunk = try stageBatch(payloads: joined, lengths: lengths, keys: Array(keys[start..<end]))
            queued.append(try await enqueueBatch(chunk: chunk, first: UInt64(start), total: UInt64(payloads.count)))
            start = end
        }
        var receipts: [Receipt] = []
        receipts.reserveCapacity(payloads.count)
        for chunk in queued {
            receipts.append(contentsOf: try await chunk.waitReceipts())
        }
        return receipts
    }
}

/// A text's UTF-8 bytes, copied from the string's own storage: `Data`
/// made from the text's `utf8` view goes through the generic sequence
/// initializer, whose dynamic casts cost more than the copy.
func utf8Bytes(_ text: String) -> Data {
    var text = text
    return text.withUTF8 { Data($0) }
}

/// Messages per call into the core from `sendBatch`.
let sendBatchChunk = 4096
