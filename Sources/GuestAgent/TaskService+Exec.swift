#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import OCISpec
import QemuboxAPI
import SwiftProtobuf
import TTRPCCodec

extension TaskService {
    public func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try Self.validateID(request.execID)
        let container = try container(request.id)
        guard container.initProcess.status == .running else {
            throw GuestAgentError(.failedPrecondition, "container \(request.id) is not running")
        }
        guard request.hasSpec, !request.spec.value.isEmpty else {
            throw GuestAgentError(.invalidArgument, "exec \(request.execID): no process spec")
        }
        guard case .object = try? JSONDecoder().decode(JSONValue.self, from: request.spec.value) else {
            throw GuestAgentError(.invalidArgument, "exec \(request.execID): the process spec is not a JSON object")
        }
        // Reserve the id first, so a duplicate fails before streams are claimed.
        let placeholder = ManagedProcess(containerID: request.id, execID: request.execID,
                                         io: try await ProcessIO.prepare(terminal: false, stdin: "", stdout: "", stderr: "",
                                                                         registry: registry))
        try container.addExec(placeholder)
        let io: ProcessIO
        do {
            io = try await ProcessIO.prepare(terminal: request.terminal, stdin: request.stdin, stdout: request.stdout,
                                             stderr: request.stderr, registry: registry, timeout: streamTimeout)
        } catch {
            container.removeExec(request.execID)
            throw error
        }
        container.removeExec(request.execID)
        let process = ManagedProcess(containerID: request.id, execID: request.execID, io: io, spec: request.spec.value)
        do {
            try container.addExec(process)
        } catch {
            io.abort()
            throw error
        }
        return Google_Protobuf_Empty()
    }

    /// `crun exec -d` for an exec registered by ``exec(_:context:)``.
    func startExec(container: Container, process: ManagedProcess) async throws {
        let key = "\(container.id).exec.\(process.execID)"
        let specFile = "\(runtime.stateDirectory)/\(key).json"
        try ensureDirectory(runtime.stateDirectory)
        guard FileManager.default.createFile(atPath: specFile, contents: process.spec ?? Data()) else {
            throw GuestAgentError(.internal, "cannot write \(specFile)")
        }
        defer { unlink(specFile) }
        let since = Reaper.shared.mark()
        let launched: (pid: Int32, master: CInt?)
        do {
            launched = try await runtime.launch(["exec", "--process", specFile, "-d", container.id], key: key,
                                                io: process.io, what: "exec \(container.id)/\(process.execID)")
        } catch {
            process.io.abort()
            process.setExited(status: 255)
            throw error
        }
        process.io.start(master: launched.master)
        process.setRunning()
        process.monitor(pid: launched.pid, since: since, events: events)
        var event = Containerd_Events_TaskExecStarted()
        event.containerID = container.id
        event.execID = process.execID
        event.pid = UInt32(launched.pid)
        events.publish(event)
    }

    public func pause(_ request: Containerd_Task_V2_PauseRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let container = try container(request.id)
        try await runtime.run(["pause", request.id], what: "pause \(request.id)")
        container.paused = true
        return Google_Protobuf_Empty()
    }

    public func resume(_ request: Containerd_Task_V2_ResumeRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let container = try container(request.id)
        try await runtime.run(["resume", request.id], what: "resume \(request.id)")
        container.paused = false
        return Google_Protobuf_Empty()
    }

    public func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let container = try container(request.id)
        guard request.hasResources, !request.resources.value.isEmpty else {
            throw GuestAgentError(.invalidArgument, "update \(request.id): no resources")
        }
        let file = "\(runtime.stateDirectory)/\(container.id).resources.json"
        try ensureDirectory(runtime.stateDirectory)
        guard FileManager.default.createFile(atPath: file, contents: request.resources.value) else {
            throw GuestAgentError(.internal, "cannot write \(file)")
        }
        defer { unlink(file) }
        try await runtime.run(["update", "--resources", file, request.id], what: "update \(request.id)")
        return Google_Protobuf_Empty()
    }

    public func stats(_ request: Containerd_Task_V2_StatsRequest, context: TTRPCRequestContext) async throws -> Containerd_Task_V2_StatsResponse {
        let container = try container(request.id)
        guard let cgroup = container.cgroup else {
            throw GuestAgentError(.notFound, "container \(request.id) has no cgroup")
        }
        let metrics = CgroupStats.read(cgroupDirectory: cgroup)
        var any = Google_Protobuf_Any()
        any.typeURL = Io_Containerd_Cgroups_V2_Metrics.protoMessageName
        any.value = try metrics.serializedData()
        var response = Containerd_Task_V2_StatsResponse()
        response.stats = any
        return response
    }
}
