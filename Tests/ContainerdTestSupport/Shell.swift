import Foundation
import ProcessSpawn
import TestSupport

/// Runs commands for the tests (bash -c), capturing output, off the cooperative pool.
public enum Shell {
    /// How a command ended and what it printed.
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `command` with bash; `environment` is added to this process's.
    public static func run(_ command: String, environment: [String: String] = [:], stdin: String? = nil,
                    timeout: Duration = .seconds(120)) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    continuation.resume(returning: try runBlocking(command, environment: environment, stdin: stdin,
                                                                   timeout: timeout))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    /// Output goes through temporary files, not pipes: a daemon that inherits
    /// a pipe (or a pipe end leaked into another child) would hold EOF back.
    public static func runBlocking(_ command: String, environment: [String: String], stdin: String?,
                            timeout: Duration) throws -> Result {
        let base = FileManager.default.temporaryDirectory.path + "/qbx-shell-\(UUID().uuidString)"
        defer { for suffix in [".in", ".out", ".err"] { unlink(base + suffix) } }
        try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: base + ".in"))
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        let input = open(stdin == nil ? "/dev/null" : base + ".in", O_RDONLY | O_CLOEXEC)
        let out = open(base + ".out", O_WRONLY | O_CLOEXEC)
        let err = open(base + ".err", O_WRONLY | O_CLOEXEC)
        defer { for fd in [input, out, err] where fd >= 0 { close(fd) } }
        let env = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }.map { "\($0.key)=\($0.value)" }
        let pid = try ProcessSpawner.shared.spawnBlocking(.init(
            path: "/bin/bash", arguments: ["-c", command], environment: env,
            descriptors: [(input, Int32(0)), (out, Int32(1)), (err, Int32(2))], newSession: false, deathSignal: nil))
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw PeerError("waitpid \(pid): \(String(cString: strerror(errno)))") }
            if ContinuousClock.now > deadline {
                _ = try? runBlocking("pkill -KILL -P \(pid)", environment: [:], stdin: nil, timeout: .seconds(10))
                kill(pid, SIGKILL)
            }
            usleep(10_000)
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let output = (try? Data(contentsOf: URL(fileURLWithPath: base + ".out"))) ?? Data()
        let errors = (try? Data(contentsOf: URL(fileURLWithPath: base + ".err"))) ?? Data()
        return Result(status: code, stdout: String(decoding: output, as: UTF8.self),
                      stderr: String(decoding: errors, as: UTF8.self))
    }

    /// `text` as one single-quoted shell word.
    public static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Runs `command` and throws unless it exits 0; returns stdout.
    @discardableResult
    public static func check(_ command: String, environment: [String: String] = [:]) async throws -> String {
        let result = try await run(command, environment: environment)
        guard result.status == 0 else {
            throw PeerError("`\(command)` exited \(result.status): \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }
}
