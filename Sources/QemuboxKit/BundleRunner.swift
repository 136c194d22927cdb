#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import OCISpec
import QemuboxAPI
import SwiftProtobuf
import VsockTransport

/// Runs one OCI bundle (config.json + rootfs/) in its own VM, end to end: the
/// rootfs becomes an EROFS disk plus a writable layer, the process runs with the
/// bundle's args/env/cwd/user, stdio is relayed to host descriptors, and the
/// result is the container's exit status. Everything created is released, also
/// on failure.
///
/// ```swift
/// var options = BundleRunOptions(bundle: "/srv/bundle", assets: try GuestAssets.locate())
/// options.stdin = 0
/// let result = try await BundleRunner.run(options)
/// exit(Int32(result.exitStatus))
/// ```
public enum BundleRunner {
    /// Runs the bundle. `resizes` (terminal sessions) delivers window sizes to apply.
    public static func run(_ options: BundleRunOptions, resizes: AsyncStream<WindowSize>? = nil) async throws
        -> BundleRunResult
    {
        let configPath = options.bundle + "/config.json"
        let spec: RuntimeSpec
        do {
            spec = try RuntimeSpec.load(bundle: options.bundle)
            try spec.validate()
        } catch {
            throw QemuboxError(.invalidBundle, "\(configPath): \(error)")
        }
        guard spec.rootfsPath(bundle: options.bundle) != nil else {
            throw QemuboxError(.invalidBundle, "\(configPath) has no root.path")
        }
        let terminal = options.terminal ?? spec.process?.terminal ?? false
        let ownsState = options.stateDirectory == nil
        let stateDirectory = try options.stateDirectory ?? makeTemporaryDirectory()
        var configuration = options.podConfiguration(id: options.containerID, stateDirectory: stateDirectory)
        if let onEvent = options.onEvent { configuration.onEvent = onEvent }
        let pod = Pod(configuration)
        if let spare = options.spare { await pod.adopt(spare: spare) }
        let io = DescriptorIO(stdin: options.stdin, stdout: options.stdout, stderr: options.stderr)
        do {
            let started = ContinuousClock.now
            var create = Containerd_Task_V2_CreateTaskRequest()
            create.id = options.containerID
            create.bundle = options.bundle
            create.terminal = terminal
            try await pod.create(create, rootfs: .ephemeral, io: io)
            let created = ContinuousClock.now
            let resizer = resizes.map { sizes in
                Task {
                    for await size in sizes {
                        var request = Containerd_Task_V2_ResizePtyRequest()
                        request.id = options.containerID
                        request.width = UInt32(size.columns)
                        request.height = UInt32(size.rows)
                        try? await pod.resizePty(request)
                    }
                }
            }
            defer { resizer?.cancel() }
            try await pod.start(containerID: options.containerID)
            let running = ContinuousClock.now
            let exit = try await pod.wait(containerID: options.containerID)
            if let reason = await pod.vm?.exit {
                throw QemuboxError(.agentUnavailable, "the VM exited while waiting for \(options.containerID): \(reason)")
            }
            // The guest closes stdout/stderr after the process's last byte.
            let (stdoutBytes, stderrBytes) = try await io.outputBytes()
            _ = try await pod.delete(containerID: options.containerID)
            if ownsState { try? FileManager.default.removeItem(atPath: stateDirectory) }
            let exited = ContinuousClock.now
            let timings = await pod.timings
            let rootfs = timings["rootfs"] ?? 0, boot = (timings["network"] ?? 0) + (timings["boot"] ?? 0)
            return BundleRunResult(exitStatus: exit.status, stdoutBytes: stdoutBytes, stderrBytes: stderrBytes,
                                   bootSeconds: rootfs + boot,
                                   runSeconds: seconds(exited - running),
                                   phases: BundleRunResult.Phases(
                                       rootfs: rootfs, boot: boot,
                                       create: timings["create"] ?? 0,
                                       start: seconds(running - created),
                                       firstOutput: io.firstOutput.map { seconds($0 - started) }))
        } catch {
            await pod.terminate()
            await io.close()
            if ownsState { try? FileManager.default.removeItem(atPath: stateDirectory) }
            throw error
        }
    }

    /// A fresh private (0700) directory under `TMPDIR`, where runs keep their files by default.
    public static func makeTemporaryDirectory() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array((base + "/qemubox-run.XXXXXX").utf8CString)
        guard let path = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } })
        else {
            throw QemuboxError(.stateDirectory, "mkdtemp in \(base): \(String(cString: strerror(errno)))")
        }
        return String(cString: path)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// A terminal's size.
