// Conformance runner for Swift: carries out operations read from stdin (one
// JSON object per line) with the Jetstation package and answers each on
// stdout. It reports what happened; tests/conformance/run.py judges it.
import Foundation
import Jetstation

typealias Object = [String: Any]

struct Unexpected: Error { let message: String }

func answer(_ value: Object) {
    let data = try! JSONSerialization.data(withJSONObject: value)
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

func seconds(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }
/// A number; JSON has no NaN, so "NaN" stands for it.
func number(_ value: Any?) -> Double? { (value as? String).flatMap(Double.init) ?? seconds(value) }
func uint32(_ value: Any?) -> UInt32? { (value as? NSNumber)?.uint32Value }
func uint64(_ value: Any?) -> UInt64? { (value as? NSNumber)?.uint64Value }

/// An RFC 3339 time with fractional seconds.
func date(_ value: Any?) -> Date? {
    let format = ISO8601DateFormatter()
    format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return (value as? String).flatMap { format.date(from: $0) }
}

// Contract options (snake_case, seconds, RFC 3339) into the Swift records.
func stationConfig(_ options: Object, _ config: inout StationConfig) throws {
    for (name, value) in options {
        switch name {
        case "partitions": config.partitions = uint32(value)
        case "replicas": config.replicas = uint32(value)
        case "storage": config.storage = value as? String
        case "max_age": config.maxAge = number(value)
        case "delete_grace": config.deleteGrace = number(value)
        case "max_bytes": config.maxBytes = uint64(value)
        case "max_messages": config.maxMessages = uint64(value)
        case "dedup_window": config.dedupWindow = number(value)
        case "max_deliveries": config.maxDeliveries = uint32(value)
        case "compaction": config.compaction = value as? Bool
        case "schema": config.schema = value as? String
        case "schema_version": config.schemaVersion = uint32(value)
        default: throw Unexpected(message: "no station setting \(name) in Swift")
        }
    }
}

func producerOptions(_ options: Object, _ o: inout ProducerOptions) throws {
    for (name, value) in options {
        switch name {
        case "max_batch_messages": o.maxBatchMessages = uint32(value)
        case "max_batch_bytes": o.maxBatchBytes = uint32(value)
        case "linger": o.linger = number(value)
        case "max_in_flight": o.maxInFlight = uint32(value)
        case "buffer_bytes": o.bufferBytes = uint32(value)
        case "when_full": o.whenFull = value as? String
        case "delivery_timeout": o.deliveryTimeout = number(value)
        case "producer_id": o.producerId = value as? String
        default: throw Unexpected(message: "no producer option \(name) in Swift")
        }
    }
}

func consumerOptions(_ options: Object, _ o: inout ConsumerOptions) throws {
    for (name, value) in options {
        switch name {
        case "concurrency": o.concurrency = uint32(value)
        case "start": o.start = value as? String
        case "start_sequence": o.startSequence = uint64(value)
        case "start_time": o.startTime = date(value)
        case "ack_wait": o.ackWait = number(value)
        case "max_ack_pending": o.maxAckPending = uint32(value)
        case "redelivery_delay": o.redeliveryDelay = number(value)
        case "max_redelivery_delay": o.maxRedeliveryDelay = number(value)
        case "fetch_batch": o.fetchBatch = uint32(value)
        case "handover_timeout": o.handoverTimeout = number(value)
        case "exactly_once": o.exactlyOnce = value as? Bool
        case "exactly_once_retention": o.exactlyOnceRetention = number(value)
        default: throw Unexpected(message: "no consumer option \(name) in Swift")
        }
    }
}
func integer(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }

/// The messages a `generate` spec stands for (same in every runner).
func generated(_ spec: Object) -> [Object] {
    let count = integer(spec["count"]) ?? 0
    let keys = integer(spec["keys"]) ?? 0
    let size = integer(spec["size"]) ?? 0
    let prefix = spec["prefix"] as? String ?? "m-"
    return (0..<count).map { i in
        var payload = "\(prefix)\(i)"
        if payload.utf8.count < size { payload += String(repeating: ".", count: size - payload.utf8.count) }
        var m: Object = ["payload": payload]
        if keys > 0 { m["key"] = "k-\(i % keys)" }
        return m
    }
}

func consumerOptions(_ op: Object) throws -> ConsumerOptions {
    var o = ConsumerOptions()
    o.start = op["start"] as? String
    if let start = op["start"] as? Object { o.startSequence = (start["sequence"] as? NSNumber)?.uint64Value }
    if let n = integer(op["concurrency"]) { o.concurrency = UInt32(n) }
    o.ackWait = seconds(op["ack_wait"])
    o.handoverTimeout = seconds(op["handover_timeout"])
    o.redeliveryDelay = seconds(op["redelivery_delay"])
    try consumerOptions(op["options"] as? Object ?? [:], &o)
    return o
}

/// What a consume step has seen; shared by its concurrent handlers.
actor Progress {
    var records: [Object] = []
    var acked = 0
    /// The error kind of acking a message twice, when a step tries it.
    var secondSettleKind: String?
    func secondSettle(_ kind: String) { secondSettleKind = kind }
    var until: Set<String>
    let count: Int
    let minDeliveries: Int
    init(until: Set<String>, count: Int, minDeliveries: Int) {
        self.until = until
        self.count = count
        self.minDeliveries = minDeliveries
    }
    var finished: Bool { acked >= count && until.isEmpty && records.count >= minDeliveries }
    /// Between the last ack and a crash: messages taken then are never settled.
    var crashing = false
    var held: [Message] = []
    func hold(_ message: Message) -> Bool {
        if crashing { held.append(message) }
        return crashing
    }
    func startCrash() -> Bool {
        defer { crashing = true }
        return !crashing
    }
    /// `nil` once crashing: the message is not recorded and must not be settled
    /// (handlers run in parallel; what is acked must be in the answered records).
    func record(_ r: Object, acked payload: String?) -> (Int, Bool)? {
        if crashing { return nil }
        records.append(r)
        if let payload {
            acked += 1
            until.remove(payload)
        }
        return (acked, finished)
    }
}

final class Runner {
    var clients: [String: Client] = [:]
    var producers: [String: Producer] = [:]
    var joined: [String: Consumer] = [:]

    func client(_ op: Object) throws -> Client {
        let name = op["client"] as? String ?? "main"
        guard let c = clients[name] else { throw Unexpected(message: "no client \(name)") }
        return c
    }

    func perform(_ op: Object) async throws -> Object {
        let kind = op["op"] as? String ?? ""
        if kind == "connect" {
            var options = ConnectOptions()
            options.namespace = op["namespace"] as? String
            options.token = op["token"] as? String
            options.user = op["user"] as? String
            options.password = op["password"] as? String
            options.requestTimeout = seconds(op["request_timeout"])
            for (name, value) in op["options"] as? Object ?? [:] {
                switch name {
                case "creds_file": options.credsFile = value as? String
                case "tls_required": options.tlsRequired = value as? Bool
                case "tls_ca": options.tlsCa = value as? String
                case "connect_timeout": options.connectTimeout = number(value)
                default: throw Unexpected(message: "no connect option \(name) in the Swift runner")
                }
            }
            clients[op["as"] as? String ?? "main"] = try await Client.connect(op["url"] as! String, options: options)
            return [:]
        }
        let client = try client(op)
        switch kind {
        case "create_station", "update_station":
            var config = StationConfig()
            if let n = integer(op["partitions"]) { config.partitions = UInt32(n) }
            if let n = integer(op["max_deliveries"]) { config.maxDeliveries = UInt32(n) }
            if let n = integer(op["replicas"]) { config.replicas = UInt32(n) }
            config.schema = op["schema"] as? String
            try stationConfig(op["settings"] as? Object ?? [:], &config)
            let name = op["name"] as! String
            let s = kind == "create_station"
                ? try await client.createStation(name: name, config: config)
                : try await client.updateStation(name: name, config: config)
            return ["name": s.name, "partitions": s.partitions, "max_deliveries": s.maxDeliveries]
        case "delete_key":
            _ = try await stationProducer(client, op).delete(key: op["key"] as! String)
            return [:]
        case "station_stats":
            let s = try await client.stationStats(station: op["station"] as! String)
            return [
                "partitions": s.partitions.count, "messages": s.partitions.map(\.messages).reduce(0, +),
                "dead_letters": s.deadLetters, "state_keys": s.stateKeys.map { $0 as Any } ?? NSNull(),
            ]
        case "purge_dead_letters":
            return ["purged": try await client.purgeDeadLetters(station: op["station"] as! String)]
        case "groups":
            let groups = try await client.groups(station: op["station"] as! String)
            return [
                "names": groups.map(\.group), "members": groups.map(\.members.count).reduce(0, +),
                "lag": groups.flatMap(\.partitions).map(\.lag).reduce(0, +),
            ]
        case "latest":
            let entry = try await client.latest(station: op["station"] as! String, key: op["key"] as! String)
            return ["payload": entry.map { String(decoding: $0.payload, as: UTF8.self) } ?? NSNull()]
        case "snapshot":
            var entries: Object = [:]
            for try await e in client.entries(station: op["station"] as! String) {
                entries[e.key] = String(decoding: e.payload, as: UTF8.self)
            }
            return ["entries": entries]
        case "delete_station":
            try await client.deleteStation(name: op["name"] as! String)
            return [:]
        case "close_client":
            try await client.close()
            return [:]
        case "station":
            let s = try await client.station(name: op["name"] as! String)
            return ["messages": s.messages, "dead_letters": s.deadLetters]
        case "producer":
            var options = ProducerOptions()
            if let n = integer(op["buffer_bytes"]) { options.bufferBytes = UInt32(n) }
            options.deliveryTimeout = seconds(op["delivery_timeout"])
            if op["fail_when_full"] as? Bool == true { options.whenFull = "fail" }
            try producerOptions(op["options"] as? Object ?? [:], &options)
            producers[op["as"] as! String] = try await client.producer(station: op["station"] as! String, options: options)
            return [:]
        case "close_producer":
            try await producers[op["producer"] as! String]!.close()
            return [:]
        case "send", "send_batch":
            return try await send(client, op)
        case "join":
            joined[op["as"] as! String] = try await client.consumer(
                station: op["station"] as! String, group: op["group"] as! String, options: try consumerOptions(op))
            return [:]
        case "consume":
            return try await consume(client, op)
        case "dead_letters":
            let deadline = Date().addingTimeInterval(seconds(op["timeout"]) ?? 0)
            let atLeast = integer(op["at_least"]) ?? 0
            var letters = try await client.deadLetters(station: op["station"] as! String)
            while letters.count < atLeast && Date() < deadline {
                // Dead letters are written as the last nack is processed.
                try await Task.sleep(nanoseconds: 100_000_000)
                letters = try await client.deadLetters(station: op["station"] as! String)
            }
            return ["dead_letters": letters.map { d -> Object in
                [
                    "sequence": d.sequence, "origin_station": d.originStation, "origin_partition": d.originPartition,
                    "origin_sequence": d.originSequence, "group": d.group, "deliveries": d.deliveries,
                    "last_error": d.lastError, "key": d.key ?? NSNull(), "payload_b64": d.payload.base64EncodedString(),
                ]
            }]
        case "replay_dead_letter":
            let r = try await client.replayDeadLetter(
                station: op["station"] as! String, sequence: (op["sequence"] as! NSNumber).uint64Value)
            return ["partition": r.partition, "sequence": r.sequence]
        case "register_schema":
            let version = try await client.registerSchema(
                name: op["name"] as! String, format: op["format"] as! String, source: op["source"] as! String,
                messageType: op["message_type"] as? String)
            return ["version": version]
        case "encode":
            let json = String(decoding: try JSONSerialization.data(withJSONObject: op["value"]!), as: UTF8.self)
            let data = try await client.encodeWithSchema(name: op["schema"] as! String, json: json, version: nil)
            return ["payload_b64": data.base64EncodedString()]
        default:
            throw Unexpected(message: "unknown operation \(kind)")
        }
    }

    /// The producer a step's client keeps for its station (created once).
    func stationProducer(_ client: Client, _ op: Object) async throws -> Producer {
        let name = "\(op["client"] as? String ?? "main")/\(op["station"] as! String)"
        if producers[name] == nil {
            producers[name] = try await client.producer(station: op["station"] as! String)
        }
        return producers[name]!
    }

    func send(_ client: Client, _ op: Object) async throws -> Object {
        let producer: Producer
        if let name = op["producer"] as? String {
            producer = producers[name]!
        } else {
            producer = try await stationProducer(client, op)
        }
        var messages = op["messages"] as? [Object] ?? []
        if let spec = op["generate"] as? Object { messages += generated(spec) }
        var outgoing: [OutgoingMessage] = []
        for m in messages {
            let payload: Data
            if let value = m["value"] {
                let json = String(decoding: try JSONSerialization.data(withJSONObject: value), as: UTF8.self)
                payload = try await client.encodeWithSchema(name: m["schema"] as! String, json: json, version: nil)
            } else if let b64 = m["payload_b64"] as? String {
                payload = Data(base64Encoded: b64)!
            } else {
                payload = Data((m["payload"] as? String ?? "").utf8)
            }
            let headers = (m["headers"] as? [String: String] ?? [:]).map { Header(name: $0.key, value: $0.value) }
            let message = OutgoingMessage(payload: payload, key: m["key"] as? String, headers: headers, msgId: m["msg_id"] as? String)
            outgoing.append(message)
        }
        var sent: [Receipt] = []
        if op["op"] as? String == "send_batch" {  // one call; the batch carries payloads and keys
            sent = try await producer.sendBatch(payloads: outgoing.map { $0.payload }, keys: outgoing.map { $0.key })
        } else {
            var handles: [SendHandle] = []
            for message in outgoing { handles.append(try await producer.enqueue(message)) }
            for handle in handles { sent.append(try await handle.receipt()) }
        }
        var receipts: [Object] = []
        for r in sent {
            receipts.append(["partition": r.partition, "sequence": r.sequence, "duplicate": r.duplicate, "msg_id": r.msgId])
        }
        return ["receipts": receipts]
    }

    func consume(_ client: Client, _ op: Object) async throws -> Object {
        let consumer: Consumer
        if let name = op["consumer"] as? String, let joinedConsumer = joined.removeValue(forKey: name) {
            consumer = joinedConsumer
        } else {
            consumer = try await client.consumer(
                station: op["station"] as! String, group: op["group"] as! String, options: try consumerOptions(op))
        }
        var rules: [String: (Int, Double)] = [:]
        for rule in op["nack"] as? [Object] ?? [] {
            rules[rule["payload"] as! String] = (integer(rule["times"]) ?? 0, seconds(rule["delay"]) ?? 0)
        }
        let nack = rules
        let fail = Set(op["fail"] as? [String] ?? [])
        let progress = Progress(
            until: Set(op["until_payloads"] as? [String] ?? []), count: integer(op["count"]) ?? 0,
            minDeliveries: integer(op["min_deliveries"]) ?? 0)
        let crashAfter = integer(op["crash_after"])
        let crashWait = seconds(op["crash_wait"]) ?? 0
        let settleTwice = op["settle_twice"] as? Bool == true
        let jitter = (integer(op["concurrency"]) ?? 1) > 1
        let decode = op["decode"] as? String
        let timeout = seconds(op["timeout"]) ?? 30
        let started = Date()

        @Sendable func hold(_ message: Message) async { _ = await progress.hold(message) }

        @Sendable func handle(_ message: Message) async {
            if await progress.hold(message) { return }
            let payload = message.payload()
            let text = String(decoding: payload, as: UTF8.self)
            var record: Object = [
                "payload_b64": payload.base64EncodedString(), "key": message.key() ?? NSNull(),
                "headers": message.headers().map { [$0.name, $0.value] }, "msg_id": message.msgId() ?? NSNull(),
                "partition": message.partition(), "sequence": message.sequence(), "deliveries": message.deliveries(),
                "t_ms": Int(Date().timeIntervalSince(started) * 1000),
            ]
            if let decode {
                // Only some messages are of the schema: others record null.
                record["decoded"] = (try? await client.decodeWithSchema(name: decode, payload: payload, version: nil)) ?? NSNull()
            }
            if jitter {  // handlers of different keys overlap and finish out of order
                try? await Task.sleep(nanoseconds: UInt64.random(in: 0..<1_000_000))
            }
            let finished: Bool
            if fail.contains(text) {
                record["action"] = "nack"
                guard case let (_, done)? = await progress.record(record, acked: nil) else { return await hold(message) }
                finished = done
                try? message.nack(reason: "rejected by handler: \(text)", delay: nil)
            } else if let (times, delay) = nack[text], message.deliveries() <= UInt64(times) {
                record["action"] = "nack"
                guard case let (_, done)? = await progress.record(record, acked: nil) else { return await hold(message) }
                finished = done
                try? message.nack(reason: "asked to fail", delay: delay)
            } else {
                record["action"] = "ack"
                // Recorded before settling, as every runner does: once settled, the
                // next message of the key may be handed out and recorded first.
                guard case let (acked, done)? = await progress.record(record, acked: text) else {
                    return await hold(message)
                }
                try? message.ack()
                if settleTwice {
                    do {
                        try message.ack()
                        await progress.secondSettle("none")
                    } catch let error as JetstationError {
                        await progress.secondSettle(error.kind)
                    } catch {
                        await progress.secondSettle("unexpected")
                    }
                }
                finished = done
                if let crashAfter, acked >= crashAfter, await progress.startCrash() {
                    try? await Task.sleep(nanoseconds: UInt64(crashWait * 1_000_000_000))
                    answer(["ok": ["messages": await progress.records, "timed_out": false]])
                    exit(0)  // a crash: nothing is closed, nothing more is committed
                }
            }
            _ = finished
        }

        let pump = Task {
            await withTaskGroup(of: Void.self) { group in
                do {
                    for try await message in consumer.messages {
                        group.addTask { await handle(message) }
                    }
                } catch {}
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while !(await progress.finished) {
            if Date() > deadline { timedOut = true; break }
            // Polls the handlers' progress; a consume step lasts seconds at most.
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        try await consumer.close()
        await pump.value
        var result: Object = ["messages": await progress.records, "timed_out": timedOut]
        if settleTwice { result["second_settle"] = await progress.secondSettleKind ?? NSNull() }
        return result
    }
}

@main
struct Main {
    static func main() async {
        let runner = Runner()
        while let line = readLine() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard let op = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? Object else {
                answer(["error": ["kind": "unexpected", "message": "not a JSON object: \(line)"]])
                continue
            }
            do {
                answer(["ok": try await runner.perform(op)])
            } catch let error as JetstationError {
                answer(["error": ["kind": error.kind, "message": error.message]])
            } catch {
                answer(["error": ["kind": "unexpected", "message": "\(error)"]])
            }
        }
        for producer in runner.producers.values { try? await producer.close() }
    }
}
