// Swift conveniences over the generated bindings: connecting.
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

public extension Client {
    /// Every key's latest message in a compacted station, as an
    /// `AsyncSequence`: `for try await entry in client.entries(station: …)`.
    func entries(station: String) -> StateEntries { StateEntries(client: self, station: station) }
}

public struct StateEntries: AsyncSequence, Sendable {
    public typealias Element = StateEntry
    let client: Client
    let station: String

    public struct AsyncIterator: AsyncIteratorProtocol {
        let client: Client
        let station: String
        var snapshot: Snapshot?

        public mutating func next() async throws -> StateEntry? {
            if snapshot == nil { snapshot = try await client.snapshot(station: station) }
            return try await snapshot!.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(client: client, station: station) }
}
