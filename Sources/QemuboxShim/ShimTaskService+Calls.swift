#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import QemuboxAPI
import QemuboxKit
import SwiftProtobuf
import TTRPCCodec

extension ShimTaskService {
    // MARK: Start, Wait, Kill

    public func start(_ request: Containerd_Task_V2_StartRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_StartResponse
    {
        let (container, process) = try requireProcess(request.id, request.execID)
        guard process.status == .created, !process.started else {
            throw ShimError(.failedPrecondition, "process \(request.execID.isEmpty ? request.id : request.execID) was started already")
        }
        let response: Containerd_Task_V2_StartResponse
        let started = ContinuousClock.now
        do {
            if request.execID.isEmpty && container.attachNetworkAtStart {
                // containerd's CNI ran on /proc/<QEMU pid>/ns/net between Create and Start.
                let attached = try await container.sandbox.attachNetwork()
                self.container?.attachNetworkAtStart = false
                self.container?.attached = attached
                logger.info("network attached at start", metadata: [
                    "interfaces": "\(attached.map { "\($0.name) \($0.addresses)" })"])
            }
            response = try await container.sandbox.agent.task.start(request)
        } catch {
            throw ShimError.wrap(error, "start \(request.id)")
        }
        logger.info("started \(request.execID.isEmpty ? request.id : request.execID)",
                    metadata: ["start_s": "\((ContinuousClock.now - started).shimSeconds)"])
        // Every process is reported with QEMU's pid (see create); the guest's is only logged.
        let pid = UInt32(await container.sandbox.vm.pid ?? Int32(process.pid))
        update(request.execID) {
            $0.started = true
            if $0.status == .created { $0.status = .running }
            $0.pid = pid
        }
        logger.debug("guest pid of \(request.execID.isEmpty ? request.id : request.execID): \(response.pid)")
        if request.execID.isEmpty {
            var event = Containerd_Events_TaskStart()
            event.containerID = request.id
            event.pid = pid
            self.context.publisher.publish(event)
        } else {
            var event = Containerd_Events_TaskExecStarted()
            event.containerID = request.id
            event.execID = request.execID
            event.pid = pid
            self.context.publisher.publish(event)
        }
        var answer = Containerd_Task_V2_StartResponse()
        answer.pid = pid
        return answer
    }

    public func wait(_ request: Containerd_Task_V2_WaitRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_WaitResponse
    {
        let (_, process) = try requireProcess(request.id, request.execID)
        let exit: Exit
        if let known = process.exit {
            exit = known
        } else {
            exit = await withCheckedContinuation { continuation in
                update(request.execID) { $0.waiters.append(continuation) }
            }
        }
        var response = Containerd_Task_V2_WaitResponse()
        response.exitStatus = exit.status
        response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        return response
    }

    public func kill(_ request: Containerd_Task_V2_KillRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let (container, process) = try requireProcess(request.id, request.execID)
        if process.exit != nil && !request.all {
            throw ShimError(.notFound, "process \(request.execID.isEmpty ? request.id : request.execID) already finished")
        }
        guard await vmAlive(container) else {
            throw ShimError(.notFound, "task \(request.id): the VM is gone")
        }
        do {
            return try await container.sandbox.agent.task.kill(request)
        } catch {
            throw ShimError.wrap(error, "kill \(request.id)")
        }
    }

    // MARK: Exec, IO

    public func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let container = try requireContainer(request.id)
        guard !request.execID.isEmpty else { throw ShimError(.invalidArgument, "exec needs an exec id") }
        guard container.processes[request.execID] == nil else {
            throw ShimError(.alreadyExists, "exec \(request.execID) exists in task \(request.id)")
        }
        guard container.processes[""]?.exit == nil else {
            throw ShimError(.failedPrecondition, "task \(request.id) has exited: cannot exec")
        }
        let io = try HostIO.open(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
                                 terminal: request.terminal, containerID: request.id, namespace: context.namespace,
                                 logger: logger)
        var stdio: ProcessStdio?
        do {
            let streams = try await ProcessStdio.open(on: container.sandbox.agent, name: nextKey(), stdin: io.wantsStdin,
                                                      stdout: io.wantsStdout, stderr: io.wantsStderr,
                                                      terminal: request.terminal)
            stdio = streams
            var forwarded = request
            forwarded.stdin = streams.keys.stdin
            forwarded.stdout = streams.keys.stdout
            forwarded.stderr = streams.keys.stderr
            _ = try await container.sandbox.agent.task.exec(forwarded)
            io.attach(streams)
        } catch {
            stdio?.resetAll()
            await io.close()
            throw ShimError.wrap(error, "exec \(request.execID) in \(request.id)")
        }
        self.container?.processes[request.execID] = Process(execID: request.execID, io: io)
        var event = Containerd_Events_TaskExecAdded()
        event.containerID = request.id
        event.execID = request.execID
        context.publisher.publish(event)
        return Google_Protobuf_Empty()
    }

    public func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let (_, process) = try requireProcess(request.id, request.execID)
        if request.stdin { process.io.closeStdin() }
        return Google_Protobuf_Empty()
    }

