import Foundation
import QemuboxAPI
import QemuboxKit
import TestSupport
import TTRPCCodec
import VsockTransport

/// Locates the guest kernel and system image the VM tests boot.
enum GuestArtifacts {
    /// QemuboxKit's lookup, preferring the image this clone built (packaging/build-guest-image.sh).
    static func assets() throws -> GuestAssets {
        try GuestAssets.locate(environment: GuestImage.environment())
    }

    /// Whether the VM tests can run (under CI they run and fail loudly).
    static var available: Bool {
        if Prerequisite.isCI { return true }
        do {
            _ = try assets()
        } catch {
            FileHandle.standardError.write(Data("SKIP: guest VM tests: \(error)\n".utf8))
            return false
        }
        guard Prerequisite.which("qemu-system-x86_64") != nil, Prerequisite.which("mkfs.erofs") != nil else {
            FileHandle.standardError.write(Data("SKIP: guest VM tests need qemu-system-x86_64 and mkfs.erofs\n".utf8))
            return false
        }
        return true
    }
}

/// The agent VM of these tests: QemuboxKit's `Sandbox` (vminitd on the system
/// image, 512 MiB, the agent connected and the clock set) with extra read-only disks.
final class AgentVM: Sendable {
    let sandbox: Sandbox

    init(sandbox: Sandbox) { self.sandbox = sandbox }

    /// The console so far (or, once QEMU has exited, its last part).
    var console: String {
        get async {
            let live = await sandbox.vm.consoleTail
            return live.isEmpty ? (await sandbox.vm.exit?.consoleTail ?? "") : live
        }
    }

    /// Waits for QEMU to exit (true) within `seconds`.
    func waitForExit(seconds: Double) async -> Bool {
        await eventually(timeout: .milliseconds(Int(seconds * 1000))) { await sandbox.vm.exit != nil }
    }
}

/// A connected host end: typed clients and stdio streams.
struct AgentClient: Sendable {
    let connection: GuestAgentConnection
    var system: QemuboxGuestV1SystemClient { connection.system }
    var task: ContainerdTaskV2TaskClient { connection.task }

    /// Opens a stdio stream named `key`.
    func openStdio(_ key: String) async throws -> YamuxStream {
        try await connection.openStdio(key: key)
    }
}

/// Runs `body` with a booted agent VM, killing it afterwards (also on failure).
func withAgentVM<T: Sendable>(disks: [(serial: String, path: String)] = [], directory: String,
                              _ body: @Sendable (AgentVM, AgentClient) async throws -> T) async throws -> T {
    try await ConcurrencyLimit.vms.run {
        var configuration = SandboxConfiguration(name: "agent-test", assets: try GuestArtifacts.assets(),
                                                 stateDirectory: directory + "/vm", memoryMiB: 512)
        configuration.removeStateDirectoryOnExit = true
        let sandbox = try await Sandbox.start(configuration, extraDisks: disks.map { Disk(id: $0.serial, path: $0.path) })
        let vm = AgentVM(sandbox: sandbox)
        do {
            let result = try await body(vm, AgentClient(connection: sandbox.agent))
            await sandbox.kill()
            return result
        } catch {
            let console = await vm.console
            await sandbox.kill()
            throw PeerError("\(error)\nconsole:\n\(console)")
        }
    }
}
