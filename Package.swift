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
        .library(name: "VsockTransport", targets: ["VsockTransport"]),
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

        // MARK: VsockTransport — one byte pipe per VM (vsock / virtio-serial) and yamux on it (leaf)
        .target(
            name: "VsockTransport",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        // The command protocol spoken by the yamux test peers (Swift side); used by the
        // tests, the static guest program and the benchmark. Not a product.
        .target(
            name: "VsockTransportTestPeer",
            dependencies: [
                "VsockTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/VsockTransportTestPeer",
            swiftSettings: swiftSettings
        ),
        // Boots the guest program in QEMU (microvm, Debian cloud kernel) for the
        // tests and the benchmark. Not a product.
        .target(
            name: "VsockTransportTestVM",
            dependencies: ["VsockTransport"],
            path: "Tests/VsockTransportTestVM",
            swiftSettings: swiftSettings
        ),
        // Static guest program for the QEMU test (built with -static-executable by
        // scripts/build-vsock-guest.sh into .build-guest).
        .executableTarget(
            name: "VsockGuestEcho",
            dependencies: ["VsockTransport", "VsockTransportTestPeer"],
            path: "Tests/VsockGuestEcho",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "VsockTransportBenchmark",
            dependencies: [
                "VsockTransport", "VsockTransportTestPeer", "VsockTransportTestVM",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/VsockTransportBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VsockTransportTests",
            dependencies: [
                "VsockTransport", "VsockTransportTestPeer", "VsockTransportTestVM", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["GoPeer"],
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
