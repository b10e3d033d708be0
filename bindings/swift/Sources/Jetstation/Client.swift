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
