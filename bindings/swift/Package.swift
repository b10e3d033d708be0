// swift-tools-version:5.9
// Jetstation for Swift: the jetstation core through uniffi. The generated
// bindings (Sources/Jetstation/Generated, Sources/jetstation_ffiFFI/*.h) are
// written by scripts/test-swift.sh from the built library, never committed.
import PackageDescription

let package = Package(
    name: "Jetstation",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [.library(name: "Jetstation", targets: ["Jetstation"])],
    targets: [
        .systemLibrary(name: "jetstation_ffiFFI", path: "Sources/jetstation_ffiFFI"),
        .target(name: "Jetstation", dependencies: ["jetstation_ffiFFI"], path: "Sources/Jetstation"),
        .testTarget(name: "JetstationTests", dependencies: ["Jetstation"], path: "Tests/JetstationTests"),
    ]
)
