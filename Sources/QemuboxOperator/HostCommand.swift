#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ProcessSpawn

/// Runs short host programs (`qemu-system-x86_64 --version`) through ProcessSpawn and
/// captures what they print.
enum HostCommand {
    /// The first executable `name` on PATH, then in the sbin directories; `name` itself
    /// when it is a path.
    static func which(_ name: String, environment: [String: String]) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin"]
        return directories.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `path` with `arguments` and returns its exit status and output (stdout and stderr
    /// together, at most 64 KiB). A program still running after `timeout` is killed.
    static func capture(_ path: String, _ arguments: [String], timeout: Duration = .seconds(10)) throws
        -> (status: Int32, output: String)
    {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw OperatorError(.system, "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let pid: pid_t
        do {
            defer {
                close(fds[1])
                if null >= 0 { close(null) }
            }
            pid = try ProcessSpawner.shared.spawnBlocking(.init(
                path: path, arguments: arguments, environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"],
                descriptors: [(null, Int32(0)), (fds[1], Int32(1)), (fds[1], Int32(2))], newSession: false, deathSignal: SIGKILL))
        } catch {
            close(fds[0])
            throw OperatorError(.system, "cannot run \(path): \(error)")
        }
        defer { close(fds[0]) }
        let deadline = ContinuousClock.now + timeout
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                kill(pid, SIGKILL)
                break
            }
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 200)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if output.count < 64 << 10 { output += buffer[0..<n] }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, String(decoding: output, as: UTF8.self))
    }
}
