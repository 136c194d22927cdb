import Foundation
import QMPClient

/// Saving a machine's state and restoring it (VM templates, warm start).
extension VirtualMachine {
    /// The incoming half of a restore: the state file through `exec:cat`, RAM left to the memory file.
    func loadState(_ path: String, _ client: QMPClient) async throws {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw QemuboxError(.startFailed, "\(machine.name): cannot read the saved state \(path)")
        }
        do {
            try await client.migrateSetCapabilities(["x-ignore-shared": true])
            try await client.migrateIncoming(uri: "exec:cat \(Self.shellQuoted(path))")
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
            try await qmp.migrate(uri: "exec:cat > \(Self.shellQuoted(path))")
            try await qmp.waitForMigration(timeout: timeout)
        } catch {
            throw QemuboxError(.startFailed, "\(machine.name): saving the state to \(path) failed: \(error); \(stderrTail())")
        }
    }

    /// `path` in single quotes for QEMU's `exec:` (run by /bin/sh).
    static func shellQuoted(_ path: String) -> String {
        "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
