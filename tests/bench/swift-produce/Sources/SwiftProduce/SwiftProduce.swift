// `SwiftProduce <url> <station> <count> <size>`: enqueues every message, then
// awaits every receipt (the same work as tests/bench/src/bin/produce.rs).
// Prints one JSON line.
import Foundation
import Jetstation

@main
struct SwiftProduce {
    static func main() async throws {
        let args = CommandLine.arguments
        try await produce(url: args[1], station: args[2], count: Int(args[3])!, size: Int(args[4])!)
    }

    /// Off the main actor, as a service's code runs: `main` is isolated to
    /// the main actor, and every call from it into the (nonisolated) package
    /// would hop threads twice.
    nonisolated static func produce(url: String, station: String, count: Int, size: Int) async throws {
        let client = try await Client.connect(url)
        let payload = Data(repeating: UInt8(ascii: "x"), count: size)
        let keys = (0..<100).map { "k\($0)" }
        for mode in ["enqueue per message", "sendBatch"] {
            let name = "\(station)-\(mode.split(separator: " ")[0])"
            try? await client.deleteStation(name: name)
            _ = try await client.createStation(name: name, config: StationConfig())
            let producer = try await client.producer(station: name)
            let started = Date()
            if mode == "sendBatch" {
                let payloads = [Data](repeating: payload, count: count)
                let batchKeys: [String?] = (0..<count).map { keys[$0 % 100] }
                _ = try await producer.sendBatch(payloads: payloads, keys: batchKeys)
            } else {
                var handles: [SendHandle] = []
                handles.reserveCapacity(count)
                for i in 0..<count {
                    handles.append(try await producer.enqueue(OutgoingMessage(payload: payload, key: keys[i % 100])))
                }
                for handle in handles { _ = try await handle.receipt() }
            }
            let seconds = Date().timeIntervalSince(started)
            let stored = try await client.station(name: name).messages
            guard stored == UInt64(count) else { fatalError("stored \(stored) of \(count) messages") }
            print("{\"client\":\"jetstation (Swift)\",\"mode\":\"\(mode)\",\"count\":\(count),\"size\":\(size),\"seconds\":\(seconds),\"rate\":\(Int(Double(count) / seconds))}")
            try await producer.close()
            try await client.deleteStation(name: name)  // the next mode starts on an empty store
        }
        try await client.close()
    }
}
