// jetstation quickstart in Swift: employee changes from HR to payroll.
//   NATS_URL=nats://127.0.0.1:4222 swift run
import Foundation
import Jetstation

let url = ProcessInfo.processInfo.environment["NATS_URL"] ?? "nats://127.0.0.1:4222"
let station = "employee-changes-swift"
let changes: [(String, String)] = [
    ("emp-1", #"{"field":"name","value":"Ada Lovelace"}"#),
    ("emp-2", #"{"field":"salary","value":5200}"#),
    ("emp-3", #"{"field":"salary","value":"five thousand"}"#),  // malformed
    ("emp-1", #"{"field":"title","value":"Engineer"}"#),
]

let client = try await Client.connect(url)
try? await client.deleteStation(name: station)
_ = try await client.createStation(name: station, config: StationConfig(partitions: 2, maxDeliveries: 3))
let producer = try await client.producer(station: station)
for (employee, change) in changes {
    let receipt = try await producer.send(payload: Data(change.utf8), key: employee)
    print("sent \(employee) -> partition \(receipt.partition) seq \(receipt.sequence)")
}

let consumer = try await client.consumer(
    station: station, group: "payroll", options: ConsumerOptions(redeliveryDelay: 0.1))
// Payroll applies changes; a salary that is not a number fails (nack).
let worker = Task { () -> Int in
    var applied = 0
    for try await message in consumer.messages {
        let change = try JSONSerialization.jsonObject(with: message.payload()) as! [String: Any]
        if change["field"] as? String == "salary", !(change["value"] is NSNumber) {
            try message.nack(reason: "salary is not a number", delay: nil)
            continue
        }
        try message.ack()
        applied += 1
        print("payroll applied \(message.key() ?? "") \(message.text)")
    }
    return applied
}
while try await client.station(name: station).deadLetters == 0 {
    // Poll until the malformed change is dead-lettered.
    try await Task.sleep(nanoseconds: 50_000_000)
}
// Give the last good changes time to be applied before the iteration is cancelled.
try await Task.sleep(nanoseconds: 300_000_000)
worker.cancel()  // ends the iteration
let applied = try await worker.value
try await consumer.close()
let letter = try await client.deadLetters(station: station)[0]
print("dead letter after \(letter.deliveries) deliveries: \(letter.lastError)")
print("payroll applied \(applied) of \(changes.count) changes")
print("quickstart OK")
