// swift-tools-version:5.9
// The Swift runner of the cross-language conformance suite (tests/conformance).
import PackageDescription

let package = Package(
    name: "ConformanceRunner",
    platforms: [.macOS(.v12)],
    dependencies: [.package(path: "../../../bindings/swift")],
    targets: [
        .executableTarget(name: "ConformanceRunner", dependencies: [.product(name: "Jetstation", package: "swift")])
    ]
)
