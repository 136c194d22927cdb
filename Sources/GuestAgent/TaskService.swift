#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf
import TTRPCCodec

/// containerd's `containerd.task.v2.Task` for processes run by crun inside the
/// guest. Container ids name bundles under ``GuestAgentProtocol/bundleRoot``.
public final class TaskService: ContainerdTaskV2TaskService, Sendable {
    let runtime: Runtime
    let registry: StdioRegistry
    let events: EventQueue
    /// How long create/exec wait for a stdio stream that has not arrived.
    let streamTimeout: Duration

    private struct State {
        var containers: [String: Container] = [:]
        var reserved: Set<String> = []
    }
    private let state = NIOLockedValueBox(State())

    init(runtime: Runtime, registry: StdioRegistry, events: EventQueue, streamTimeout: Duration = .seconds(10)) {
        self.runtime = runtime
        self.registry = registry
        self.events = events
        self.streamTimeout = streamTimeout
    }

    /// Creates the service with the default crun paths.
    public convenience init(registry: StdioRegistry, events: EventQueue) {
        self.init(runtime: Runtime(), registry: registry, events: events)
    }

    func container(_ id: String) throws -> Container {
        guard let container = state.withLockedValue({ $0.containers[id] }) else {
            throw GuestAgentError(.notFound, "container \(id) not found")
        }
        return container
    }

    /// Ids of the containers that exist.
    var containerIDs: [String] { state.withLockedValue { Array($0.containers.keys) } }

