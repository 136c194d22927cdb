#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// One running virtiofsd and its capped stderr log.
struct Sharer: Sendable {
    var process: Subprocess
    var log: ConsoleLog
}

extension VirtualMachine {
    /// QEMU's virtiofsd (Debian ships the C one with QEMU 7.2).
    public static let virtiofsdPath = "/usr/lib/qemu/virtiofsd"
    /// Bytes of each virtiofsd's stderr kept on disk (a guest can make it warn).
    static let sharerLogBytes = 64 << 10

    /// Starts one virtiofsd per shared directory, each serving the listener QEMU's
    /// connected socket leads to: as root, in virtiofsd's own namespace sandbox (mount,
    /// pid and network namespaces, pivot_root into the directory), with the share's
    /// capability changes, dying with this process. Returns them in order.
    func startSharers(_ shares: [SharedDirectory], listeners: [Int32], devNull: Int32) async throws -> [Sharer] {
        var started: [Sharer] = []
        do {
            for (index, (share, listener)) in zip(shares, listeners).enumerated() {
                guard FileManager.default.isExecutableFile(atPath: Self.virtiofsdPath) else {
                    throw QemuboxError(.spawnFailed, "\(Self.virtiofsdPath) is missing (Debian's qemu-system-common): "
                        + "cannot share \(share.path)")
                }
                var arguments = ["--fd=3", "-o", "source=\(share.path)", "-o", "sandbox=namespace", "-o", "cache=auto",
                                 "-o", "log_level=warn", "-o", "no_xattr"]
                if !share.capabilityChanges.isEmpty {
                    arguments += ["-o", "modcaps=" + share.capabilityChanges.joined(separator: ":")]
                }
                let pair = try Self.socketPair()
                defer { close(pair.1) }
                // ConsoleLog owns pair.0 from here, also when it throws.
                let log = try ConsoleLog(fd: pair.0, logPath: configuration.stateDirectory + "/virtiofsd-\(index).log",
                                         settings: ConsoleSettings(maxLogBytes: Self.sharerLogBytes, memoryTailBytes: 2048))
                let pid: pid_t
                do {
                    pid = try await ProcessSpawner.shared.spawn(.init(
                        path: Self.virtiofsdPath, arguments: arguments, environment: [],
                        descriptors: [(devNull, Int32(0)), (pair.1, Int32(1)), (pair.1, Int32(2)), (listener, Int32(3))]))
                } catch let error as SpawnError {
                    throw QemuboxError(.spawnFailed, "virtiofsd for \(share.path): \(error.message)")
                }
                started.append(Sharer(process: Subprocess(pid: pid), log: log))
            }
        } catch {
            await Self.stopSharers(started, grace: .zero)
            throw error
        }
        return started
    }

    /// Waits (at most `grace`) for each virtiofsd to exit, as it does once QEMU's
    /// connection closes, then kills what is left; reaps all of them.
    static func stopSharers(_ sharers: [Sharer], grace: Duration) async {
        for sharer in sharers {
            if await sharer.process.wait(timeout: grace) == nil {
                _ = sharer.process.signal(SIGKILL)
                _ = await sharer.process.wait()
            }
            await sharer.log.waitFinished()
        }
    }
}
