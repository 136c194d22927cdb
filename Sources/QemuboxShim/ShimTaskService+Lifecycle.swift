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
    // MARK: Delete

    public func delete(_ request: Containerd_Task_V2_DeleteRequest, context _: TTRPCRequestContext) async throws
        -> Containerd_Task_V2_DeleteResponse
    {
        let (container, process) = try requireProcess(request.id, request.execID)
        if !request.execID.isEmpty {
            guard process.exit != nil || !process.started else {
                throw ShimError(.failedPrecondition, "exec \(request.execID) is still running")
            }
            if await vmAlive(container) {
                _ = try? await container.sandbox.agent.task.delete(request)
            }
            await process.io.close()
            self.container?.processes[request.execID] = nil
            return deleteResponse(process)
        }
        if process.started && process.exit == nil {
            throw ShimError(.failedPrecondition, "task \(request.id) is still running: kill it first")
        }
        for (execID, exec) in container.processes where !execID.isEmpty && exec.exit == nil && exec.started {
            throw ShimError(.failedPrecondition, "exec \(execID) of task \(request.id) is still running")
        }
        self.container?.deleted = true
        let deleteStarted = ContinuousClock.now
        let sandbox = container.sandbox
        var writtenBack = false
        if await vmAlive(container) {
            _ = try? await sandbox.agent.task.delete(request)
            writtenBack = await streamWriteBack(container)
            if let error = await sandbox.stop(releasing: container.rootfs.plan, reason: "task \(request.id) deleted",
                                              timeout: .seconds(self.context.configuration.shutdownTimeoutSeconds)) {
                logger.warning("unmounting the rootfs in the guest failed: \(error)")
            }
        }
        for task in container.background { task.cancel() }
        for (_, each) in container.processes { await each.io.close() }
        await rescueWriteBack(container, unless: writtenBack)
        await releaseNetwork(container)
        let exit = self.container?.processes[""]?.exit ?? process.exit ?? Exit(status: 137, at: Date())
        if !(self.container?.initExitPublished ?? true) { publishExit(execID: "", exit, pid: process.pid) }
        removeState()
        logger.info("deleted \(request.id)", metadata: ["delete_s": "\((ContinuousClock.now - deleteStarted).shimSeconds)"])
        var event = Containerd_Events_TaskDelete()
        event.containerID = request.id
        event.pid = process.pid
        event.exitStatus = exit.status
        event.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        context.publisher.publish(event)
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = process.pid
        response.exitStatus = exit.status
        response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        return response
    }

    func deleteResponse(_ process: Process) -> Containerd_Task_V2_DeleteResponse {
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = process.pid
        let exit = process.exit ?? Exit(status: 137, at: Date())
        response.exitStatus = exit.status
        response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        return response
    }

    /// The writeback after the VM is gone, through a rescue VM, unless it already
    /// happened through the running guest.
    func rescueWriteBack(_ container: Container, unless writtenBack: Bool) async {
        guard !writtenBack, let scratch = container.rootfs.scratchImage, let target = container.rootfs.writeback else {
            return
        }
        await ShimDelete.rescueWriteBack(scratchImage: scratch, into: target, policy: container.writebackPolicy,
                                         configuration: context.configuration, paths: context.paths, logger: logger)
    }

    /// Undoes the VM's networking: the tc redirection on a namespace the caller owns
    /// (CRI's pod namespace outlives the VM: its interfaces stay as CNI made them), or
    /// the shim's own CNI networks and namespace.
    func releaseNetwork(_ container: Container) async {
        if let attachment = container.cniAttachment {
            await attachment.detach(logger: logger)
        } else if case .path = container.sandbox.configuration.network?.namespace {
            await container.sandbox.detachNetwork(container.attached)
        }
    }

    /// Streams the writable layer back from the running guest (``Sandbox/writeBack(upper:into:policy:)``)
    /// before its rootfs is unmounted. Returns false only when a writeback was due and failed.
    func streamWriteBack(_ container: Container) async -> Bool {
        guard let upper = container.rootfs.plan.guestUpper, let target = container.rootfs.writeback else { return true }
        let started = ContinuousClock.now
        do {
            let summary = try await container.sandbox.writeBack(upper: upper, into: target,
                                                                policy: container.writebackPolicy)
            if var record = ShimRecord.read(from: context.paths) {
                record.writtenBack = true
                try? record.write(to: context.paths)
            }
            ShimDelete.log(summary, target: target, seconds: (ContinuousClock.now - started).shimSeconds, logger: logger)
            return true
        } catch {
            logger.error("writing the writable layer back into \(target.directory) failed: \(error)")
            // Only a VM that died meanwhile gets a rescue VM; a guest that sent what the
            // policy refuses, or broke the stream, gets no second chance.
            return await container.sandbox.vm.exit == nil
        }
    }

    /// Removes the state directory (disks, record); the socket goes with the server.
    func removeState() {
        try? FileManager.default.removeItem(atPath: context.paths.stateDirectory)
    }

    // MARK: background: guest events and VM death

    func startBackground(_ sandbox: Sandbox) {
        let events = Task { [weak self] in
            do {
                let stream = try await sandbox.agent.system.events(.init(), options: .init(timeout: nil))
                for try await event in stream {
                    await self?.handleGuestEvent(event)
                }
            } catch {
                await self?.logger.debug("guest event stream ended: \(error)")
            }
        }
        let watch = Task { [weak self] in
            let reason = await sandbox.vm.waitForExit()
            await self?.vmExited(reason)
        }
        container?.background = [events, watch]
    }

    func handleGuestEvent(_ event: Qemubox_Guest_V1_Event) {
        guard let container else { return }
        do {
            if let exit = try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskExit.self) {
                let execID = exit.id == container.id && container.processes[exit.id] == nil ? "" : exit.id
                let at = exit.hasExitedAt ? exit.exitedAt.date : Date()
                processExited(execID, Exit(status: exit.exitStatus, at: at))
            } else if let oom = try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskOOM.self) {
                var forwarded = oom
                forwarded.containerID = container.id
                context.publisher.publish(forwarded)
            } else {
                logger.debug("guest event \(event.topic)")
            }
        } catch {
            logger.warning("undecodable guest event \(event.topic): \(error)")
        }
    }

    /// The VM ended while the task was not deleted: every process still running
    /// is reported exited (SIGKILL status), with the reason in the log.
    func vmExited(_ reason: ExitReason) {
        guard let container, !container.deleted else { return }
        logger.error("the VM of task \(container.id) exited: \(reason)",
                     metadata: ["console": "\(reason.consoleTail.suffix(800))"])
        let now = Date()
        for (execID, process) in container.processes where process.exit == nil && !execID.isEmpty {
            processExited(execID, Exit(status: 128 + 9, at: now))
        }
        if container.processes[""]?.exit == nil {
            processExited("", Exit(status: 128 + 9, at: now))
        }
    }

    /// Records an exit, wakes waiters and publishes `TaskExit` (the init
    /// process's after those of its execs).
    func processExited(_ execID: String, _ exit: Exit) {
        guard let process = container?.processes[execID], process.exit == nil else { return }
        let waiters = process.waiters
        update(execID) {
            $0.exit = exit
            $0.status = .stopped
            $0.waiters = []
        }
        for waiter in waiters { waiter.resume(returning: exit) }
        if !execID.isEmpty {
            publishExit(execID: execID, exit, pid: process.pid)
            return
        }
        Task { [weak self] in
            // The guest reports the execs' exits as the container's PID namespace
            // dies; give them a moment so that init's exit comes last.
            let deadline = ContinuousClock.now + .seconds(3)
            while let self, await self.hasRunningExecs(), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            _ = await process.io.waitOutput(timeout: .seconds(2))
            await self?.publishInitExit(exit, pid: process.pid)
        }
    }

    func hasRunningExecs() -> Bool {
        container?.processes.contains { !$0.key.isEmpty && $0.value.started && $0.value.exit == nil } ?? false
    }

    func publishInitExit(_ exit: Exit, pid: UInt32) {
        guard let container, !container.initExitPublished else { return }
        self.container?.initExitPublished = true
        publishExit(execID: "", exit, pid: pid)
    }

    func publishExit(execID: String, _ exit: Exit, pid: UInt32) {
        guard let container else { return }
        if execID.isEmpty { self.container?.initExitPublished = true }
        var event = Containerd_Events_TaskExit()
        event.containerID = container.id
        event.id = execID.isEmpty ? container.id : execID
        event.pid = pid
        event.exitStatus = exit.status
        event.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        context.publisher.publish(event)
    }
}

extension Duration {
    /// Seconds as a Double.
    var shimSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
