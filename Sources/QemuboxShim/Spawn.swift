#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ProcessSpawn

/// Starting helper processes (the shim daemon, `binary://` log drivers) through
/// ProcessSpawn: exact descriptors, default signal dispositions, optionally a new
/// session so the child outlives its parent's process group; never a parent-death
/// signal (both outlive the process that starts them).
enum Spawn {
    /// Spawns `path` with `arguments` (argv[1...]), `environment`, and `descriptors`
    /// mapped (source → target); every other descriptor is closed on exec.
    static func run(_ path: String, _ arguments: [String], environment: [String],
                    descriptors: [(source: Int32, target: Int32)], newSession: Bool) throws -> pid_t {
        do {
            return try ProcessSpawner.shared.spawnBlocking(.init(
                path: path, arguments: arguments, environment: environment, descriptors: descriptors,
                newSession: newSession, deathSignal: nil))
        } catch let error as SpawnError {
            throw ShimError(.internal, "cannot start \(path): \(error.message)")
        }
    }

    /// A pipe with both ends close-on-exec.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else {
            throw ShimError(.internal, "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// This executable's path.
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Waits for `pid` without blocking the caller's thread for longer than `timeout`;
    /// SIGKILLs it after that. Returns the wait status.
    static func reap(_ pid: pid_t, timeout: Duration) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { return status }
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return status
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
