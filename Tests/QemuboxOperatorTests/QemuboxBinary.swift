import ContainerdTestSupport
import Foundation
import TestSupport

/// The `qemubox` executable of this build, run as an operator would run it.
enum QemuboxBinary {
    /// Its path (beside the test bundle, else `.build/debug`).
    static var path: String? {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path,
            PrivateContainerd.packageRoot + "/.build/debug",
        ].map { $0 + "/qemubox" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether it was built (always true under CI, where its absence must fail loudly).
    static var available: Bool {
        if path != nil || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data("SKIP: the qemubox executable is not built\n".utf8))
        return false
    }

    /// Runs `qemubox ARGUMENTS` (each argument quoted) and returns its status and output.
    static func run(_ arguments: [String], environment: [String: String] = [:],
                    timeout: Duration = .seconds(120)) async throws -> Shell.Result {
        guard let path else { throw PeerError("the qemubox executable is not built") }
        let command = ([path] + arguments).map(Shell.quote).joined(separator: " ")
        return try await Shell.run(command, environment: environment, timeout: timeout)
    }

    /// Runs it with `--format json` and decodes stdout as `T`; throws unless it exits `status`.
    static func json<T: Decodable>(_ type: T.Type, _ arguments: [String], status: Int32 = 0,
                                   environment: [String: String] = [:]) async throws -> T {
        let result = try await run(arguments + ["--format", "json"], environment: environment)
        guard result.status == status else {
            throw PeerError("qemubox \(arguments.joined(separator: " ")) exited \(result.status), not \(status): \(result.stderr)")
        }
        return try decode(type, result.stdout)
    }

    /// Decodes the command's JSON (snake_case keys, ISO 8601 dates).
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: Data(text.utf8))
    }

    /// A configuration file in `dir` with `body`, for `--config`.
    static func configuration(in dir: String, _ body: String) throws -> String {
        let path = dir + "/qemubox.toml"
        try body.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

extension QemuboxBinary {
    /// Runs a shell command and returns its stdout; throws unless it exits 0.
    static func runShell(_ command: String) async throws -> String {
        try await Shell.check(command)
    }
}
