// swift-tools-version:5.9
// Reporting service of the cross-language demo (`make demo`).
import PackageDescription

let package = Package(
    name: "JetstationReporting",
    platforms: [.macOS(.v12)],
    dependencies: [.package(path: "../../../bindings/swift")],
    targets: [
        .executableTarget(name: "Reporting", dependencies: [.product(name: "Jetstation", package: "swift")])
    ]
)
