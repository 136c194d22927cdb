#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
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
    /// The shim's environment (what spare VMs it starts get).
    public var environment: [String: String]
    /// A spare VM this shim was started with, for its first container.
    public var spare: Sandbox?
    /// The directory of the spare this shim's process was (``ShimRecord/spareDirectory``).
    public var spareDirectory: String?

    /// Creates a context.
    public init(namespace: String, id: String, configuration: QemuboxConfiguration, paths: ShimPaths,
                publisher: EventPublisher, logger: Logger, environment: [String: String] = [:], spare: Sandbox? = nil,
                spareDirectory: String? = nil, onShutdown: @escaping @Sendable () -> Void) {
        self.namespace = namespace
        self.id = id
        self.configuration = configuration
        self.paths = paths
        self.publisher = publisher
        self.logger = logger
        self.environment = environment
        self.spare = spare
        self.spareDirectory = spareDirectory
        self.onShutdown = onShutdown
    }
}

/// containerd's `containerd.task.v2.Task`, served to containerd: a ttrpc adapter over
/// one ``Pod`` (a VM and its containers). It adds only what is containerd's: the
/// stdio FIFOs and `binary://` loggers (``HostIO``), events forwarded to containerd,
/// the crash record (``ShimRecord``) and the shim's own lifetime.
public actor ShimTaskService: ContainerdTaskV2TaskService {
    let context: ShimContext
    var logger: Logger { context.logger }
    /// The pod, from the first create on.
    var pod: Pod?
    var shuttingDown = false
    /// The spare VM from the context until the first create takes it.
    var spare: Sandbox?

    /// Creates the service.
    public init(context: ShimContext) {
        self.context = context
        self.spare = context.spare
    }

    /// Where the last create's time went (rootfs, network, boot, create), for logs and benchmarks.
    public var timings: [String: Double] {
        get async { await pod?.timings ?? [:] }
    }

    /// The pod's figures of the moment for a metrics scrape (nil before the first create).
    public func metrics() async -> PodMetrics? {
        await pod?.metrics()
    }

    func requirePod(_ id: String) throws -> Pod {
        guard let pod else { throw QemuboxError(.notFound, "task \(id) not found") }
        return pod
    }

    // MARK: Create, Start, Wait, Kill, Delete

    public func create(_ request: Containerd_Task_V2_CreateTaskRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_CreateTaskResponse
    {
        guard !shuttingDown else {
            throw QemuboxError(.failedPrecondition, "the shim of \(context.id) is shutting down")
        }
        if let pod {
            // A CRI pod's later container (`start` grouped it here by its sandbox id).
            var response = Containerd_Task_V2_CreateTaskResponse()
            response.pid = try await pod.create(request, io: try hostIO(request))
            return response
        }
        let paths = context.paths
        let record = ShimRecord(namespace: context.namespace, id: request.id, bundle: request.bundle,
                                shimPid: getpid(), socket: paths.socket, spareDirectory: context.spareDirectory)
        try record.write(to: paths)
        var configuration: PodConfiguration
        do {
            configuration = try PodConfiguration(id: request.id, namespace: context.namespace,
                                                 stateDirectory: paths.stateDirectory, host: context.configuration)
        } catch {
            throw QemuboxError(.failedPrecondition, "create \(request.id): \(error)")
        }
        configuration.logger = logger
        // Every container is a shim process of its own: one holder per template shares its RAM among them.
        if let executable = QemuboxShim.executablePath {
            configuration.templates?.memorySharing = .holder(executable: executable,
                                                             arguments: [QemuboxShim.templateMemoryHolderAction])
        }
        configuration.journal = ShimRecord.journal(paths)
        let publisher = context.publisher
        configuration.onEvent = { publisher.publish($0) }
        let pod = Pod(configuration)
        self.pod = pod
        if let spare {
            self.spare = nil
            await pod.adopt(spare: spare)
        }
        do {
            var response = Containerd_Task_V2_CreateTaskResponse()
            response.pid = try await pod.create(request, io: try hostIO(request))
            if context.configuration.warmSpares > 0 {
                // The next container's VM, started while this one runs.
                let (configuration, environment, logger) = (context.configuration, context.environment, logger)
                Task.detached { await ShimSpare.refill(configuration: configuration, environment: environment, logger: logger) }
            }
            return response
        } catch {
            self.pod = nil
            await pod.terminate()  // a spare the create did not get to
            try? FileManager.default.removeItem(atPath: paths.stateDirectory)
            throw error
        }
    }

    /// containerd's stdio for a task's init process.
    func hostIO(_ request: Containerd_Task_V2_CreateTaskRequest) throws -> HostIO {
        try HostIO.open(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal,
                        containerID: request.id, namespace: context.namespace, logger: logger)
    }

    public func start(_ request: Containerd_Task_V2_StartRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_StartResponse
    {
        var response = Containerd_Task_V2_StartResponse()
        response.pid = try await requirePod(request.id).start(containerID: request.id, execID: request.execID)
        return response
    }

    public func wait(_ request: Containerd_Task_V2_WaitRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_WaitResponse
    {
        let exit = try await requirePod(request.id).wait(containerID: request.id, execID: request.execID)
        var response = Containerd_Task_V2_WaitResponse()
        response.exitStatus = exit.status
        response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        return response
    }

    public func kill(_ request: Containerd_Task_V2_KillRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        try await requirePod(request.id).kill(request)
        return Google_Protobuf_Empty()
    }

    public func delete(_ request: Containerd_Task_V2_DeleteRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_DeleteResponse
    {
        let pod = try requirePod(request.id)
        let deleted = try await pod.delete(containerID: request.id, execID: request.execID)
        if request.execID.isEmpty, !(await pod.hasLiveContainers) {
            removeState()
        }
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = deleted.pid
        response.exitStatus = deleted.exit.status
        response.exitedAt = Google_Protobuf_Timestamp(date: deleted.exit.at)
        return response
    }

    // MARK: Exec, IO

    public func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let pod = try requirePod(request.id)
        let io = try HostIO.open(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
                                 terminal: request.terminal, containerID: request.id, namespace: context.namespace,
                                 logger: logger)
        try await pod.exec(request, io: io)
        return Google_Protobuf_Empty()
    }

    public func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        if request.stdin { try await requirePod(request.id).closeStdin(containerID: request.id, execID: request.execID) }
        return Google_Protobuf_Empty()
    }

    public func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        try await requirePod(request.id).resizePty(request)
        return Google_Protobuf_Empty()
    }

    // MARK: State, Pids, Stats, Pause, Resume, Update

    public func state(_ request: Containerd_Task_V2_StateRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_StateResponse
    {
        try await requirePod(request.id).state(request)
    }

    public func pids(_ request: Containerd_Task_V2_PidsRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_PidsResponse
    {
        try await requirePod(request.id).pids(request)
    }

    public func stats(_ request: Containerd_Task_V2_StatsRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_StatsResponse
    {
        try await requirePod(request.id).stats(request)
    }

    public func pause(_ request: Containerd_Task_V2_PauseRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        try await requirePod(request.id).pause(containerID: request.id)
        return Google_Protobuf_Empty()
    }

    public func resume(_ request: Containerd_Task_V2_ResumeRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        try await requirePod(request.id).resume(containerID: request.id)
        return Google_Protobuf_Empty()
    }

    public func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        try await requirePod(request.id).update(request)
        return Google_Protobuf_Empty()
    }

    public func checkpoint(_ request: Containerd_Task_V2_CheckpointTaskRequest, context _: TTRPCRequestContext)
        async throws -> Google_Protobuf_Empty
    {
        throw QemuboxError(.unimplemented, "checkpoint is not supported by the qemubox runtime (task \(request.id))")
    }

    // MARK: Connect, Shutdown

    public func connect(_ request: Containerd_Task_V2_ConnectRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_ConnectResponse
    {
        var response = Containerd_Task_V2_ConnectResponse()
        response.shimPid = UInt32(getpid())
        response.taskPid = await pod?.initPid(request.id) ?? 0
        response.version = QemuboxShim.version
        return response
    }

    public func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        if let pod, await pod.hasLiveContainers {
            // A live task keeps the shim (containerd deletes it first) unless told `now`.
            guard request.now else { return Google_Protobuf_Empty() }
            await pod.terminate()
        }
        shuttingDown = true
        context.onShutdown()
        return Google_Protobuf_Empty()
    }

    /// Ends the task hard if it still runs (the daemon is exiting): the pod writes back
    /// what it can and kills the VM; the state directory goes.
    func terminate() async {
        if let spare {
            self.spare = nil
            await spare.discard()
        }
        await pod?.terminate()
        removeState()
    }

    /// Removes the state directory (disks, record); the socket goes with the server.
    func removeState() {
        try? FileManager.default.removeItem(atPath: context.paths.stateDirectory)
    }
}
