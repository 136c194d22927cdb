import Foundation
import Logging
import QemuboxAPI
import SwiftProtobuf

extension Pod {
    /// What ``delete(containerID:execID:)`` reports.
    public struct Deleted: Sendable, Hashable {
        /// The pid containerd knew the process by.
        public var pid: UInt32
        /// How it ended (137 if it never did on its own).
        public var exit: Exit
    }

    // MARK: Delete

    /// Deletes an exited exec'd process, or a container whose processes have all exited:
    /// its writable layer is written back from the running guest (or, if the VM died,
    /// through a rescue VM), its rootfs unmounted, and — the pod's last container — the
    /// VM ended and the pod's networks released.
    public func delete(containerID: String, execID: String = "") async throws -> Deleted {
        let (container, process) = try requireProcess(containerID, execID)
        if !execID.isEmpty {
            guard process.exit != nil || !process.started else {
                throw QemuboxError(.failedPrecondition, "exec \(execID) is still running")
            }
            if let sandbox, await vmAlive() {
                var request = Containerd_Task_V2_DeleteRequest()
                request.id = containerID
                request.execID = execID
                _ = try? await sandbox.agent.task.delete(request)
            }
            await process.io.close()
            containers[containerID]?.processes[execID] = nil
            return Deleted(pid: process.pid, exit: process.exit ?? Exit(status: 137, at: Date()))
        }
        if process.started && process.exit == nil {
            throw QemuboxError(.failedPrecondition, "task \(containerID) is still running: kill it first")
        }
        for (id, exec) in container.processes where !id.isEmpty && exec.exit == nil && exec.started {
            throw QemuboxError(.failedPrecondition, "exec \(id) of task \(containerID) is still running")
        }
        containers[containerID]?.deleted = true
        let deleteStarted = ContinuousClock.now
        await releaseHostMounts(container)
        var writtenBack = false
        if let sandbox, await vmAlive() {
            // The VM's last container, whose init has exited and taken its PID namespace's
            // processes with it: the VM goes next, so the guest's `crun delete` (~0.1 s
            // under TCG) would only tidy state that is about to vanish.
            let vmEndsNow = !hasLiveContainers && process.exit != nil && container.ownPIDNamespace
            if !vmEndsNow {
                var request = Containerd_Task_V2_DeleteRequest()
                request.id = containerID
                _ = try? await sandbox.agent.task.delete(request)
            }
            writtenBack = await streamWriteBack(container)
            if hasLiveContainers {
                do {
                    try await sandbox.releaseBundle(container.rootfs.plan)
                    await detachDisks(container.attachedDisks, of: containerID, from: sandbox)
                } catch {
                    // Still mounted in the guest: the disks stay attached until the VM ends.
                    logger.warning("unmounting the rootfs of \(containerID) in the guest failed: \(error)")
                }
            } else if let error = await sandbox.stop(releasing: container.rootfs.plan,
                                                     reason: "task \(containerID) deleted",
                                                     timeout: configuration.shutdownTimeout) {
                logger.warning("unmounting the rootfs in the guest failed: \(error)")
            }
        }
        for (_, each) in container.processes { await each.io.close() }
        await rescueWriteBack(container, unless: writtenBack)
        if !hasLiveContainers { await end() }
        let exit = containers[containerID]?.processes[""]?.exit ?? process.exit ?? Exit(status: 137, at: Date())
        if !(containers[containerID]?.initExitPublished ?? true) {
            publishExit(containerID: containerID, execID: "", exit, pid: process.pid)
        }
        try? FileManager.default.removeItem(atPath: container.directory)
        logger.info("deleted \(containerID)", metadata: ["delete_s": "\((ContinuousClock.now - deleteStarted).podSeconds)"])
        var event = Containerd_Events_TaskDelete()
        event.containerID = containerID
        event.pid = process.pid
        event.exitStatus = exit.status
        event.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        configuration.onEvent(event)
        return Deleted(pid: process.pid, exit: exit)
    }