    static func validateID(_ id: String) throws {
        guard !id.isEmpty, id.utf8.count <= 128, id != ".", id != "..",
              id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") }) else {
            throw GuestAgentError(.invalidArgument, "invalid id \(id.debugDescription)")
        }
    }

    public func create(_ request: Containerd_Task_V2_CreateTaskRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_CreateTaskResponse {
        try Self.validateID(request.id)
        guard request.rootfs.isEmpty else {
            throw GuestAgentError(.invalidArgument, "rootfs mounts are not taken by Create: mount them with System/Mount first")
        }
        guard request.checkpoint.isEmpty else {
            throw GuestAgentError(.unimplemented, "checkpoint/restore is not supported")
        }
        let bundle = request.bundle.isEmpty ? "\(GuestAgentProtocol.bundleRoot)/\(request.id)" : request.bundle
        try state.withLockedValue { state in
            guard state.containers[request.id] == nil, !state.reserved.contains(request.id) else {
                throw GuestAgentError(.alreadyExists, "container \(request.id) already exists")
            }
            state.reserved.insert(request.id)
        }
        defer { _ = state.withLockedValue { $0.reserved.remove(request.id) } }
        guard access("\(bundle)/config.json", R_OK) == 0 else {
            throw GuestAgentError(.failedPrecondition, "\(bundle)/config.json is missing (write it with System/WriteFile)")
        }
        let io = try await ProcessIO.prepare(terminal: request.terminal, stdin: request.stdin, stdout: request.stdout,
                                             stderr: request.stderr, registry: registry, timeout: streamTimeout)
        let process = ManagedProcess(containerID: request.id, execID: "", io: io)
        let since = Reaper.shared.mark()
        let launched: (pid: Int32, master: CInt?)
        do {
            launched = try await runtime.launch(["create", "--bundle", bundle, request.id], key: request.id, io: io,
                                                what: "create \(request.id)")
        } catch {
            io.abort()
            throw error
        }
        io.start(master: launched.master)
        process.monitor(pid: launched.pid, since: since, events: events)
        let container = Container(id: request.id, bundle: bundle, initProcess: process)
        container.cgroup = CgroupStats.cgroupDirectory(ofPid: launched.pid)
        state.withLockedValue { $0.containers[request.id] = container }
        OOMWatcher.start(container: container, events: events)
        var response = Containerd_Task_V2_CreateTaskResponse()
        response.pid = UInt32(launched.pid)
        return response
    }

    public func start(_ request: Containerd_Task_V2_StartRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_StartResponse {
        let container = try container(request.id)
        let process = try container.process(request.execID)
        guard process.status == .created else {
            throw GuestAgentError(.failedPrecondition, "process \(describe(request.id, request.execID)) is not in the created state")
        }
        if request.execID.isEmpty {
            try await runtime.run(["start", request.id], what: "start \(request.id)")
            process.setRunning()
        } else {
            try await startExec(container: container, process: process)
        }
        var response = Containerd_Task_V2_StartResponse()
        response.pid = UInt32(process.pid)
        return response
    }

    public func state(_ request: Containerd_Task_V2_StateRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_StateResponse {
        let container = try container(request.id)
        let process = try container.process(request.execID)
        var response = process.stateResponse(bundle: container.bundle, paused: container.paused)
        response.stdin = ""
        return response
    }

    public func wait(_ request: Containerd_Task_V2_WaitRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_WaitResponse {
        let process = try container(request.id).process(request.execID)
        let exit = await process.waitExit()
        var response = Containerd_Task_V2_WaitResponse()
        response.exitStatus = exit.status
        response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        return response
    }

    public func kill(_ request: Containerd_Task_V2_KillRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let container = try container(request.id)
        let process = try container.process(request.execID)
        guard request.signal > 0, request.signal < 65 else {
            throw GuestAgentError(.invalidArgument, "invalid signal \(request.signal)")
        }
        if request.execID.isEmpty {
            if process.status == .stopped && !request.all {
                throw GuestAgentError(.notFound, "process \(request.id) already finished")
            }
            var arguments = ["kill"]
            if request.all { arguments.append("--all") }
            arguments += [request.id, String(request.signal)]
            do {
                try await runtime.run(arguments, what: "kill \(request.id)")
            } catch {
                if process.status == .stopped || request.all { return Google_Protobuf_Empty() }
                throw error
            }
        } else {
            switch process.status {
            case .created:
                throw GuestAgentError(.failedPrecondition, "process \(describe(request.id, request.execID)) is not started")
            case .stopped:
                throw GuestAgentError(.notFound, "process \(describe(request.id, request.execID)) already finished")
            case .running:
                if Glibc.kill(process.pid, Int32(request.signal)) != 0 {
                    if errno == ESRCH {
                        throw GuestAgentError(.notFound, "process \(describe(request.id, request.execID)) already finished")
                    }
                    throw GuestAgentError.system("kill \(process.pid)")
                }
            }
        }
        return Google_Protobuf_Empty()
    }

    public func delete(_ request: Containerd_Task_V2_DeleteRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_DeleteResponse {
        let container = try container(request.id)
        let process = try container.process(request.execID)
        if process.status == .running {
            throw GuestAgentError(.failedPrecondition, "process \(describe(request.id, request.execID)) is running: kill it first")
        }
        if request.execID.isEmpty {
            for exec in container.execs where exec.status == .running {
                _ = Glibc.kill(exec.pid, SIGKILL)
            }
            // A created container's init never ran: crun delete -f kills it.
            try await runtime.run(["delete", "--force", request.id], what: "delete \(request.id)")
            container.isDeleted = true
            if process.status == .created {
                _ = await process.waitExit()
            }
            for exec in container.execs { exec.io.abort() }
            process.io.abort()
            state.withLockedValue { _ = $0.containers.removeValue(forKey: request.id) }
        } else {
            process.io.abort()
            container.removeExec(request.execID)
        }
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = UInt32(max(0, process.pid))
        if let exit = process.exit {
            response.exitStatus = exit.status
            response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        }
        return response
    }

    public func pids(_ request: Containerd_Task_V2_PidsRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_PidsResponse {
        let container = try container(request.id)
        var response = Containerd_Task_V2_PidsResponse()
        guard let cgroup = container.cgroup else { return response }
        for pid in CgroupStats.pids(cgroupDirectory: cgroup) {
            var info = Containerd_V1_Types_ProcessInfo()
            info.pid = UInt32(pid)
            response.processes.append(info)
        }
        return response
    }

    public func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let process = try container(request.id).process(request.execID)
        if request.stdin { process.io.closeStdin() }
        return Google_Protobuf_Empty()
    }

    public func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let process = try container(request.id).process(request.execID)
        try process.io.resize(width: request.width, height: request.height)
        return Google_Protobuf_Empty()
    }

    public func connect(_ request: Containerd_Task_V2_ConnectRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_ConnectResponse {
        let container = try container(request.id)
        var response = Containerd_Task_V2_ConnectResponse()
        response.taskPid = UInt32(max(0, container.initProcess.pid))
        response.shimPid = UInt32(getpid())
        response.version = GuestAgentProtocol.version
        return response
    }

    public func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        // The VM's lifetime is the host's business (System/Shutdown).
        Google_Protobuf_Empty()
    }

    func describe(_ id: String, _ execID: String) -> String {
        execID.isEmpty ? id : "\(id)/\(execID)"
    }
}
