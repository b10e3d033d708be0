import Foundation
import XCTest

@testable import Jetstation

/// Servers are started by scripts/test-swift.sh on the host's loopback.
func env(_ name: String) -> String {
    guard let value = ProcessInfo.processInfo.environment[name] else {
        fatalError("\(name) is not set: run the Swift tests with scripts/test-swift.sh")
    }
    return value
}

/// Runs `body` and checks it throws the jetstation error `matches` accepts.
func expectError(
    _ body: () async throws -> Void, _ matches: (JetstationError) -> Bool,
    file: StaticString = #filePath, line: UInt = #line
) async {
    do {
        try await body()
        XCTFail("no error", file: file, line: line)
    } catch let error as JetstationError {
        XCTAssertTrue(matches(error), "\(error)", file: file, line: line)
    } catch {
        XCTFail("not a JetstationError: \(error)", file: file, line: line)
    }
}

func unique(_ prefix: String) -> String { "\(prefix)-\(UInt32.random(in: 0...UInt32.max))" }

final class JetstationTests: XCTestCase {
    func client() async throws -> Client {
        try await Client.connect(env("NATS_URL"), options: ConnectOptions(requestTimeout: 3))
    }

    func testOrderPerKeyOverTenThousandMessages() async throws {
        let client = try await client()
        let station = unique("bulk")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 4))
        let producer = try await client.producer(station: station)
        var payloads: [Data] = []
        var keys: [String?] = []
        for i in 0..<10_000 {
            payloads.append(Data("k\(i % 100):\(i / 100)".utf8))
            keys.append("k\(i % 100)")
        }
        do {
            _ = try await producer.sendBatch(payloads: payloads, keys: Array(keys.dropLast()))
            XCTFail("a batch with one key missing was accepted")
        } catch let error as JetstationError {
            XCTAssertEqual(error.kind, "invalid_argument")
        }
        // What the core refuses (here a key with a line break) is found
        // chunk by chunk: in the first chunk nothing is sent...
        var refused = keys
        refused[1_000] = "Ada\r\nNats-Msg-Id: payslip-1"
        do {
            _ = try await producer.sendBatch(payloads: payloads, keys: refused)
            XCTFail("a batch with a key the core refuses was accepted")
        } catch let error as JetstationError {
            XCTAssertEqual(error.kind, "invalid_argument")
            XCTAssertTrue(error.message.contains("message 1000 of the batch of 10000"), error.message)
            XCTAssertTrue(error.message.contains("nothing of it was queued"), error.message)
        }
        try await producer.flush()
        let untouched = try await client.station(name: station)
        XCTAssertEqual(untouched.messages, 0)
        // ...in a later one, the chunks before it were sent and the error says so.
        let later = unique("later")
        _ = try await client.createStation(name: later, config: StationConfig(partitions: 4))
        let laterProducer = try await client.producer(station: later)
        refused[1_000] = keys[1_000]
        refused[9_000] = "Ada\r\nNats-Msg-Id: payslip-1"
        do {
            _ = try await laterProducer.sendBatch(payloads: payloads, keys: refused)
            XCTFail("a batch with a key the core refuses was accepted")
        } catch let error as JetstationError {
            XCTAssertEqual(error.kind, "invalid_argument")
            XCTAssertTrue(error.message.contains("message 9000 of the batch of 10000"), error.message)
            XCTAssertTrue(error.message.contains("messages 0 to 8191 were queued"), error.message)
        }
        try await laterProducer.flush()
        let sent = try await client.station(name: later)
        XCTAssertEqual(sent.messages, 8_192)
        let receipts = try await producer.sendBatch(payloads: payloads, keys: keys)
        XCTAssertEqual(receipts.count, 10_000)
        // More than one chunk crosses into the core; receipts stay in call order.
        XCTAssertGreaterThan(10_000, sendBatchChunk)
        for (key, receipts) in Dictionary(grouping: receipts.enumerated(), by: { keys[$0.offset]! }) {
            let sequences = receipts.map { $0.element.sequence }
            XCTAssertEqual(sequences, sequences.sorted(), "receipts of \(key) out of order")
        }
        let consumer = try await client.consumer(station: station, group: "g", options: ConsumerOptions(concurrency: 16))
        var seen: [String: [Int]] = [:]
        var count = 0
        for try await message in consumer.messages {
            let parts = message.text.split(separator: ":")
            seen[String(parts[0]), default: []].append(Int(parts[1])!)
            try message.ack()
            count += 1
            if count == 10_000 { break }
        }
        try await consumer.close()
        XCTAssertEqual(seen.count, 100)
        for (key, order) in seen {
            XCTAssertEqual(order, Array(0..<100), "key \(key)")
        }
    }

    func testHealthReportsEachPartition() async throws {
        let client = try await client()
        let station = unique("healthy")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 2))
        let producer = try await client.producer(station: station)
        for i in 0..<4 {
            _ = try await producer.send(payload: Data("m\(i)".utf8), key: "k\(i)")
        }
        let consumer = try await client.consumer(station: station, group: "g", options: ConsumerOptions(ackWait: 2, handoverTimeout: 2))
        var received = 0
        for try await message in consumer.messages {
            if received == 0 {
                let parts = try await consumer.health()
                XCTAssertEqual(parts.map(\.partition), [0, 1])
                XCTAssertTrue(parts.allSatisfy(\.owned))
                XCTAssertGreaterThanOrEqual(parts.map(\.held).reduce(0, +), 1)
            }
            try message.ack()
            received += 1
            if received == 4 { break }
        }
        try await consumer.close()
    }

    func testEnqueueKeepsOrderWhenTheBufferIsFull() async throws {
        // A 4 KiB buffer holds a few messages only: most enqueue calls find
        // it full and wait (the async path), the others take the sync one.
        let client = try await client()
        let station = unique("enqueue")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 1))
        let producer = try await client.producer(station: station, options: ProducerOptions(bufferBytes: 4096))
        var handles: [SendHandle] = []
        for i in 0..<2_000 {
            handles.append(try await producer.enqueue(OutgoingMessage(payload: Data(repeating: UInt8(i % 256), count: 500), key: "k")))
        }
        var sequences: [UInt64] = []
        for handle in handles { sequences.append(try await handle.receipt().sequence) }
        XCTAssertEqual(sequences, Array(1...2_000))
        do {
            _ = try await handles[0].receipt()
            XCTFail("a second receipt() must throw")
        } catch let error as JetstationError {
            XCTAssertEqual(error.kind, "invalid_argument")
        }
        try await client.close()
    }

    func testReceiptsCarryEveryFieldOnEachPath() async throws {
        // One message's receipt crosses as text, the id last (so an id may
        // hold spaces), when already stored and after waiting; a batch
        // chunk's receipts cross packed (ffi/src/receipts.rs).
        let client = try await client()
        let station = unique("receipts")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 3))
        let producer = try await client.producer(station: station)
        let first = try await producer.enqueue(OutgoingMessage(payload: Data("a".utf8), key: "k", msgId: "id é 1"))
        let waited = try await first.receipt()
        XCTAssertEqual(waited.station, station)
        XCTAssertEqual(waited.msgId, "id é 1")
        XCTAssertEqual(waited.sequence, 1)
        XCTAssertFalse(waited.duplicate)
        let again = try await producer.enqueue(OutgoingMessage(payload: Data("a".utf8), key: "k", msgId: "id é 1"))
        try await producer.flush()
        let stored = try XCTUnwrap(try again.tryReceipt(), "flushed: the receipt is there")
        XCTAssertEqual(stored, Receipt(station: station, partition: waited.partition, sequence: 1, duplicate: true, msgId: "id é 1"))
        let batch = try await producer.sendBatch(payloads: [Data("b".utf8), Data("c".utf8)], keys: ["k", nil])
        XCTAssertEqual(batch.map(\.station), [station, station])
        XCTAssertEqual(batch[0].partition, waited.partition)
        XCTAssertEqual(batch[0].sequence, 2)
        XCTAssertTrue(batch.allSatisfy { !$0.duplicate && !$0.msgId.isEmpty })
        XCTAssertNotEqual(batch[0].msgId, batch[1].msgId)
        let keyless = try await producer.enqueue(OutgoingMessage(payload: Data("d".utf8))).receipt()
        XCTAssertEqual(keyless.station, station)
        XCTAssertFalse(keyless.msgId.isEmpty || keyless.duplicate)
        try await client.close()
    }

    func testTryEnqueueQueuesNothingWhenItWouldWait() async throws {
        // Room for one message of 2,500 B: back-to-back calls find the
        // buffer full until the broker confirms (a round trip, far longer
        // than a call), and what they refuse is not queued.
        let client = try await client()
        let station = unique("try")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 1))
        let producer = try await client.producer(station: station, options: ProducerOptions(bufferBytes: 4096))
        var queued: [SendHandle] = []
        var refused = 0
        for _ in 0..<50 {
            if let handle = try producer.tryEnqueue(OutgoingMessage(payload: Data(count: 2500), key: "k")) {
                queued.append(handle)
            } else {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 0)
        for (i, handle) in queued.enumerated() {
            let receipt = try await handle.receipt()
            XCTAssertEqual(receipt.sequence, UInt64(i + 1))
        }
        try await producer.flush()
        let stored = try await client.station(name: station).messages
        XCTAssertEqual(stored, UInt64(queued.count))
        try await client.close()
    }

    func testPoisonMessageIsDeadLettered() async throws {
        let client = try await client()
        let station = unique("hr")
        _ = try await client.createStation(name: station, config: StationConfig(maxDeliveries: 3))
        let producer = try await client.producer(station: station)
        for body in ["ok-1", "poison", "ok-2"] {
            _ = try await producer.send(payload: Data(body.utf8), key: "emp-1")
        }
        let consumer = try await client.consumer(
            station: station, group: "payroll", options: ConsumerOptions(redeliveryDelay: 0.05))
        var handled: [String] = []
        for try await message in consumer.messages {
            if message.text == "poison" {
                try message.nack(reason: "cannot parse", delay: nil)
            } else {
                handled.append(message.text)
                try message.ack()
            }
            if handled == ["ok-1", "ok-2"] { break }
        }
        try await consumer.close()
        let letters = try await client.deadLetters(station: station)
        XCTAssertEqual(letters.count, 1)
        XCTAssertEqual(letters[0].payload, Data("poison".utf8))
        XCTAssertEqual(letters[0].deliveries, 3)
        XCTAssertEqual(letters[0].lastError, "cannot parse")
        XCTAssertEqual(letters[0].group, "payroll")
    }

    func testSchemaRefusalBeforeSending() async throws {
        let client = try await client()
        let schema = unique("pay")
        let station = unique("payroll")
        _ = try await client.registerSchema(
            name: schema, format: "json_schema",
            source: #"{"type":"object","properties":{"salary":{"type":"number"}}}"#, messageType: nil)
        _ = try await client.createStation(name: station, config: StationConfig(schema: schema))
        let producer = try await client.producer(station: station)
        _ = try await producer.send(payload: Data(#"{"salary":10}"#.utf8), key: nil)
        do {
            _ = try await producer.send(payload: Data(#"{"salary":"ten"}"#.utf8), key: nil)
            XCTFail("an invalid payload was accepted")
        } catch JetstationError.SchemaValidation(let message) {
            XCTAssertTrue(message.contains("/salary"), message)
        }
        let stored = try await client.station(name: station)
        XCTAssertEqual(stored.messages, 1)
    }

    func testErrorKindsAreMapped() async throws {
        let client = try await client()
        func expect(_ body: () async throws -> Void, _ matches: (JetstationError) -> Bool) async {
            do {
                try await body()
                XCTFail("no error")
            } catch let error as JetstationError {
                XCTAssertTrue(matches(error), "\(error)")
            } catch {
                XCTFail("not a JetstationError: \(error)")
            }
        }
        await expect({ _ = try await client.station(name: "missing") }) {
            if case .NotFound = $0 { return true } else { return false }
        }
        await expect({ _ = try await client.createStation(name: "bad name", config: StationConfig()) }) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        let station = unique("s")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 2))
        await expect({ _ = try await client.createStation(name: station, config: StationConfig(partitions: 3)) }) {
            if case .AlreadyExists = $0 { return true } else { return false }
        }
        let producer = try await client.producer(station: station)
        try await producer.close()
        await expect({ _ = try await producer.send(payload: Data("x".utf8), key: nil) }) {
            if case .Closed = $0 { return true } else { return false }
        }
        let schema = unique("emp")
        _ = try await client.registerSchema(
            name: schema, format: "json_schema", source: #"{"type":"object","properties":{"n":{"type":"integer"}}}"#,
            messageType: nil)
        await expect({
            _ = try await client.registerSchema(
                name: schema, format: "json_schema", source: #"{"type":"object","properties":{"n":{"type":"string"}}}"#,
                messageType: nil)
        }) { if case .IncompatibleSchema = $0 { return true } else { return false } }
        await expect({ _ = try await Client.connect(env("NATS_CLOSED_URL")) }) {
            if case .Connection = $0 { return true } else { return false }
        }
        await expect({ _ = try await Client.connect(env("NATS_AUTH_URL"), options: ConnectOptions(user: "app", password: "no")) }) {
            if case .Auth = $0 { return true } else { return false }
        }
        await expect({ _ = try await Client.connect(env("NATS_OLD_URL")) }) {
            if case .ServerTooOld(let message) = $0 { return message.contains("2.12.0") } else { return false }
        }
        await expect({ _ = try await client.createStation(name: unique("r3"), config: StationConfig(replicas: 3)) }) {
            if case .Broker = $0 { return true } else { return false }
        }
        // A server the test stops: sends time out, a fail-fast buffer fills.
        let disposable = try await Client.connect(env("NATS_DISPOSABLE_URL"), options: ConnectOptions(requestTimeout: 1))
        let doomed = unique("doomed")
        _ = try await disposable.createStation(name: doomed, config: StationConfig())
        let slow = try await disposable.producer(station: doomed, options: ProducerOptions(deliveryTimeout: 0.5))
        let fast = try await disposable.producer(
            station: doomed, options: ProducerOptions(bufferBytes: 4096, whenFull: "fail"))
        kill(pid_t(env("NATS_DISPOSABLE_PID"))!, SIGKILL)
        await expect({ _ = try await slow.send(payload: Data("z".utf8), key: nil) }) {
            if case .Timeout = $0 { return true } else { return false }
        }
        await expect({ for _ in 0..<10 { try await fast.enqueue(payload: Data(count: 1500), key: nil) } }) {
            if case .BufferFull = $0 { return true } else { return false }
        }
        let small = try await Client.connect(env("NATS_SMALL_URL"))
        let big = unique("big")
        _ = try await small.createStation(name: big, config: StationConfig())
        let bigProducer = try await small.producer(station: big)
        await expect({ _ = try await bigProducer.send(payload: Data(count: 4096), key: nil) }) {
            if case .PayloadTooLarge = $0 { return true } else { return false }
        }
    }

    func testIterationEndsWhenTheTaskIsCancelled() async throws {
        let client = try await client()
        let station = unique("quiet")
        _ = try await client.createStation(name: station, config: StationConfig())
        let consumer = try await client.consumer(station: station, group: "g", options: ConsumerOptions())
        let iterating = Task { () -> Int in
            var count = 0
            for try await message in consumer.messages {
                try message.ack()
                count += 1
            }
            return count
        }
        // Let the iteration start waiting in the core: that wait is what is cancelled.
        try await Task.sleep(nanoseconds: 200_000_000)
        iterating.cancel()
        let started = Date()
        let count = try await iterating.value
        XCTAssertEqual(count, 0)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        try await consumer.close()
    }

    func testReleaseCostsNoDeliveryAndASecondSettleIsRefused() async throws {
        let client = try await client()
        let station = unique("release")
        _ = try await client.createStation(name: station, config: StationConfig(maxDeliveries: 1))
        let producer = try await client.producer(station: station)
        _ = try await producer.send(payload: Data("only".utf8), key: "k")
        let consumer = try await client.consumer(
            station: station, group: "g", options: ConsumerOptions(start: "earliest", ackWait: 2, handoverTimeout: 2))
        for _ in 0..<3 {
            let message = try await consumer.next()!
            XCTAssertEqual(message.deliveries(), 1, "a release is not a delivery")
            try message.release()
        }
        let message = try await consumer.next()!
        // Nothing stopped this process: the message is this member's to run.
        XCTAssertEqual(message.claimNow(), true)
        let claimed = await message.claim()
        XCTAssertTrue(claimed)
        try message.ack()
        await expectError({ try message.ack() }) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        try await consumer.close()
        let letters = try await client.deadLetters(station: station)
        XCTAssertTrue(letters.isEmpty)
    }

    func testStationsAndSchemasAreAdministeredFromSwift() async throws {
        let client = try await client()
        let station = unique("admin")
        let created = try await client.createStation(
            name: station, config: StationConfig(storage: "memory", maxAge: 3600, dedupWindow: 60, compaction: false))
        XCTAssertEqual(created.storage, "memory")
        XCTAssertEqual(created.dedupWindow, 60)
        let updated = try await client.updateStation(
            name: station, config: StationConfig(storage: "memory", maxAge: 7200, dedupWindow: 60))
        XCTAssertEqual(updated.maxAge, 7200)
        let stations = try await client.stations()
        XCTAssertTrue(stations.contains { $0.name == station })
        await expectError({ _ = try await client.createStation(name: unique("bad"), config: StationConfig(storage: "tape")) }) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        let schema = unique("person")
        _ = try await client.registerSchema(
            name: schema, format: "json_schema", source: #"{"type":"object"}"#, messageType: nil)
        try await client.setSchemaCompatibility(name: schema, mode: "none")
        let info = try await client.schemas().first { $0.name == schema }
        XCTAssertEqual(info?.compatibility, "none")
        let latest = try await client.schema(name: schema, version: nil)
        XCTAssertEqual(latest.version, 1)
        try await client.deleteStation(name: station)
    }

    func testTheStateViewKeepsTheLatestValueOfEveryKey() async throws {
        let client = try await client()
        let station = unique("people")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 2, compaction: true))
        let producer = try await client.producer(station: station)
        for version in 1...3 {
            for k in 0..<4 { _ = try await producer.send(payload: Data("k\(k) v\(version)".utf8), key: "k\(k)") }
        }
        _ = try await producer.delete(key: "k0")
        let want = (1..<4).map { "k\($0)=k\($0) v3" }
        var got: [String] = []
        for _ in 0..<100 {  // the broker fills the view by sourcing: soon, not at once
            got = []
            for try await entry in client.entries(station: station) {
                got.append("\(entry.key)=\(String(decoding: entry.payload, as: UTF8.self))")
            }
            if got.sorted() == want { break }
            // Poll interval; the loop's 100 rounds bound the wait to about 10 s.
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertEqual(got.sorted(), want)
        let latest = try await client.latest(station: station, key: "k2")
        XCTAssertEqual(latest.map { String(decoding: $0.payload, as: UTF8.self) }, "k2 v3")
        let deleted = try await client.latest(station: station, key: "k0")
        XCTAssertNil(deleted)
    }

    func testStatsShowPartitionsAndAGroupsLag() async throws {
        let client = try await client()
        let station = unique("hires")
        _ = try await client.createStation(name: station, config: StationConfig(partitions: 2))
        let producer = try await client.producer(station: station)
        for i in 0..<10 { _ = try await producer.send(payload: Data("h\(i)".utf8), key: "k\(i)") }
        let stats = try await client.stationStats(station: station)
        XCTAssertEqual(stats.partitions.map(\.partition), [0, 1])
        XCTAssertEqual(stats.partitions.map(\.messages).reduce(0, +), 10)
        XCTAssertTrue(stats.partitions.allSatisfy { $0.placement == nil && $0.lastTime != nil })
        let purged = try await client.purgeDeadLetters(station: station)
        XCTAssertEqual(purged, 0)
        let none = try await client.groups(station: station)
        XCTAssertTrue(none.isEmpty)
        let consumer = try await client.consumer(station: station, group: "onboarding", options: ConsumerOptions())
        var acked = 0
        for try await message in consumer.messages {
            try message.ack()
            acked += 1
            if acked == 4 { break }
        }
        var lag: UInt64 = 0
        for _ in 0..<100 {  // commits reach the broker soon, not at once; 100 rounds bound the wait to about 10 s
            let groups = try await client.groups(station: station)
            lag = groups.first.map { $0.partitions.map(\.lag).reduce(0, +) } ?? 0
            if groups.count == 1 && lag == 6 { break }
            // Poll interval; the loop's 100 rounds bound the wait to about 10 s.
            try await Task.sleep(nanoseconds: 100_000_000)  // poll interval; 100 rounds bound the wait
        }
        XCTAssertEqual(lag, 6)
        let group = try await client.groups(station: station)[0]
        XCTAssertEqual(group.group, "onboarding")
        XCTAssertEqual(group.members.map(\.partitions), [[0, 1]])
        XCTAssertEqual(group.members.map(\.standby), [false])
        XCTAssertTrue(group.partitions.allSatisfy { $0.owner == group.members[0].member })
        try await consumer.close()
        try await client.deleteStation(name: station)
    }
}
