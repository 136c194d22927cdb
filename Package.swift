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
        .library(name: "QemuboxAPI", targets: ["QemuboxAPI"]),
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
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md", "Protos"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TTRPCCodecTests",
            dependencies: [
                "TTRPCCodec", "TestSupport", "EchoService",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "EchoService",
            dependencies: ["TTRPCCodec", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tests/Peers/swift/EchoService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "TTRPCBenchmark",
            dependencies: ["TTRPCCodec", "EchoService", "TestSupport"],
            path: "Benchmarks/TTRPCBenchmark",
            swiftSettings: swiftSettings
        ),

        // MARK: QemuboxAPI — containerd's protos as Swift, typed ttrpc stubs
        .target(
            name: "QemuboxAPI",
            dependencies: [
                "TTRPCCodec",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QemuboxAPITests",
            dependencies: [
                "QemuboxAPI", "TTRPCCodec", "TestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: GuestKernelTests — boots the guest kernel (kernel-config/) under QEMU microvm
        .testTarget(
            name: "GuestKernelTests",
            dependencies: ["TestSupport"],
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
