// swift-tools-version:5.9
// Produce throughput of the Swift package (run by scripts/bench-produce.sh).
import PackageDescription

let package = Package(
    name: "SwiftProduce",
    platforms: [.macOS(.v12)],
    dependencies: [.package(path: "../../../bindings/swift")],
    targets: [
        .executableTarget(name: "SwiftProduce", dependencies: [.product(name: "Jetstation", package: "swift")])
    ]
)
