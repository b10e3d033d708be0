// swift-tools-version:5.9
// A separate package that depends on the Swift package of `make dist`, the
// way a service's own repository would; it runs the Swift quickstart.
import PackageDescription

let package = Package(
    name: "InstallCheck",
    platforms: [.macOS(.v12)],
    dependencies: [.package(path: "../../../dist/swift/Jetstation")],
    targets: [
        .executableTarget(name: "Quickstart", dependencies: [.product(name: "Jetstation", package: "Jetstation")])
    ]
)
