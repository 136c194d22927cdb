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
        .library(name: "QMPClient", targets: ["QMPClient"]),
        .library(name: "QemuboxKit", targets: ["QemuboxKit"]),
        .library(name: "CNIRunner", targets: ["CNIRunner"]),
        .library(name: "ProcessSpawn", targets: ["ProcessSpawn"]),
        .library(name: "OCISpec", targets: ["OCISpec"]),
        .library(name: "VsockTransport", targets: ["VsockTransport"]),
        .library(name: "EROFSImage", targets: ["EROFSImage"]),
        .library(name: "QemuboxShim", targets: ["QemuboxShim"]),
        .executable(name: "containerd-shim-qemubox-v1", targets: ["containerd-shim-qemubox-v1"]),
        .library(name: "GuestAgent", targets: ["GuestAgent"]),
        .executable(name: "vminitd", targets: ["vminitd"]),
        .library(name: "QemuboxOperator", targets: ["QemuboxOperator"]),
        .executable(name: "qemubox", targets: ["qemubox"]),
        // For the libFuzzer executables of the Fuzz/ package (Documentation/fuzzing.md).
        .library(name: "QemuboxFuzzTargets", targets: ["QemuboxFuzzTargets"]),
    ],
    // OTLP: the shim's OpenTelemetry exporter (swift-otel). The guest image is built without it
    // (`--disable-default-traits`): swift-otel asks for swift-protobuf's default traits, whose
    // BinaryDelimitedStreams imports full Foundation, and traits are unified across the graph,
    // so with it the static vminitd would link ICU (63 MiB instead of 21 MiB).
    traits: [
        .trait(name: "OTLP", description: "Export the shim's traces with swift-otel (OTLP over HTTP)"),
        .default(enabledTraits: ["OTLP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Without the default trait BinaryDelimitedStreams, the only part of SwiftProtobuf that
        // imports full Foundation (Input/OutputStream): the static vminitd then links no ICU.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: ["FieldMaskUtilities"]),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-service-context", from: "1.5.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // OTLP over HTTP only: the gRPC exporter's dependencies are left out.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        // `swift package generate-documentation --target QemuboxKit` (DocC; a plugin, nothing is linked).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: TTRPCCodec — the ttrpc wire protocol (leaf)
        .target(
            name: "TTRPCCodec",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOFoundationEssentialsCompat", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceContextModule", package: "swift-service-context"),
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
            exclude: ["README.md", "Protos"],
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

        // MARK: GuestAgent — the guest: PID 1, agent services, crun supervision
        .target(name: "CGuestAgentSupport", path: "Sources/CGuestAgentSupport"),
        .target(
            name: "GuestAgent",
            dependencies: [
                "QemuboxAPI", "TTRPCCodec", "VsockTransport", "OCISpec", "CGuestAgentSupport", "ProcessSpawn",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceContextModule", package: "swift-service-context"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "vminitd",
            dependencies: ["GuestAgent"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GuestAgentTests",
            dependencies: [
                "GuestAgent", "QemuboxAPI", "QemuboxKit", "TTRPCCodec", "VsockTransport", "OCISpec", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: QMPClient — the QEMU Machine Protocol (leaf)
        .target(
            name: "QMPClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "QMPClientBenchmark",
            dependencies: ["QMPClient"],
            path: "Benchmarks/QMPClientBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QMPClientTests",
            dependencies: [
                "QMPClient", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: ProcessSpawn — the one way to start a process: descriptors, session, death
        // signal, network namespace and TAPs, a jail (leaf)
        .target(
            name: "CProcessSpawn",
            path: "Sources/CProcessSpawn",
            // The jail: libseccomp compiles allow-lists, libcap-ng drops capabilities
            // (scripts/deps/jail.sh installs both).
            linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("cap-ng")]
        ),
        .target(
            name: "ProcessSpawn",
            dependencies: [
                "CProcessSpawn",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProcessSpawnTests",
            dependencies: ["ProcessSpawn", "TestSupport"],
            swiftSettings: swiftSettings
        ),

        // MARK: CNIRunner — CNI plugin execution, result cache, network namespaces (leaf)
        .target(
            name: "CNIRunner",
            dependencies: [
                "ProcessSpawn",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CNIRunnerTests",
            dependencies: ["CNIRunner", "TestSupport"],
            swiftSettings: swiftSettings
        ),

        // MARK: QemuboxKit — host side (VM layer: description, argv, launch, supervision)
        .target(
            name: "CQemuboxSupport",
            path: "Sources/CQemuboxSupport"
        ),
        .target(
            name: "QemuboxKit",
            dependencies: [
                "QMPClient", "CQemuboxSupport", "QemuboxAPI", "TTRPCCodec", "VsockTransport", "EROFSImage", "OCISpec",
                "CNIRunner", "ProcessSpawn",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceContextModule", package: "swift-service-context"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        // The DocC article "Embedding QemuboxKit", compiled so its code stays true.
        .executableTarget(
            name: "qemubox-embed-example",
            dependencies: ["QemuboxKit"],
            path: "Examples/EmbedBundle",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "QemuboxRunVM",
            dependencies: ["QemuboxKit"],
            path: "Examples/QemuboxRunVM",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "qemubox-run",
            dependencies: [
                "QemuboxKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/QemuboxRun",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "BootBenchmark",
            dependencies: ["QemuboxKit"],
            path: "Benchmarks/BootBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QemuboxKitTests",
            dependencies: [
                "QemuboxKit", "QMPClient", "TestSupport", "QemuboxAPI", "TTRPCCodec", "VsockTransport", "CQemuboxSupport",
                "ProcessSpawn",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Golden"],
            swiftSettings: swiftSettings
        ),

        // MARK: OCISpec — lossless OCI runtime-spec and image-spec models (leaf)
        .target(
            name: "OCISpec",
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OCISpecTests",
            dependencies: ["OCISpec", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "OCISpecBenchmark",
            dependencies: ["OCISpec", "TestSupport"],
            path: "Benchmarks/OCISpecBenchmark",
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
            dependencies: ["VsockTransport", "VsockTransportTestPeer", "TTRPCCodec", "EchoService"],
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

        // MARK: ContainerVMTests — OCI bundles run by the real guest (vminitd + crun) in QEMU
        .testTarget(
            name: "ContainerVMTests",
            dependencies: [
                "QemuboxKit", "QemuboxAPI", "OCISpec", "VsockTransport", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Integration tests across layers (no VM): ttrpc over yamux
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "TTRPCCodec", "VsockTransport", "EchoService", "TestSupport",
                "VsockTransportTestPeer", "VsockTransportTestVM",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: GuestKernelTests — boots the guest kernel (kernel-config/) under QEMU microvm
        .testTarget(
            name: "GuestKernelTests",
            dependencies: ["TestSupport", "EROFSImage"],
            swiftSettings: swiftSettings
        ),

        // MARK: QemuboxShim — the containerd shim v2 contract (start/delete, Task service, events)
        .target(
            name: "QemuboxShim",
            dependencies: [
                "QemuboxKit", "QemuboxAPI", "TTRPCCodec", "OCISpec", "VsockTransport", "ProcessSpawn",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "OTel", package: "swift-otel", condition: .when(traits: ["OTLP"])),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "containerd-shim-qemubox-v1",
            dependencies: ["QemuboxShim"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ShimTests",
            dependencies: [
                "QemuboxShim", "QemuboxKit", "QemuboxAPI", "QemuboxOperator", "TTRPCCodec", "TestSupport", "ContainerdTestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            // CRI bundles' config.json captured with runc (CRITests, QEMUBOX_CRI_FIXTURES).
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),

        // MARK: QemuboxOperator — the operator command `qemubox` (check, ps, console, logs, cache,
        // templates, convert, inspect)
        .target(
            name: "QemuboxOperator",
            dependencies: [
                "QemuboxKit", "QemuboxShim", "EROFSImage", "OCISpec", "ProcessSpawn", "CNIRunner", "TTRPCCodec", "QemuboxAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "qemubox",
            dependencies: ["QemuboxOperator"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QemuboxOperatorTests",
            dependencies: [
                "QemuboxOperator", "QemuboxKit", "EROFSImage", "ProcessSpawn", "TestSupport", "ContainerdTestSupport",
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: QemuboxFuzzTargets — every parser of untrusted bytes behind one function each;
        // driven by libFuzzer from the separate Fuzz/ package and by FuzzCorpusTests
        .target(
            name: "QemuboxFuzzTargets",
            dependencies: [
                "TTRPCCodec", "VsockTransport", "QMPClient", "QemuboxAPI", "EROFSImage", "QemuboxKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FuzzCorpusTests",
            dependencies: ["QemuboxFuzzTargets"],
            swiftSettings: swiftSettings
        ),

        // MARK: Test support (prerequisite checks, temp dirs, peer builds)
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        // A private containerd with the qemubox shim, and a shell runner, for the tests that
        // drive containerd (ShimTests, QemuboxOperatorTests)
        .target(
            name: "ContainerdTestSupport",
            dependencies: ["TestSupport", "QemuboxKit", "ProcessSpawn"],
            path: "Tests/ContainerdTestSupport",
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
