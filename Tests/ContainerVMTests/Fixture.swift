import Foundation
import OCISpec
import QemuboxAPI
import QemuboxKit
import TestSupport

/// Builds busybox bundles and runs them with the real guest (kernel, system
/// image with vminitd and crun) under QEMU.
enum Fixture {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The guest assets: the environment's, else the image this clone built
    /// (packaging/build-guest-image.sh) and the cached guest kernel.
    static func assets() throws -> GuestAssets {
        try GuestAssets.locate(environment: GuestImage.environment())
    }

    /// True when the guest can boot here (or under CI, where a missing piece must fail).
    static var available: Bool {
        if Prerequisite.isCI { return true }
        do {
            _ = try assets()
            guard Prerequisite.tools("qemu-system-x86_64", "mkfs.ext4", "crun") else { return false }
            return true
        } catch {
            FileHandle.standardError.write(Data("SKIP: \(error)\n".utf8))
            return false
        }
    }

    /// A busybox bundle in `directory/name` running `args`, with `configure`
    /// applied to its config.json.
    static func bundle(in directory: String, name: String = "bundle", _ args: [String],
                       configure: (inout RuntimeSpec) -> Void = { _ in }) throws -> String {
        let path = directory + "/" + name
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/bash")
        script.arguments = [packageRoot + "/scripts/make-busybox-bundle.sh", path] + args
        script.standardOutput = FileHandle.nullDevice
        try script.run()
        script.waitUntilExit()
        guard script.terminationStatus == 0 else { throw PeerError("make-busybox-bundle.sh failed") }
        let spec = try RuntimeSpec.load(bundle: path).with(configure)
        try spec.save(bundle: path)
        return path
    }

    /// Runs `command` with bash, throwing unless it exits 0; returns stdout.
    @discardableResult
    static func sh(_ command: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", command]
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw PeerError("`\(command)` exited \(p.terminationStatus): \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// sha256 of a file, by the host's sha256sum.
    static func sha256(file: String) throws -> String {
        let tool = Process()
        tool.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        tool.arguments = [file]
        let pipe = Pipe()
        tool.standardOutput = pipe
        try tool.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        tool.waitUntilExit()
        return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    struct Output {
        var status: UInt32
        var stdout: Data
        var stderr: Data
        var events: [String]
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Runs a bundle with BundleRunner, capturing stdout and stderr in files;
    /// `stdin` (if any) is fed from a file.
    static func run(_ bundle: String, in directory: String, stdin: Data? = nil, terminal: Bool? = nil,
                    writableBytes: UInt64 = 256 << 20, memoryMiB: Int = 256, assets: GuestAssets? = nil,
                    templates: VMTemplateStore? = nil) async throws
        -> Output
    {
        var options = BundleRunOptions(bundle: bundle, assets: try assets ?? Fixture.assets(),
                                       containerID: "c\(UInt32.random(in: 0...UInt32.max))")
        options.terminal = terminal
        options.writableBytes = writableBytes
        options.memoryMiB = memoryMiB
        options.templates = templates
        options.stateDirectory = directory + "/state-" + options.containerID
        let outPath = directory + "/stdout", errPath = directory + "/stderr", inPath = directory + "/stdin"
        let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let err = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(out); close(err) }
        options.stdout = out
        options.stderr = err
        var input: Int32 = -1
        if let stdin {
            try stdin.write(to: URL(fileURLWithPath: inPath))
            input = open(inPath, O_RDONLY | O_CLOEXEC)
            options.stdin = input
        }
        defer { if input >= 0 { close(input) } }
        let events = EventLog()
        options.onEvent = { events.append(ContainerdEvent.topic(for: $0) ?? "") }
        let result = try await BundleRunner.run(options)
        return Output(status: result.exitStatus,
                      stdout: try Data(contentsOf: URL(fileURLWithPath: outPath)),
                      stderr: try Data(contentsOf: URL(fileURLWithPath: errPath)),
                      events: events.topics)
    }
}

/// Thread-safe list of event topics.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ topic: String) { lock.withLock { list.append(topic) } }
    var topics: [String] { lock.withLock { list } }
}