public struct WindowSize: Sendable, Hashable {
    /// Rows.
    public var rows: UInt16
    /// Columns.
    public var columns: UInt16
    /// Creates a size.
    public init(rows: UInt16, columns: UInt16) {
        self.rows = rows
        self.columns = columns
    }
}

/// What ``BundleRunner`` runs and how.
public struct BundleRunOptions: Sendable {
    /// The bundle directory (config.json and the rootfs it names).
    public var bundle: String
    /// Guest kernel and system image.
    public var assets: GuestAssets
    /// Container id (also the VM's name).
    public var containerID: String
    /// Allocate a terminal (nil: config.json's `process.terminal`).
    public var terminal: Bool?
    /// Host descriptor copied to the container's stdin until EOF (nil: no stdin).
    public var stdin: Int32?
    /// Host descriptor receiving the container's stdout (the terminal with `terminal`).
    public var stdout: Int32
    /// Host descriptor receiving the container's stderr.
    public var stderr: Int32
    /// Size of the writable layer's disk (sparse); 0 mounts the rootfs read-only without one.
    public var writableBytes: UInt64
    /// Guest memory.
    public var memoryMiB: Int
    /// vCPUs.
    public var vcpus: Int
    /// QEMU binary.
    public var qemuBinary: String
    /// Where the VM's files go (nil: a temporary directory, removed afterwards).
    public var stateDirectory: String?
    /// Verbose agent logging on the guest console.
    public var debug: Bool
    /// Warm start: restore a saved guest from this store instead of booting (nil: boot).
    public var templates: VMTemplateStore?
    /// Words appended to the guest kernel's command line (e.g. `loglevel=7`).
    public var extraKernelArguments: [String]
    /// Called for every task event in containerd's form (create, start, exit, OOM, delete).
    public var onEvent: (@Sendable (any SwiftProtobuf.Message) -> Void)?
    /// A VM started ahead (``Pod/startSpare(_:warmUp:)`` with ``podConfiguration(id:stateDirectory:)``)
    /// for the container; used when it fits, discarded otherwise.
    public var spare: Sandbox?
    /// Logger.
    public var logger: Logger

    /// Creates options with stdout/stderr going to this process's.
    public init(bundle: String, assets: GuestAssets, containerID: String = "bundle") {
        self.bundle = bundle
        self.assets = assets
        self.containerID = containerID
        self.terminal = nil
        self.stdin = nil
        self.stdout = 1
        self.stderr = 2
        self.writableBytes = 1 << 30
        self.memoryMiB = 256
        self.vcpus = 1
        self.qemuBinary = "qemu-system-x86_64"
        self.stateDirectory = nil
        self.debug = false
        self.templates = nil
        self.extraKernelArguments = []
        self.onEvent = nil
        self.spare = nil
        self.logger = Logger(label: "qemubox.run")
    }

    /// The pod configuration a run with these options uses (also the one to start a
    /// ``spare`` with, so that it fits).
    public func podConfiguration(id: String, stateDirectory: String) -> PodConfiguration {
        var configuration = PodConfiguration(id: id, stateDirectory: stateDirectory, assets: assets)
        configuration.qemuBinary = qemuBinary
        configuration.memoryMiB = memoryMiB
        configuration.vcpus = vcpus
        configuration.writableBytes = writableBytes
        configuration.debug = debug
        configuration.templates = templates
        configuration.extraKernelArguments = extraKernelArguments
        configuration.networking = false
        configuration.logger = logger
        return configuration
    }
}

/// The outcome of ``BundleRunner/run(_:resizes:)``.
public struct BundleRunResult: Sendable, Hashable {
    /// The container's exit status (128+N when killed by signal N).
    public var exitStatus: UInt32
    /// Bytes relayed from stdout.
    public var stdoutBytes: UInt64
    /// Bytes relayed from stderr.
    public var stderrBytes: UInt64
    /// Seconds from the start until the agent answered (rootfs conversion + boot).
    public var bootSeconds: Double
    /// Seconds from `Task/Start` until the process exited.
    public var runSeconds: Double
    /// Where the time went, in seconds.
    public var phases: Phases

    /// Where a run's time went, in seconds.
    public struct Phases: Sendable, Hashable {
        /// Rootfs directory → EROFS image and writable disk.
        public var rootfs: Double
        /// QEMU start → the agent answered (kernel, vminitd, connection, clock).
        public var boot: Double
        /// config.json, mounts, stdio streams, `Task/Create` (crun create).
        public var create: Double
        /// `Task/Start`.
        public var start: Double
        /// From the beginning until the first stdout/stderr byte (nil: no output).
        public var firstOutput: Double?
    }
}
