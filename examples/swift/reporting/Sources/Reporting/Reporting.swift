// Reporting service (Swift): a new consumer group that replays the whole
// history of employee changes from the first one, then reports headcount
// per department from each employee's latest version.
import Foundation
import Jetstation

struct Change: Decodable {
    let id: String
    let version: Int
    let department: String
    let salary: Double
    let currency: String
}

@main
struct Reporting {
    static func main() async throws {
        let env = ProcessInfo.processInfo.environment
        let expected = Int(env["EXPECTED"] ?? "0") ?? 0
        let client = try await Client.connect(env["NATS_URL"]!)
        let consumer = try await client.consumer(
            station: "employee-changes", group: "reporting", options: ConsumerOptions(concurrency: 1))
        let started = Date()
        var latest: [String: Change] = [:]
        var replayed = 0
        for try await message in consumer.messages {
            let change = try JSONDecoder().decode(Change.self, from: message.payload())
            if change.version >= (latest[change.id]?.version ?? 0) { latest[change.id] = change }
            replayed += 1
            try message.ack()
            if replayed >= expected { break }
        }
        try await consumer.close()
        let seconds = Date().timeIntervalSince(started)
        var headcount: [String: Int] = [:]
        for change in latest.values { headcount[change.department, default: 0] += 1 }
        let departments = headcount.keys.sorted().map { "\($0) \(headcount[$0]!)" }.joined(separator: ", ")
        print("replayed \(replayed) messages from the start: \(latest.count) employees; headcount \(departments)")
        let result: [String: Any] = [
            "replayed": replayed, "employees": latest.count, "departments": headcount.count, "seconds": seconds,
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: result), as: UTF8.self)
        print("RESULT \(json)")
        try await client.close()
    }
}
