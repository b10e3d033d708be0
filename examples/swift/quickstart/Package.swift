// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "JetstationQuickstart",
    platforms: [.macOS(.v12)],
    dependencies: [.package(path: "../../../bindings/swift")],
    targets: [
        .executableTarget(name: "Quickstart", dependencies: [.product(name: "Jetstation", package: "swift")])
    ]
)