    public func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let (container, _) = try requireProcess(request.id, request.execID)
        do {
            return try await container.sandbox.agent.task.resizePty(request)
        } catch {
            throw ShimError.wrap(error, "resize \(request.id)")
        }
    }

    // MARK: State, Pids, Stats

    public func state(_ request: Containerd_Task_V2_StateRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_StateResponse
    {
        let (container, process) = try requireProcess(request.id, request.execID)
        var response = Containerd_Task_V2_StateResponse()
        response.id = request.id
        response.execID = request.execID
        response.bundle = container.bundle
        response.pid = process.pid
        response.stdin = process.io.stdin
        response.stdout = process.io.stdout
        response.stderr = process.io.stderr
        response.terminal = process.io.terminal
        switch process.status {
        case .created: response.status = .created
        case .running: response.status = .running
        case .paused: response.status = .paused
        case .stopped: response.status = .stopped
        }
        if let exit = process.exit {
            response.status = .stopped
            response.exitStatus = exit.status
            response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        }
        return response
    }

    public func pids(_ request: Containerd_Task_V2_PidsRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_PidsResponse
    {
        let container = try requireContainer(request.id)
        guard await vmAlive(container) else { return Containerd_Task_V2_PidsResponse() }
        do {
            return try await container.sandbox.agent.task.pids(request)
        } catch {
            throw ShimError.wrap(error, "pids \(request.id)")
        }
    }

    public func stats(_ request: Containerd_Task_V2_StatsRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_StatsResponse
    {
        let container = try requireContainer(request.id)
        guard await vmAlive(container) else { throw ShimError(.notFound, "task \(request.id): the VM is gone") }
        var response: Containerd_Task_V2_StatsResponse
        do {
            response = try await container.sandbox.agent.task.stats(request)
        } catch {
            throw ShimError.wrap(error, "stats \(request.id)")
        }
        // containerd's typeurl registry knows the bare message name.
        if response.hasStats, let slash = response.stats.typeURL.lastIndex(of: "/") {
            response.stats.typeURL = String(response.stats.typeURL[response.stats.typeURL.index(after: slash)...])
        }
        return response
    }

    // MARK: Pause, Resume, Update

    public func pause(_ request: Containerd_Task_V2_PauseRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let container = try requireContainer(request.id)
        do {
            _ = try await container.sandbox.agent.task.pause(request)
        } catch {
            throw ShimError.wrap(error, "pause \(request.id)")
        }
        update("") { if $0.exit == nil { $0.status = .paused } }
        var event = Containerd_Events_TaskPaused()
        event.containerID = request.id
        context.publisher.publish(event)
        return Google_Protobuf_Empty()
    }

    public func resume(_ request: Containerd_Task_V2_ResumeRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let container = try requireContainer(request.id)
        do {
            _ = try await container.sandbox.agent.task.resume(request)
        } catch {
            throw ShimError.wrap(error, "resume \(request.id)")
        }
        update("") { if $0.exit == nil { $0.status = .running } }
        var event = Containerd_Events_TaskResumed()
        event.containerID = request.id
        context.publisher.publish(event)
        return Google_Protobuf_Empty()
    }

    public func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        let container = try requireContainer(request.id)
        do {
            return try await container.sandbox.agent.task.update(request)
        } catch {
            throw ShimError.wrap(error, "update \(request.id)")
        }
    }

    public func checkpoint(_ request: Containerd_Task_V2_CheckpointTaskRequest, context _: TTRPCRequestContext)
        async throws -> Google_Protobuf_Empty
    {
        throw ShimError(.unimplemented, "checkpoint is not supported by the qemubox runtime (task \(request.id))")
    }

    // MARK: Connect, Shutdown

    public func connect(_ request: Containerd_Task_V2_ConnectRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_ConnectResponse
    {
        var response = Containerd_Task_V2_ConnectResponse()
        response.shimPid = UInt32(getpid())
        response.taskPid = container?.processes[""]?.pid ?? 0
        response.version = QemuboxShim.version
        return response
    }

    public func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context _: TTRPCRequestContext) async throws
        -> Google_Protobuf_Empty
    {
        if let container, !container.deleted, !request.now {
            // A live task keeps the shim (containerd deletes it first).
            return Google_Protobuf_Empty()
        }
        if let container, !container.deleted {
            await container.sandbox.kill()
        }
        shuttingDown = true
        context.onShutdown()
        return Google_Protobuf_Empty()
    }

    // MARK: helpers

    func update(_ execID: String, _ change: (inout Process) -> Void) {
        guard var process = container?.processes[execID] else { return }
        change(&process)
        container?.processes[execID] = process
    }
}
