// swift-tools-version:6.1
//
// The libFuzzer executables of qemubox: one per target of the main package's
// QemuboxFuzzTargets library. A separate package so that the main build and CI never
// see -sanitize=fuzzer or unsafe flags. Build and run with scripts/fuzz.sh, or:
//
//   cd Fuzz && swift build -c release --scratch-path ../.build-fuzz -Xswiftc -sanitize=fuzzer,address
//
// See Documentation/fuzzing.md.

import PackageDescription

// Each executable's `@main` hands the command line to libFuzzer's driver
// (LLVMFuzzerRunDriver), which calls its LLVMFuzzerTestOneInput for every input.
// -parse-as-library: the entry point is a `@main` type, not top-level code.
let fuzzerSettings: [SwiftSetting] = [
    .unsafeFlags(["-parse-as-library"]),
]

/// One libFuzzer executable per target, `fuzz-<name>` (Sources/fuzz-<name>/Fuzzer.swift).
let fuzzTargets = ["ttrpc-frame", "yamux-session", "qmp-framing", "guest-stream-header", "tar-reader",
                   "erofs-reader", "writeback-stream", "config-toml"]

let package = Package(
    name: "qemubox-fuzz",
    dependencies: [
        .package(name: "qemubox", path: ".."),
    ],
    targets: [
        // Declares libFuzzer's driver entry point (defined by the -sanitize=fuzzer runtime).
        .target(name: "CFuzzerDriver"),
    ] + fuzzTargets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: ["CFuzzerDriver", .product(name: "QemuboxFuzzTargets", package: "qemubox")],
            swiftSettings: fuzzerSettings
        )
    },
    swiftLanguageModes: [.v6]
)
