// Receipts as the library writes them (ffi/src/receipts.rs): a record read
// through the generated reader costs far more per field than reading the
// bytes here, and one message's receipt crosses as text, which is lifted
// in one copy where bytes go through the same generated reader.
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

/// Decodes one receipt as text: its partition, sequence, duplicate flag
/// (`1` or `0`), station and message id, separated by single spaces (the
/// id comes last and may hold spaces). Empty text holds no receipt. Read as
/// UTF-8 bytes: splitting the text itself goes by characters, which cost
/// more than the rest of a receipt's way.
func parseReceipt(_ text: String) -> Receipt? {
    guard !text.isEmpty else { return nil }
    var text = text
    return text.withUTF8 { bytes -> Receipt in
        let space = UInt8(ascii: " ")
        var at = 0
        func field() -> UnsafeBufferPointer<UInt8> {
            let start = at
            while at < bytes.count && bytes[at] != space { at += 1 }
            defer { at += 1 }
            return UnsafeBufferPointer(rebasing: bytes[start..<at])
        }
        func number() -> UInt64 {
            let digits = field()
            guard !digits.isEmpty else { preconditionFailure("the library wrote a receipt without a number") }
            return digits.reduce(0) { $0 * 10 + UInt64($1 - UInt8(ascii: "0")) }
        }
        let partition = UInt32(truncatingIfNeeded: number())
        let sequence = number()
        let duplicate = number() == 1
        let station = String(decoding: field(), as: UTF8.self)
        let msgId = at < bytes.count
            ? String(decoding: UnsafeBufferPointer(rebasing: bytes[at...]), as: UTF8.self) : ""
        return Receipt(station: station, partition: partition, sequence: sequence, duplicate: duplicate, msgId: msgId)
    }
}

public extension SendHandle {
    /// The receipt if the broker already stored the message, `nil` while it
    /// is on its way; throws the message's error if it failed.
    func tryReceipt() throws -> Receipt? {
        parseReceipt(try tryReceiptText())
    }

    /// The receipt, once the broker stored the message (no async call when
    /// it already has).
    func receipt() async throws -> Receipt {
        if let receipt = try tryReceipt() { return receipt }
        guard let receipt = parseReceipt(try await waitReceiptText()) else {
            preconditionFailure("the library gave no receipt for a stored message")
        }
        return receipt
    }
}

extension BatchHandle {
    /// The chunk's receipts in order, or the first failed message's error.
    func waitReceipts() async throws -> [Receipt] {
        unpackReceipts(try await waitReceiptsPacked())
    }
}
