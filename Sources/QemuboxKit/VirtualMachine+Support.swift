import Foundation

extension VirtualMachine {
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
            throw QemuboxError(.system, "socketpair: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }

    static func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws -> Int32 {
        let fd = open(path, flags, mode)
        guard fd >= 0 else { throw QemuboxError(.system, "open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw QemuboxError(.stateDirectory, "create \(path): \(error)")
        }
    }

    nonisolated func resolveBinary(_ name: String) throws -> String {
        if name.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: name) else {
                throw QemuboxError(.spawnFailed, "\(name) is not executable")
            }
            return name
        }
        guard let found = Self.findExecutable(name) else {
            throw QemuboxError(.spawnFailed, "\(name) not found on PATH")
        }
        return found
    }

    /// The first executable `name` on PATH, then in `fallbackDirectories`.
    static func findExecutable(_ name: String, fallbackDirectories: [String] = []) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return (path.split(separator: ":").map(String.init) + fallbackDirectories)
            .map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func withTimeout<T: Sendable>(_ timeout: Duration, _ what: String,
                                  _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw QemuboxError(.timeout, "\(what) took longer than \(timeout)")
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw QemuboxError(.timeout, what) }
            return first
        }
    }
}
