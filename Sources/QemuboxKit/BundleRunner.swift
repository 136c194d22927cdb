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
        guard let configJSON = FileManager.default.contents(atPath: configPath) else {
            throw QemuboxError(.invalidBundle, "\(configPath) is missing or unreadable")
        }
        let spec: RuntimeSpec
        do {
            spec = try RuntimeSpec.load(bundle: options.bundle)
            try spec.validate()
        } catch {
            throw QemuboxError(.invalidBundle, "\(configPath): \(error)")
        }
        guard let rootfs = spec.rootfsPath(bundle: options.bundle) else {
            throw QemuboxError(.invalidBundle, "\(configPath) has no root.path")
        }
        let terminal = options.terminal ?? spec.process?.terminal ?? false
        // The guest's bundle keeps its rootfs at `rootfs`; any other root.path is
        // rewritten, every other byte of config.json is passed on unchanged.
        let guestConfig: Data
        if spec.root?.path == "rootfs" && (spec.process?.terminal ?? false) == terminal {
            guestConfig = configJSON
        } else {
            do {
                guestConfig = try JSONEncoder().encode(spec.with {
                    $0.root?.path = "rootfs"
                    $0.process?.terminal = terminal
                })
            } catch {
                throw QemuboxError(.invalidBundle, "cannot re-encode \(configPath): \(error)")
            }
        }

        let ownsState = options.stateDirectory == nil
        let stateDirectory = try options.stateDirectory ?? makeTemporaryDirectory()
        var sandbox: Sandbox?
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let started = ContinuousClock.now
            let plan = try RootfsPlan.fromDirectory(rootfs, containerID: options.containerID, directory: stateDirectory,
                                                    writableBytes: options.writableBytes)
            let rootfsReady = ContinuousClock.now
            var configuration = SandboxConfiguration(name: options.containerID, assets: options.assets,
                                                     stateDirectory: stateDirectory, memoryMiB: options.memoryMiB,
                                                     vcpus: options.vcpus, debug: options.debug,
                                                     removeStateDirectoryOnExit: ownsState, logger: options.logger)
            configuration.qemuBinary = options.qemuBinary
            configuration.templates = options.templates
            configuration.extraKernelArguments = options.extraKernelArguments
            let box = try await Sandbox.start(configuration, extraDisks: plan.disks)
            sandbox = box
            let booted = ContinuousClock.now
            let events = Task { await drainEvents(box, options) }
            defer { events.cancel() }
            try await box.prepareBundle(plan, configJSON: guestConfig)
            let stdio = try await ProcessStdio.open(on: box.agent, name: options.containerID,
                                                    stdin: options.stdin != nil, terminal: terminal)
            do {
                try await box.createTask(id: options.containerID, bundle: plan.guestBundle, stdio: stdio,
                                         terminal: terminal)
            } catch {
                stdio.resetAll()
                throw QemuboxError(.agentError, "create \(options.containerID): \(error)")
            }
            let created = ContinuousClock.now
            let firstOutput = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
            let output = startRelays(stdio, options) {
                firstOutput.withLockedValue { $0 = $0 ?? ContinuousClock.now }
            }
            var start = Containerd_Task_V2_StartRequest()
            start.id = options.containerID
            _ = try await box.agent.task.start(start)
            let running = ContinuousClock.now
            let resizer = resizes.map { sizes in
                Task {
                    for await size in sizes {
                        var request = Containerd_Task_V2_ResizePtyRequest()
                        request.id = options.containerID
                        request.width = UInt32(size.columns)
                        request.height = UInt32(size.rows)
                        _ = try? await box.agent.task.resizePty(request)
                    }
                }
            }
            defer { resizer?.cancel() }
            let exit = try await box.wait(containerID: options.containerID)
            // The guest closes stdout/stderr after the process's last byte.
            let (stdoutBytes, stderrBytes) = try await output.value
            var delete = Containerd_Task_V2_DeleteRequest()
            delete.id = options.containerID
            _ = try? await box.agent.task.delete(delete)
            await box.stop(releasing: plan, reason: "container \(options.containerID) exited with \(exit.exitStatus)")
            sandbox = nil
            if ownsState { try? FileManager.default.removeItem(atPath: stateDirectory) }
            let exited = ContinuousClock.now
            let first = firstOutput.withLockedValue { $0 }
            return BundleRunResult(exitStatus: exit.exitStatus, stdoutBytes: stdoutBytes, stderrBytes: stderrBytes,
                                   bootSeconds: seconds(booted - started),
                                   runSeconds: seconds(exited - running),
                                   phases: BundleRunResult.Phases(
                                       rootfs: seconds(rootfsReady - started),
                                       boot: seconds(booted - rootfsReady),
                                       create: seconds(created - booted),
                                       start: seconds(running - created),
                                       firstOutput: first.map { seconds($0 - started) }))
        } catch {
            if let sandbox { await sandbox.kill() }
            if ownsState { try? FileManager.default.removeItem(atPath: stateDirectory) }
            throw error
        }
    }

    static func startRelays(_ stdio: ProcessStdio, _ options: BundleRunOptions,
                            onFirstOutput: @escaping @Sendable () -> Void) -> Task<(UInt64, UInt64), any Error> {
        if let stdin = stdio.stdin, let fd = options.stdin {
            Task { try? await StdioRelay.copy(from: fd, to: stdin) }
        }
        return Task {
            async let out = copyOut(stdio.stdout, options.stdout, onFirstOutput)
            async let err = copyOut(stdio.stderr, options.stderr, onFirstOutput)
            return (try await out, try await err)
        }
    }

    static func copyOut(_ stream: YamuxStream?, _ fd: Int32, _ onFirst: @escaping @Sendable () -> Void) async throws
        -> UInt64
    {
        guard let stream else { return 0 }
        return try await StdioRelay.copy(from: stream, to: fd, onFirstChunk: onFirst)
    }

    static func drainEvents(_ sandbox: Sandbox, _ options: BundleRunOptions) async {
        do {
            for try await event in try await sandbox.agent.system.events(.init(), options: .init(timeout: nil)) {
                options.logger.debug("guest event \(event.topic)")
                options.onEvent?(event)
            }
        } catch {
            options.logger.debug("event stream ended: \(error)")
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
    /// Called for every guest event (exit, OOM, exec started).
    public var onEvent: (@Sendable (Qemubox_Guest_V1_Event) -> Void)?
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
        self.logger = Logger(label: "qemubox.run")
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
