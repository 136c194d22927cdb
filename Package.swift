// swift-tools-version:6.1
//
// qemubox: containers in lightweight QEMU virtual machines, as a suite of
// independent Swift libraries composed by thin executables.
// See Documentation/architecture.md for the layering rules.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "qemubox",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TTRPCCodec", targets: ["TTRPCCodec"]),
        .library(name: "EROFSImage", targets: ["EROFSImage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // MARK: TTRPCCodec — the ttrpc wire protocol (leaf)
        .target(
            name: "TTRPCCodec",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: EROFSImage — EROFS images from directories and OCI layers (leaf)
        .systemLibrary(
            name: "CEROFSLZ4",
            path: "Sources/CEROFSLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .systemLibrary(
            name: "CEROFSZlib",
            path: "Sources/CEROFSZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "CEROFSSupport", path: "Sources/CEROFSSupport"),
        .target(
            name: "EROFSImage",
            dependencies: ["CEROFSLZ4", "CEROFSZlib", "CEROFSSupport"],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EROFSImageTests",
            dependencies: ["EROFSImage", "CEROFSSupport", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EROFSBenchmark",
            dependencies: ["EROFSImage"],
            path: "Benchmarks/EROFSBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "erofs-convert",
            dependencies: ["EROFSImage"],
            path: "Examples/ErofsConvert",
            swiftSettings: swiftSettings
        ),

        // MARK: Test support (prerequisite checks, temp dirs, peer builds)
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
