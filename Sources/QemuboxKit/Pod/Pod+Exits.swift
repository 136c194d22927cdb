import Foundation
import QemuboxAPI
import ServiceContextModule
import SwiftProtobuf

extension Pod {
    /// Follows the guest's events (exits, OOMs) and the VM's end.
    func startBackground(_ sandbox: Sandbox) {
        let events = Task { [weak self] in
            // Outside the trace of the call that booted the VM: the stream lives as long as the VM.
            await ServiceContext.withValue(nil) {
                do {
                    let stream = try await sandbox.agent.system.events(.init(), options: .unbounded)
                    for try await event in stream {
                        await self?.handleGuestEvent(event)
                    }
                } catch {
                    self?.configuration.logger.debug("guest event stream ended: \(error)")
                }
            }
        }
        let watch = Task { [weak self] in
            let reason = await sandbox.vm.waitForExit()
            await self?.vmExited(reason)
        }
        background = [events, watch]
    }

    func handleGuestEvent(_ event: Qemubox_Guest_V1_Event) {
        do {
            if let exit = try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskExit.self) {
                let at = exit.hasExitedAt ? exit.exitedAt.date : Date()
                // The guest names the init process by the container's id, an exec by its exec id.
                if let container = containers[exit.containerID] {
                    let execID = exit.id == container.id && container.processes[exit.id] == nil ? "" : exit.id
                    processExited(container.id, execID, Exit(status: exit.exitStatus, at: at))
                }
            } else if event.topic == GuestSpanReplay.topic {
                let batch = try Qemubox_Guest_V1_SpanBatch(unpackingAny: event.event)
                GuestSpanReplay.replay(batch)
            } else if let oom = try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskOOM.self) {
                guard containers[oom.containerID] != nil else { return }
                configuration.onEvent(oom)
            } else {
                logger.debug("guest event \(event.topic)")
            }
        } catch {
            logger.warning("undecodable guest event \(event.topic): \(error)")
        }
    }

    /// The VM ended with containers not deleted: every process still running is
    /// reported exited (SIGKILL status), with the reason in the log.
    func vmExited(_ reason: ExitReason) {
        let live = containers.values.filter { !$0.deleted }
        guard !live.isEmpty else { return }
        logger.error("the VM of pod \(configuration.id) exited: \(reason)",
                     metadata: ["console": "\(reason.consoleTail.suffix(800))"])
        let now = Date()
        for container in live {
            for (execID, process) in container.processes where process.exit == nil && !execID.isEmpty {
                processExited(container.id, execID, Exit(status: 128 + 9, at: now))
            }
            if container.processes[""]?.exit == nil {
                processExited(container.id, "", Exit(status: 128 + 9, at: now))
            }
        }
    }

    /// Records an exit, wakes waiters and publishes `TaskExit` (the init process's
    /// after those of its execs and after its output was relayed).
    func processExited(_ containerID: String, _ execID: String, _ exit: Exit) {
        guard let process = containers[containerID]?.processes[execID], process.exit == nil else { return }
        let waiters = process.waiters
        update(containerID, execID) {
            $0.exit = exit
            $0.status = .stopped
            $0.waiters = []
        }
        for waiter in waiters { waiter.resume(returning: exit) }
        if !execID.isEmpty {
            publishExit(containerID: containerID, execID: execID, exit, pid: process.pid)
            return
        }
        Task { [weak self] in
            // The guest reports the execs' exits as the container's PID namespace
            // dies; give them a moment so that init's exit comes last.
            let deadline = ContinuousClock.now + .seconds(3)
            while let self, await self.hasRunningExecs(containerID), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            _ = await process.io.waitOutput(timeout: .seconds(2))
            await self?.publishInitExit(containerID, exit, pid: process.pid)
        }
    }

    func hasRunningExecs(_ containerID: String) -> Bool {
        containers[containerID]?.processes.contains { !$0.key.isEmpty && $0.value.started && $0.value.exit == nil }
            ?? false
    }

    func publishInitExit(_ containerID: String, _ exit: Exit, pid: UInt32) {
        guard let container = containers[containerID], !container.initExitPublished else { return }
        publishExit(containerID: containerID, execID: "", exit, pid: pid)
    }

    func publishExit(containerID: String, execID: String, _ exit: Exit, pid: UInt32) {
        if execID.isEmpty { containers[containerID]?.initExitPublished = true }
        var event = Containerd_Events_TaskExit()
        event.containerID = containerID
        event.id = execID.isEmpty ? containerID : execID
        event.pid = pid
        event.exitStatus = exit.status
        event.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        configuration.onEvent(event)
    }
}