    /// Ends the pod hard (the caller is exiting): whatever still runs is written back
    /// where it can be, the VM killed, stdio closed, networks released.
    public func terminate() async {
        await discardSpare()
        let live = containers.values.filter { !$0.deleted }
        for container in live {
            containers[container.id]?.deleted = true
        }
        for container in live { await releaseHostMounts(container) }
        var writtenBack: Set<String> = []
        if await vmAlive() {
            for container in live where await streamWriteBack(container) { writtenBack.insert(container.id) }
        }
        if let sandbox { await sandbox.kill() }
        for container in live {
            for (_, process) in container.processes { await process.io.close() }
            await rescueWriteBack(container, unless: writtenBack.contains(container.id))
        }
        await end()
    }

    /// Cancels the background tasks and releases the pod's networks (once).
    func end() async {
        guard !ended else { return }
        ended = true
        for task in background { task.cancel() }
        background = []
        if let attachment = cniAttachment {
            // The pod's own namespace and CNI networks.
            await attachment.detach(logger: logger)
        } else if let sandbox, case .path = sandbox.configuration.network?.namespace {
            // A namespace the caller owns (CRI's pod namespace outlives the VM): only the tc redirection goes.
            await sandbox.detachNetwork(attached)
        }
    }

    // MARK: writeback

    /// Streams the writable layer back from the running guest before its rootfs is
    /// unmounted. Returns false only when a writeback was due and failed with the VM gone.
    func streamWriteBack(_ container: Container) async -> Bool {
        guard let sandbox, let upper = container.rootfs.plan.guestUpper, let target = container.rootfs.writeback,
              let policy = container.writebackPolicy else { return true }
        let started = ContinuousClock.now
        do {
            let summary = try await sandbox.writeBack(upper: upper, into: target, policy: policy)
            configuration.journal.writtenBack(container.id)
            Self.log(summary, target: target, seconds: (ContinuousClock.now - started).podSeconds, logger: logger)
            return true
        } catch {
            logger.error("writing the writable layer back into \(target.directory) failed: \(error)")
            // Only a VM that died meanwhile gets a rescue VM; a guest that sent what the
            // policy refuses, or broke the stream, gets no second chance.
            return await sandbox.vm.exit == nil
        }
    }

    /// The writeback after the VM is gone, through a rescue VM, unless it already happened.
    func rescueWriteBack(_ container: Container, unless writtenBack: Bool) async {
        guard !writtenBack, let scratch = container.rootfs.scratchImage, let target = container.rootfs.writeback,
              let policy = container.writebackPolicy else { return }
        let rescue = configuration.sandbox(name: PodSpec.vmName(configuration.id),
                                           directory: configuration.stateDirectory + "/rescue",
                                           shape: VMShape(vcpus: 1, memoryMiB: configuration.memoryMiB))
        if await Self.rescueWriteBack(scratchImage: scratch, into: target, policy: policy, configuration: rescue) {
            configuration.journal.writtenBack(container.id)
        }
    }

    /// The writeback after the VM that ran a container died: a rescue VM mounts the
    /// writable disk in its guest and streams the layer back (the host never mounts it).
    /// Failures are logged (the layer is then lost, the caller's cleanup goes on); returns
    /// whether the layer was written back.
    @discardableResult
    public static func rescueWriteBack(scratchImage: String, into target: RootfsWriteback.Target,
                                       policy: WritebackPolicy, configuration: SandboxConfiguration) async -> Bool {
        let started = ContinuousClock.now
        do {
            let summary = try await Sandbox.rescueWriteBack(scratchImage: scratchImage, into: target, policy: policy,
                                                            configuration: configuration)
            log(summary, target: target, seconds: (ContinuousClock.now - started).podSeconds,
                logger: configuration.logger)
            return true
        } catch {
            configuration.logger.error(
                "writing the writable layer back into \(target.directory) through a rescue VM failed: \(error)")
            return false
        }
    }

    /// Logs a writeback, with what the policy refused.
    static func log(_ summary: ChangeApplier.Summary, target: RootfsWriteback.Target, seconds: Double, logger: Logger) {
        logger.info("wrote the writable layer back", metadata: [
            "entries": "\(summary.entries)", "bytes": "\(summary.dataBytes)", "target": "\(target.directory)",
            "seconds": "\(seconds)"])
        if summary.refusedCount > 0 {
            let refused = summary.refused.joined(separator: "; ")
            logger.warning("the writable layer held \(summary.refusedCount) things the container could not have made; not applied: \(refused)")
        }
    }
}
