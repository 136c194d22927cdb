import Foundation
import QemuboxAPI
import SwiftProtobuf

extension Pod {
    // MARK: Start, Wait, Kill

    /// Starts a container's init process (`execID` empty) or an exec'd process; returns
    /// the pid containerd sees. The first start of a pod whose namespace was filled after
    /// create (containerd's CNI) attaches its interfaces to the VM first.
    @discardableResult
    public func start(containerID: String, execID: String = "") async throws -> UInt32 {
        let (_, process) = try requireProcess(containerID, execID)
        guard process.status == .created, !process.started else {
            throw QemuboxError(.failedPrecondition,
                               "process \(execID.isEmpty ? containerID : execID) was started already")
        }
        let sandbox = try requireSandbox()
        let started = ContinuousClock.now
        let response: Containerd_Task_V2_StartResponse
        do {
            if execID.isEmpty && attachNetworkAtStart {
                // containerd's CNI ran on /proc/<QEMU pid>/ns/net between Create and Start.
                let interfaces = try await sandbox.attachNetwork()
                attachNetworkAtStart = false
                attached = interfaces
                logger.info("network attached at start", metadata: [
                    "interfaces": "\(interfaces.map { "\($0.name) \($0.addresses)" })"])
            }
            var request = Containerd_Task_V2_StartRequest()
            request.id = containerID
            request.execID = execID
            response = try await sandbox.agent.task.start(request)
        } catch {
            throw Self.wrap(error, "start \(containerID)")
        }
        logger.info("started \(execID.isEmpty ? containerID : execID)",
                    metadata: ["start_s": "\((ContinuousClock.now - started).podSeconds)", "guest_pid": "\(response.pid)"])
        let pid = UInt32(await sandbox.vm.pid ?? Int32(process.pid))
        update(containerID, execID) {
            $0.started = true
            if $0.status == .created { $0.status = .running }
            $0.pid = pid
        }
        if execID.isEmpty {
            var event = Containerd_Events_TaskStart()
            event.containerID = containerID
            event.pid = pid
            configuration.onEvent(event)
        } else {
            var event = Containerd_Events_TaskExecStarted()
            event.containerID = containerID
            event.execID = execID
            event.pid = pid
            configuration.onEvent(event)
        }
        return pid
    }

    /// Waits for a process to exit. A VM that dies first ends every process with 137.
    public func wait(containerID: String, execID: String = "") async throws -> Exit {
        let (_, process) = try requireProcess(containerID, execID)
        if let known = process.exit { return known }
        return await withCheckedContinuation { continuation in
            update(containerID, execID) { $0.waiters.append(continuation) }
        }
    }

    /// Signals a process (`all`: every process of the container).
    public func kill(_ request: Containerd_Task_V2_KillRequest) async throws {
        let (_, process) = try requireProcess(request.id, request.execID)
        if process.exit != nil && !request.all {
            throw QemuboxError(.notFound,
                               "process \(request.execID.isEmpty ? request.id : request.execID) already finished")
        }
        guard let sandbox, await vmAlive() else {
            throw QemuboxError(.notFound, "task \(request.id): the VM is gone")
        }
        do {
            _ = try await sandbox.agent.task.kill(request)
        } catch {
            throw Self.wrap(error, "kill \(request.id)")
        }
    }

    // MARK: Exec, IO

    /// Adds a process to a running container (started by ``start(containerID:execID:)``).
    public func exec(_ request: Containerd_Task_V2_ExecProcessRequest, io: any ProcessIO) async throws {
        let container = try requireContainer(request.id)
        guard !request.execID.isEmpty else { throw QemuboxError(.invalidArgument, "exec needs an exec id") }
        guard container.processes[request.execID] == nil else {
            throw QemuboxError(.alreadyExists, "exec \(request.execID) exists in task \(request.id)")
        }
        guard container.processes[""]?.exit == nil else {
            throw QemuboxError(.failedPrecondition, "task \(request.id) has exited: cannot exec")
        }
        let sandbox = try requireSandbox()
        var stdio: ProcessStdio?
        do {
            let streams = try await ProcessStdio.open(on: sandbox.agent, name: nextKey(), stdin: io.wantsStdin,
                                                      stdout: io.wantsStdout, stderr: io.wantsStderr,
                                                      terminal: request.terminal)
            stdio = streams
            var forwarded = request
            forwarded.stdin = streams.keys.stdin
            forwarded.stdout = streams.keys.stdout
            forwarded.stderr = streams.keys.stderr
            _ = try await sandbox.agent.task.exec(forwarded)
            io.attach(streams)
        } catch {
            stdio?.resetAll()
            await io.close()
            throw Self.wrap(error, "exec \(request.execID) in \(request.id)")
        }
        let paths = ProcessIOPaths(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
                                   terminal: request.terminal)
        containers[request.id]?.processes[request.execID] = Process(execID: request.execID, io: io, paths: paths)
        var event = Containerd_Events_TaskExecAdded()
        event.containerID = request.id
        event.execID = request.execID
        configuration.onEvent(event)
    }

