import Foundation
import NIOPosix
import QMPClient

/// Saving a machine's state and restoring it (VM templates, warm start). QEMU opens
/// no file for either: the launcher passes the stream's descriptor (the incoming one
/// at start, the outgoing one over the control monitor), so a jailed QEMU needs no
/// path and `-sandbox spawn=deny` no `exec:` helper.
extension VirtualMachine {
    /// The incoming half of a restore: the state from the descriptor QEMU was started
    /// with, RAM left to the memory file.
    func loadState(_ path: String, _ client: QMPClient) async throws {
        guard let fd = descriptorLayout?.incomingState else {
            throw QemuboxError(.startFailed, "\(machine.name): no saved state was passed to QEMU")
        }
        do {
            try await client.migrateSetCapabilities(["x-ignore-shared": true])
            try await client.migrateIncoming(uri: "fd:\(fd)")
            try await client.waitForMigration(timeout: configuration.startTimeout)
        } catch {
            throw QemuboxError(.startFailed, "\(machine.name): restoring \(path) failed: \(error); \(stderrTail())")
        }
    }

    /// Saves the paused machine's device state to `path` (a migration stream with
    /// `x-ignore-shared`: the RAM stays in the machine's shared ``MemoryFile``),
    /// leaving QEMU paused. Stop the machine afterwards, without letting the guest
    /// run again: the memory file must stay exactly as saved.
    public func saveState(to path: String, timeout: Duration = .seconds(60)) async throws {
        guard state == .running, let qmp else { throw QemuboxError(.invalidState, "save in state \(state)") }
        guard let memory = machine.memoryFile, memory.shared else {
            throw QemuboxError(.invalidDescription, "\(machine.name): saving needs guest RAM in a shared memory file")
        }
        do {
            try await qmp.stop()
            try await qmp.migrateSetCapabilities(["x-ignore-shared": true])
            let control = controlSocketPath
            try await NIOThreadPool.singleton.runIfActive {
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
                guard fd >= 0 else {
                    throw QemuboxError(.stateDirectory, "create \(path): \(String(cString: strerror(errno)))")
                }
                defer { close(fd) }
                let channel = try QMPControlChannel(unixSocketPath: control)
                defer { channel.close() }
                try channel.execute("getfd", arguments: ["fdname": "qemubox-state"], passing: fd)
                try channel.execute("migrate", arguments: ["uri": "fd:qemubox-state"])
            }
            try await qmp.waitForMigration(timeout: timeout)
        } catch {
            throw QemuboxError(.startFailed, "\(machine.name): saving the state to \(path) failed: \(error); \(stderrTail())")
        }
    }
}
