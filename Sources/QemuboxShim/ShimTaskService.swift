#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import OCISpec
import QemuboxAPI
import QemuboxKit
import SwiftProtobuf
import TTRPCCodec

/// What the Task service needs from the daemon around it.
public struct ShimContext: Sendable {
    /// containerd namespace.
    public var namespace: String
    /// The task id this shim was started for.
    public var id: String
    /// qemubox configuration.
    public var configuration: QemuboxConfiguration
    /// The shim's files.
    public var paths: ShimPaths
    /// Events to containerd.
    public var publisher: EventPublisher
    /// Logger.
    public var logger: Logger
    /// Called once `Shutdown` decided the shim should exit.
    public var onShutdown: @Sendable () -> Void

    /// Creates a context.
    public init(namespace: String, id: String, configuration: QemuboxConfiguration, paths: ShimPaths,
                publisher: EventPublisher, logger: Logger, onShutdown: @escaping @Sendable () -> Void) {
        self.namespace = namespace
        self.id = id
        self.configuration = configuration
        self.paths = paths
        self.publisher = publisher
        self.logger = logger
        self.onShutdown = onShutdown
    }
}

/// containerd's `containerd.task.v2.Task`, served to containerd: one task (the
/// container) in one VM. Most calls are forwarded to the guest agent, which
/// serves the same API for the container's processes; the shim adds what only
/// the host can do — the VM's lifecycle, the rootfs and its writeback, host
/// stdio, and events to containerd.
public actor ShimTaskService: ContainerdTaskV2TaskService {
    struct Exit: Sendable {
        var status: UInt32
        var at: Date
    }

    enum Status { case created, running, paused, stopped }

    struct Process {
        var execID: String
        var pid: UInt32 = 0
        var io: HostIO
        var status: Status = .created
        var exit: Exit?
        var waiters: [CheckedContinuation<Exit, Never>] = []
        var started = false
    }

    struct Container {
        var id: String
        var bundle: String
        var rootfs: ContainerRootfs
        var sandbox: Sandbox
        var processes: [String: Process]
        var background: [Task<Void, Never>] = []
        /// The networks the shim attached itself (`[network]`), undone on delete.
        var cniAttachment: CNIAttachment?
        /// The namespace is filled after Create (containerd's CNI): attach at Start.
        var attachNetworkAtStart = false
        /// What was joined to the VM's NICs (undone on delete in a namespace the caller owns).
        var attached: [AttachedInterface] = []
        /// What the writable layer may bring back.
        var writebackPolicy: WritebackPolicy
        var deleted = false
        var initExitPublished = false
    }

    let context: ShimContext
    var logger: Logger { context.logger }
    var container: Container?
    var shuttingDown = false
    var nextStdioKey = 0
    /// Timings of the last create (rootfs, boot, agent, create) for logs and benchmarks.
    public private(set) var timings: [String: Double] = [:]

    /// Creates the service.
    public init(context: ShimContext) {
        self.context = context
    }

    // MARK: Create

    public func create(_ request: Containerd_Task_V2_CreateTaskRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_CreateTaskResponse
    {
        guard container == nil, !shuttingDown else {
            throw ShimError(.alreadyExists, "this shim already runs task \(container?.id ?? context.id)")
        }
        guard request.checkpoint.isEmpty else {
            throw ShimError(.unimplemented, "qemubox cannot restore checkpoints")
        }
        let started = ContinuousClock.now
        let configPath = request.bundle + "/config.json"
        guard let configJSON = FileManager.default.contents(atPath: configPath) else {
            throw ShimError(.invalidArgument, "\(configPath) is missing or unreadable")
        }
        let spec: RuntimeSpec
        do {
            spec = try RuntimeSpec.load(bundle: request.bundle)
        } catch {
            throw ShimError(.invalidArgument, "\(configPath): \(error)")
        }
        let configuration = context.configuration
        let paths = context.paths
        let rootPath = spec.root?.path ?? "rootfs"
        let bundleRootfs = rootPath.hasPrefix("/") ? rootPath : request.bundle + "/" + rootPath
        var record = ShimRecord(namespace: context.namespace, id: request.id, bundle: request.bundle,
                                shimPid: getpid(), socket: paths.socket)
        let assets: GuestAssets
        do {
            assets = try configuration.assets()
        } catch {
            throw ShimError.wrap(error, "create \(request.id)")
        }
        var sandbox: Sandbox?
        var io: HostIO?
        var stdio: ProcessStdio?
        var attachment: CNIAttachment?
        do {
            let rootfs = try RootfsPlan.fromMounts(
                request.rootfs, bundleRootfs: bundleRootfs, containerID: request.id, directory: paths.stateDirectory,
                cache: EROFSLayerCache(directory: configuration.cacheDirectory),
                writableBytes: spec.root?.readonly == true ? 0 : UInt64(configuration.writableLayerMiB) << 20)
            record.scratchImage = rootfs.scratchImage
            record.writeback = rootfs.writeback
            let writebackPolicy = WritebackPolicy(spec: spec, layerBytes: UInt64(configuration.writableLayerMiB) << 20)
            record.writebackPolicy = writebackPolicy
            try record.write(to: paths)
            let rootfsReady = ContinuousClock.now
            var sandboxConfiguration = SandboxConfiguration(
                name: Self.vmName(request.id), assets: assets,
                stateDirectory: paths.vmDirectory, memoryMiB: Self.memoryMiB(spec, configuration),
                vcpus: Self.vcpus(spec, configuration), qemuBinary: configuration.qemuBinary,
                agentTimeout: .seconds(configuration.bootTimeoutSeconds), debug: configuration.guestDebug,
                logger: logger)
            sandboxConfiguration.accelerator = configuration.accelerator
            sandboxConfiguration.templates = configuration.templates
            sandboxConfiguration.jail = configuration.jail.jail
            let networkPlan = try await networkPlan(spec, id: request.id, record: &record)
            attachment = networkPlan.attachment
            sandboxConfiguration.network = networkPlan.network
            let networkReady = ContinuousClock.now
            let files = Self.networkFiles(attachment, spec: spec, plan: rootfs.plan)
            let guestConfig = try Self.guestConfig(spec, original: configJSON, terminal: request.terminal,
                                                   files: files.map { ($0.destination, $0.guestPath) })
            let box = try await Sandbox.start(sandboxConfiguration, extraDisks: rootfs.plan.disks)
            sandbox = box
            for each in files {
                var file = Qemubox_Guest_V1_WriteFileRequest()
                file.path = each.guestPath
                file.data = Data(each.content.utf8)
                _ = try await box.agent.system.writeFile(file)
            }
            var attached: [AttachedInterface] = []
            if !networkPlan.attachAtStart, sandboxConfiguration.network != nil {
                attached = try await box.attachNetwork()
            }
            let booted = ContinuousClock.now
            try await box.prepareBundle(rootfs.plan, configJSON: guestConfig)
            let hostIO = try HostIO.open(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
                                         terminal: request.terminal, containerID: request.id,
                                         namespace: context.namespace, logger: logger)
            io = hostIO
            let streams = try await ProcessStdio.open(on: box.agent, name: nextKey(), stdin: hostIO.wantsStdin,
                                                      stdout: hostIO.wantsStdout, stderr: hostIO.wantsStderr,
                                                      terminal: request.terminal)
            stdio = streams
            let response = try await box.createTask(id: request.id, bundle: rootfs.plan.guestBundle, stdio: streams,
                                                    terminal: request.terminal)
            hostIO.attach(streams)
            // containerd sees QEMU's pid for every process (Kata's convention): a host process
            // living in the VM's network namespace, where `/proc/<pid>/ns/net` leads CNI.
            let pid = UInt32(await box.vm.pid ?? 0)
            var process = Process(execID: "", io: hostIO)
            process.pid = pid
            container = Container(id: request.id, bundle: request.bundle, rootfs: rootfs, sandbox: box,
                                  processes: ["": process], cniAttachment: attachment,
                                  attachNetworkAtStart: networkPlan.attachAtStart, attached: attached,
                                  writebackPolicy: writebackPolicy)
            startBackground(box)
            let created = ContinuousClock.now
            timings = ["rootfs": (rootfsReady - started).shimSeconds, "network": (networkReady - rootfsReady).shimSeconds,
                       "boot": (booted - networkReady).shimSeconds,
                       "create": (created - booted).shimSeconds,
                       "layers_converted": Double(rootfs.layers.filter { !$0.cached }.count),
                       "layers_cached": Double(rootfs.layers.filter { $0.cached }.count)]
            logger.info("created \(request.id) in its VM", metadata: [
                "rootfs_s": "\(timings["rootfs"] ?? 0)", "boot_s": "\(timings["boot"] ?? 0)",
                "create_s": "\(timings["create"] ?? 0)", "layers": "\(rootfs.layers.count)",
                "layers_cached": "\(rootfs.layers.filter { $0.cached }.count)"])
            var event = Containerd_Events_TaskCreate()
            event.containerID = request.id
            event.bundle = request.bundle
            event.rootfs = request.rootfs
            var taskIO = Containerd_Events_TaskIO()
            taskIO.stdin = request.stdin
            taskIO.stdout = request.stdout
            taskIO.stderr = request.stderr
            taskIO.terminal = request.terminal
            event.io = taskIO
            event.pid = pid
            context.publisher.publish(event)
            logger.debug("guest pid of \(request.id): \(response.pid)")
            var answer = Containerd_Task_V2_CreateTaskResponse()
            answer.pid = pid
            return answer
        } catch {
            stdio?.resetAll()
            await io?.close()
            if let sandbox { await sandbox.kill() }
            if let attachment { await attachment.detach(logger: logger) }
            try? FileManager.default.removeItem(atPath: paths.stateDirectory)
            logger.error("create \(request.id) failed: \(error)")
            throw ShimError.wrap(error, "create \(request.id)")
        }
    }

    /// The config.json the guest gets: containerd's bytes unless the rootfs path,
    /// the terminal flag or the namespaces must change. The container never gets a
    /// network namespace of its own in the guest: it shares the VM's, which holds the
    /// interfaces of the namespace containerd gave it (``Sandbox/attachNetwork()``).
    /// `files` (container path, guest path) are bind-mounted read-only into the container.
    static func guestConfig(_ spec: RuntimeSpec, original: Data, terminal: Bool,
                            files: [(destination: String, source: String)] = []) throws -> Data {
        let networkNamespace = spec.linux?.namespaces?.contains { $0.type == .network } ?? false
        if spec.root?.path == "rootfs" && (spec.process?.terminal ?? false) == terminal && !networkNamespace
            && files.isEmpty {
            return original
        }
        do {
            return try JSONEncoder().encode(spec.with {
                if $0.root == nil { $0.root = RuntimeSpec.Root() }
                $0.root?.path = "rootfs"
                $0.process?.terminal = terminal
                $0.linux?.namespaces?.removeAll { $0.type == .network }
                $0.mounts = ($0.mounts ?? []) + files.map {
                    RuntimeSpec.Mount(destination: $0.destination, type: "bind", source: $0.source, options: ["rbind", "ro"])
                }
                if $0.mounts?.isEmpty == true { $0.mounts = nil }
            })
        } catch {
            throw ShimError(.invalidArgument, "cannot re-encode config.json: \(error)")
        }
    }

    /// The files a container gets from the networks the shim attached (`[network]`):
    /// `/etc/resolv.conf` from the first result naming DNS servers and `/etc/hosts` with
    /// its addresses under the spec's hostname — each unless the spec mounts its own.
    /// Written next to the guest bundle and bind-mounted read-only.
    static func networkFiles(_ attachment: CNIAttachment?, spec: RuntimeSpec, plan: RootfsPlan)
        -> [(destination: String, guestPath: String, content: String)]
    {
        guard let attachment else { return [] }
        var files: [(destination: String, guestPath: String, content: String)] = []
        if let resolv = attachment.resolvConf {
            files.append(("/etc/resolv.conf", plan.guestBundle + "/resolv.conf", resolv))
        }
        let hostname = spec.hostname.flatMap { $0.isEmpty ? nil : $0 }
        var hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        if let hostname {
            for address in attachment.addresses { hosts += "\(address)\t\(hostname)\n" }
        }
        files.append(("/etc/hosts", plan.guestBundle + "/hosts", hosts))
        return files.filter { file in !(spec.mounts?.contains { $0.destination == file.destination } ?? false) }
    }

    /// VM memory: the configured default, or the container's limit plus room for the guest.
    static func memoryMiB(_ spec: RuntimeSpec, _ configuration: QemuboxConfiguration) -> Int {
        guard let limit = spec.linux?.resources?.memory?.limit, limit > 0 else { return configuration.memoryMiB }
        let limitMiB = Int((limit + (1 << 20) - 1) >> 20)
        return max(configuration.memoryMiB, limitMiB + configuration.guestOverheadMiB)
    }

    /// vCPUs: the configured default, or the CPU quota rounded up (at most the host's CPUs).
    static func vcpus(_ spec: RuntimeSpec, _ configuration: QemuboxConfiguration) -> Int {
        guard let cpu = spec.linux?.resources?.cpu, let quota = cpu.quota, quota > 0,
              let period = cpu.period, period > 0 else { return configuration.vcpus }
        let wanted = Int((UInt64(quota) + period - 1) / period)
        return max(1, min(wanted, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// A QEMU-safe VM name for a task id.
    static func vmName(_ id: String) -> String {
        let cleaned = String(id.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "-" })
        return "qbx-" + String(cleaned.prefix(48))
    }

    func nextKey() -> String {
        nextStdioKey += 1
        return "p\(nextStdioKey)"
    }

    // MARK: lookups

    func requireContainer(_ id: String) throws -> Container {
        guard let container, !container.deleted, container.id == id else {
            throw ShimError(.notFound, "task \(id) not found")
        }
        return container
    }

    func requireProcess(_ id: String, _ execID: String) throws -> (Container, Process) {
        let container = try requireContainer(id)
        guard let process = container.processes[execID] else {
            throw ShimError(.notFound, "process \(execID) of task \(id) not found")
        }
        return (container, process)
    }

    /// Whether the VM still runs.
    func vmAlive(_ container: Container) async -> Bool {
        await container.sandbox.vm.exit == nil
    }
}
