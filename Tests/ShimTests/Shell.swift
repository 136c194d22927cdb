import Foundation
import TestSupport

/// Runs commands for the tests (bash -c), capturing output, off the cooperative pool.
enum Shell {
    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `command` with bash; `environment` is added to this process's.
    static func run(_ command: String, environment: [String: String] = [:], stdin: String? = nil,
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

    static func runBlocking(_ command: String, environment: [String: String], stdin: String?,
                            timeout: Duration) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", command]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        let timer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let seconds = Double(timeout.components.seconds)
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: timer)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs `command` and throws unless it exits 0; returns stdout.
    @discardableResult
    static func check(_ command: String, environment: [String: String] = [:]) async throws -> String {
        let result = try await run(command, environment: environment)
        guard result.status == 0 else {
            throw PeerError("`\(command)` exited \(result.status): \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }
}