    /// Ends a process's stdin (containerd's `CloseIO`).
    public func closeStdin(containerID: String, execID: String = "") throws {
        let (_, process) = try requireProcess(containerID, execID)
        process.io.closeStdin()
    }

    /// Resizes a process's terminal.
    public func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest) async throws {
        _ = try requireProcess(request.id, request.execID)
        do {
            _ = try await requireSandbox().agent.task.resizePty(request)
        } catch {
            throw Self.wrap(error, "resize \(request.id)")
        }
    }

    // MARK: State, Pids, Stats

    /// A process's state as containerd's `State` reports it.
    public func state(_ request: Containerd_Task_V2_StateRequest) throws -> Containerd_Task_V2_StateResponse {
        let (container, process) = try requireProcess(request.id, request.execID)
        var response = Containerd_Task_V2_StateResponse()
        response.id = request.id
        response.execID = request.execID
        response.bundle = container.bundle
        response.pid = process.pid
        response.stdin = process.paths.stdin
        response.stdout = process.paths.stdout
        response.stderr = process.paths.stderr
        response.terminal = process.paths.terminal
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

    /// The container's processes as the guest sees them (empty once the VM is gone).
    public func pids(_ request: Containerd_Task_V2_PidsRequest) async throws -> Containerd_Task_V2_PidsResponse {
        _ = try requireContainer(request.id)
        guard let sandbox, await vmAlive() else { return Containerd_Task_V2_PidsResponse() }
        do {
            return try await sandbox.agent.task.pids(request)
        } catch {
            throw Self.wrap(error, "pids \(request.id)")
        }
    }

    /// The container's cgroup statistics (containerd's `io.containerd.cgroups.v2.Metrics`,
    /// from the guest), followed by the VM's (`vmStats`) as field 100 of the same bytes.
    public func stats(_ request: Containerd_Task_V2_StatsRequest) async throws -> Containerd_Task_V2_StatsResponse {
        _ = try requireContainer(request.id)
        guard let sandbox, await vmAlive() else { throw QemuboxError(.notFound, "task \(request.id): the VM is gone") }
        var response: Containerd_Task_V2_StatsResponse
        do {
            response = try await sandbox.agent.task.stats(request)
        } catch {
            throw Self.wrap(error, "stats \(request.id)")
        }
        // containerd's typeurl registry knows the bare message name.
        if response.hasStats, let slash = response.stats.typeURL.lastIndex(of: "/") {
            response.stats.typeURL = String(response.stats.typeURL[response.stats.typeURL.index(after: slash)...])
        }
        // The VM's own figures ride along as a field containerd's decoders skip (Qemubox_Shim_V1_StatsExtension).
        if response.hasStats, let vm = await vmStats(sandbox) {
            var extensionMessage = Qemubox_Shim_V1_StatsExtension()
            extensionMessage.vm = vm
            if let bytes = try? extensionMessage.serializedData() { response.stats.value.append(bytes) }
        }
        return response
    }

    // MARK: Pause, Resume

    /// Freezes the container's processes.
    public func pause(containerID: String) async throws {
        _ = try requireContainer(containerID)
        var request = Containerd_Task_V2_PauseRequest()
        request.id = containerID
        do {
            _ = try await requireSandbox().agent.task.pause(request)
        } catch {
            throw Self.wrap(error, "pause \(containerID)")
        }
        update(containerID, "") { if $0.exit == nil { $0.status = .paused } }
        var event = Containerd_Events_TaskPaused()
        event.containerID = containerID
        configuration.onEvent(event)
    }

    /// Thaws the container's processes.
    public func resume(containerID: String) async throws {
        _ = try requireContainer(containerID)
        var request = Containerd_Task_V2_ResumeRequest()
        request.id = containerID
        do {
            _ = try await requireSandbox().agent.task.resume(request)
        } catch {
            throw Self.wrap(error, "resume \(containerID)")
        }
        update(containerID, "") { if $0.exit == nil { $0.status = .running } }
        var event = Containerd_Events_TaskResumed()
        event.containerID = containerID
        configuration.onEvent(event)
    }

    /// The VM's vCPUs and memory (QMP) and QEMU's CPU time and resident memory (the
    /// host's /proc); nil when the VM does not answer.
    func vmStats(_ sandbox: Sandbox) async -> Qemubox_Shim_V1_VMStats? {
        guard let resources = try? await sandbox.vm.resources(), let pid = await sandbox.vm.pid else { return nil }
        var stats = Qemubox_Shim_V1_VMStats()
        stats.machine = await sandbox.vm.resolved?.machineType.rawValue ?? ""
        stats.vcpus = UInt32(resources.vcpus)
        stats.onlineVcpus = UInt32(onlineVCPUs ?? resources.vcpus)
        stats.maxVcpus = UInt32(resources.maxVCPUs)
        stats.memoryBytes = UInt64(resources.memoryMiB) << 20
        stats.maxMemoryBytes = UInt64(resources.maxMemoryMiB) << 20
        if let usage = ProcessUsage.read(pid: pid) {
            stats.qemuCpuUsec = usage.cpuMicroseconds
            stats.qemuRssBytes = usage.residentBytes
        }
        return stats
    }
}
