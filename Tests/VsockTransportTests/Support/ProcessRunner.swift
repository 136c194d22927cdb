import Foundation

/// Runs child processes for tests, capturing stdout and stderr together.
enum ProcessRunner {
    struct Result: Sendable {
        var status: Int32
        var output: String
    }

    /// Runs `argv` (argv[0] looked up on PATH) to completion, blocking.
    /// A process still running after `timeout` seconds is killed (status != 0).
    static func run(_ argv: [String], cwd: String? = nil, env: [String: String] = [:],
                    timeout: Double = 120) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        defer { watchdog.cancel() }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Runs `argv` to completion on a background thread.
    static func runAsync(_ argv: [String], cwd: String? = nil, env: [String: String] = [:],
                         timeout: Double = 120) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Swift.Result { try run(argv, cwd: cwd, env: env, timeout: timeout) })
            }
        }
    }
}

/// Runs blocking work on its own thread, so that waiting never occupies the
/// cooperative pool other tests need.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Swift.Result { try body() }) }
    }
}
