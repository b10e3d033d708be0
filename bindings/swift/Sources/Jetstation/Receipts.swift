// Receipts as the library packs them (ffi/src/receipts.rs): a record read
// through the generated reader costs far more per field than reading the
// bytes here.
import Foundation

/// Decodes packed receipts: the station's length (UInt32) and UTF-8 bytes
/// once, then per receipt its partition (UInt32), sequence (UInt64),
/// duplicate flag (UInt8), message id length (UInt32) and bytes; integers
/// little-endian. Empty bytes hold no receipt.
func unpackReceipts(_ packed: Data) -> [Receipt] {
    packed.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [Receipt] in
        var at = 0
        func int<T: FixedWidthInteger>(_: T.Type) -> T {
            defer { at += MemoryLayout<T>.size }
            return T(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: T.self))
        }
        func text() -> String {
            let count = Int(int(UInt32.self))
            defer { at += count }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[at..<at + count]), as: UTF8.self)
        }
        guard !raw.isEmpty else { return [] }
        let station = text()
        var receipts: [Receipt] = []
        while at < raw.count {
            let partition = int(UInt32.self)
            let sequence = int(UInt64.self)
            let duplicate = int(UInt8.self) == 1
            receipts.append(Receipt(station: station, partition: partition, sequence: sequence, duplicate: duplicate, msgId: text()))
        }
        return receipts
    }
}

public extension SendHandle {
    /// The receipt if the broker already stored the message, `nil` while it
    /// is on its way; throws the message's error if it failed.
    func tryReceipt() throws -> Receipt? {
        unpackReceipts(try tryReceiptPacked()).first
    }

    /// The receipt, once the broker stored the message (no async call when
    /// it already has).
    func receipt() async throws -> Receipt {
        if let receipt = try tryReceipt() { return receipt }
        return unpackReceipts(try await waitReceiptPacked())[0]
    }
}

extension BatchHandle {
    /// The chunk's receipts in order, or the first failed message's error.
    func waitReceipts() async throws -> [Receipt] {
        unpackReceipts(try await waitReceiptsPacked())
    }
}
