#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import QemuboxAPI
import OCISpec
import QemuboxKit
import SwiftProtobuf
import TTRPCCodec

/// The entry point of `containerd-shim-qemubox-v1`: runs one shim action
/// (`start`, `delete`, the daemon, or `-v`) and returns the process exit status.
///
/// ```swift
/// exit(await QemuboxShim.main(Array(CommandLine.arguments.dropFirst())))
/// ```
public enum QemuboxShim {
    /// The shim's version string.
    public static let version = "0.1.0"
    /// containerd's runtime name for this shim.
    public static let runtimeName = "io.containerd.qemubox.v1"

    /// The hidden action that runs a ``TemplateMemoryHolder``: `template-memory-holder DIR`.
    public static let templateMemoryHolderAction = "template-memory-holder"

    /// This executable (`/proc/self/exe` resolved), to start holders with.
    static var executablePath: String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs the action named by `arguments`; returns the exit status.
    public static func main(_ arguments: [String],
                            environment: [String: String] = ProcessInfo.processInfo.environment) async -> Int32 {
        if arguments.first == templateMemoryHolderAction, arguments.count == 2 {
            // Started by a shim (descriptor 3 its readiness pipe), outlives it; see TemplateMemoryHolder.
            var st = stat()
            let ready: Int32? = fstat(3, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO ? 3 : nil
            return TemplateMemoryHolder.run(templateDirectory: arguments[1], readyDescriptor: ready)
        }
        if arguments.first == ShimSpare.action, arguments.count == 2 {
            // Started by a shim with the spare's lock on descriptor 3; becomes a task's shim when claimed.
            return await ShimSpare.run(directory: arguments[1], environment: environment)
        }
        let parsed: ShimArguments
        do {
            parsed = try ShimArguments.parse(arguments)
        } catch {
            FileHandle.standardError.write(Data("containerd-shim-qemubox-v1: \(error)\n".utf8))
            return 2
        }
        switch parsed.action {
        case .version:
            print("containerd-shim-qemubox-v1:\n  Version:  \(version)\n  Runtime:  \(runtimeName)")
            return 0
        case .start:
            return report { try ShimStart.run(parsed, environment: environment) }
        case .delete:
            return await reportAsync { try await ShimDelete.run(parsed, environment: environment) }
        case .serve:
            return await reportAsync { try await ShimDaemon.run(parsed, environment: environment) }
        }
    }

    static func report(_ body: () throws -> Void) -> Int32 {
        do {
            try body()
            return 0
        } catch {
            FileHandle.standardError.write(Data("containerd-shim-qemubox-v1: \(error)\n".utf8))
            return 1
        }
    }

    static func reportAsync(_ body: () async throws -> Void) async -> Int32 {
        do {
            try await body()
            return 0
        } catch {
            FileHandle.standardError.write(Data("containerd-shim-qemubox-v1: \(error)\n".utf8))
            return 1
        }
    }

    /// Loads the configuration (`QEMUBOX_CONFIG` or /etc/qemubox/config.toml).
    static func configuration(_ environment: [String: String]) throws -> QemuboxConfiguration {
        do {
            return try QemuboxConfiguration.load(environment: environment)
        } catch {
            throw ShimError(.invalidArgument, "\(error)")
        }
    }
}

extension QemuboxShim {
    /// Whether `pid` is the shim daemon for these paths: its command line names the socket,
    /// or it is the claimed spare process `spareDirectory` names (`spare-vm DIR`, see ``ShimSpare``).
    static func isShimDaemon(_ pid: Int32, _ paths: ShimPaths, spareDirectory: String? = nil) -> Bool {
        guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let words = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if words.contains(paths.socket) { return true }
        guard let spareDirectory, words.count >= 3 else { return false }
        return words[words.count - 2] == ShimSpare.action && words[words.count - 1] == spareDirectory
    }

    /// The pid of the shim daemon serving `paths`, if one runs: its record's pid is alive
    /// and that process's command line names the socket or its spare (a reused pid does not count).
    static func servingDaemon(_ paths: ShimPaths) -> Int32? {
        guard let record = ShimRecord.read(from: paths), record.shimPid > 0, kill(record.shimPid, 0) == 0,
              isShimDaemon(record.shimPid, paths, spareDirectory: record.spareDirectory) else { return nil }
        return record.shimPid
    }
}
