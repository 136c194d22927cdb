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

    /// Runs the action named by `arguments`; returns the exit status.
    public static func main(_ arguments: [String],
                            environment: [String: String] = ProcessInfo.processInfo.environment) async -> Int32 {
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

/// `start`: launch the daemon, wait until it listens, print its address.
enum ShimStart {
    static func run(_ arguments: ShimArguments, environment: [String: String]) throws {
        let configuration = try QemuboxShim.configuration(environment)
        var daemon = arguments
        if let pod = ShimPaths.podID(bundle: FileManager.default.currentDirectoryPath) {
            // A CRI pod's container joins its sandbox's shim (and VM) when that one serves.
            let group = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace, id: pod)
            if let record = ShimRecord.read(from: group), kill(record.shimPid, 0) == 0,
               QemuboxShim.isShimDaemon(record.shimPid, group) {
                let address = "unix://" + group.socket
                do {
                    try address.write(toFile: "address", atomically: true, encoding: .utf8)
                } catch {
                    throw ShimError(.internal, "cannot write the address file: \(error)")
                }
                print(address)
                return
            }
        }
        let paths = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace,
                                  id: arguments.id)
        daemon.socket = paths.socket
        let address = "unix://" + paths.socket
        do {
            try FileManager.default.createDirectory(atPath: (paths.socket as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o711])
            try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw ShimError(.internal, "cannot create the state directory: \(error)")
        }
        if let record = ShimRecord.read(from: paths), kill(record.shimPid, 0) == 0,
           FileManager.default.fileExists(atPath: paths.socket) {
            // A shim for this task is already serving (containerd retried start).
            print(address)
            return
        }
        unlink(paths.socket)
        let ready = try Spawn.pipe()
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let environmentList = environment.map { "\($0.key)=\($0.value)" }
        let pid: pid_t
        do {
            pid = try Spawn.run(Spawn.executablePath(), daemon.daemonArguments(), environment: environmentList,
                                descriptors: [(null, 0), (null, 1), (null, 2), (ready.write, 3)], newSession: true)
        } catch {
            close(ready.read)
            close(ready.write)
            throw error
        }
        close(ready.write)
        // The daemon writes "ok\n" once it listens, or an error line and exits.
        var poller = pollfd(fd: ready.read, events: Int16(POLLIN), revents: 0)
        var answer = [UInt8](repeating: 0, count: 4096)
        var got = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if poll(&poller, 1, 100) > 0 {
                let n = answer.withUnsafeMutableBytes { raw -> Int in
                    guard let base = raw.baseAddress else { return 0 }
                    return read(ready.read, base + got, raw.count - got)
                }
                if n <= 0 { break }
                got += n
                if answer[0..<got].contains(UInt8(ascii: "\n")) { break }
            }
        }
        close(ready.read)
        let text = String(decoding: answer[0..<got], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text == "ok" else {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw ShimError(.internal, "the shim daemon did not start: \(text.isEmpty ? "no answer" : text)")
        }
        // The daemon is in its own session; containerd reaps nothing of ours.
        do {
            try address.write(toFile: "address", atomically: true, encoding: .utf8)
        } catch {
            throw ShimError(.internal, "cannot write the address file in \(FileManager.default.currentDirectoryPath): \(error)")
        }
        print(address)
    }
}

/// `delete`: finish the cleanup of a task whose shim died, print the DeleteResponse.
enum ShimDelete {
    static func run(_ arguments: ShimArguments, environment: [String: String]) async throws {
        let configuration = try QemuboxShim.configuration(environment)
        // A pod's container shares its sandbox's shim. containerd runs `delete` whenever a
        // task's connection closes, also after a normal delete: while the pod's shim serves,
        // it owns its containers and a container's `delete` leaves it alone. Once it died
        // (QEMU with it), any task's `delete` cleans up the whole pod; the others find nothing.
        let pod = ShimPaths.podID(bundle: FileManager.default.currentDirectoryPath)
        let paths = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace,
                                  id: pod ?? arguments.id)
        if let fd = ShimLogHandler.openLogFIFO("log") {
            ShimLogHandler.bootstrap(fd: fd, level: arguments.debug ? .debug : .info)
        }
        let logger = Logger(label: "qemubox.shim.delete")
        if pod != nil, let record = ShimRecord.read(from: paths), kill(record.shimPid, 0) == 0,
           QemuboxShim.isShimDaemon(record.shimPid, paths) {
            logger.info("delete: \(arguments.id) belongs to pod \(pod ?? "") whose shim serves; nothing to clean up")
        } else {
            try await cleanup(paths: paths, configuration: configuration, logger: logger)
        }
        var response = Containerd_Task_V2_DeleteResponse()
        response.exitStatus = 128 + 9
        response.exitedAt = Google_Protobuf_Timestamp(date: Date())
        let bytes = try response.serializedData()
        FileHandle.standardOutput.write(bytes)
    }

    /// Kills what the dead shim left (QEMU by its verified pid record), releases its
    /// networks and socket, writes the writable layers back, removes the state directory.
    /// The quick steps go first and each writeback is recorded when done: containerd gives
    /// a `delete` 5 s, and the deletes of a pod's tasks run at once, so they take turns (a
    /// lock in the state directory) and each goes on where the one before stopped.
    static func cleanup(paths: ShimPaths, configuration: QemuboxConfiguration, logger: Logger) async throws {
        guard FileManager.default.fileExists(atPath: paths.stateDirectory) else {
            unlink(paths.socket)
            return
        }
        let lock = open(paths.stateDirectory + "/cleanup.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { if lock >= 0 { close(lock) } }
        if lock >= 0 {
            while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
        }
        // The turn before may have finished everything.
        guard FileManager.default.fileExists(atPath: paths.recordFile)
            || FileManager.default.fileExists(atPath: paths.vmDirectory) else {
            removeState(paths)
            return
        }
        var record = ShimRecord.read(from: paths)
        if let record, record.shimPid > 0, record.shimPid != getpid(), isShimDaemon(record.shimPid, paths) {
            kill(record.shimPid, SIGKILL)
        }
        do {
            let outcome = try await VMStateRecord.cleanupStale(stateDirectory: paths.vmDirectory)
            logger.info("delete: VM cleanup \(outcome)")
        } catch {
            logger.error("delete: VM cleanup failed: \(error)")
        }
        if let network = record?.network {
            await network.detach(logger: logger)
            record?.network = nil
            try? record?.write(to: paths)
        }
        unlink(paths.socket)
        if var main = record, !main.writtenBack, let scratch = main.scratchImage, let target = main.writeback,
           FileManager.default.fileExists(atPath: scratch) {
            // A record from a shim before policies were recorded: the bundle's spec gives it.
            let policy = main.writebackPolicy
                ?? (try? RuntimeSpec.load(bundle: main.bundle)).map {
                    WritebackPolicy(spec: $0, layerBytes: UInt64(configuration.writableLayerMiB) << 20)
                }
            if let policy {
                await rescueWriteBack(scratchImage: scratch, into: target, policy: policy,
                                      configuration: configuration, paths: paths, logger: logger)
            } else {
                logger.error("delete: no writeback policy recorded and no spec in \(main.bundle): the writable layer is not written back")
            }
            main.writtenBack = true
            try? main.write(to: paths)
            record = main
        }
        for (id, member) in (record?.members ?? [:]).sorted(by: { $0.key < $1.key }) where !member.writtenBack {
            if let scratch = member.scratchImage, let target = member.writeback, let policy = member.writebackPolicy,
               FileManager.default.fileExists(atPath: scratch) {
                logger.info("delete: writing back the writable layer of \(id), a container of the pod")
                await rescueWriteBack(scratchImage: scratch, into: target, policy: policy,
                                      configuration: configuration, paths: paths, logger: logger)
            }
            record?.members?[id]?.writtenBack = true
            try? record?.write(to: paths)
        }
        removeState(paths)
    }

    /// Removes the state directory and, if empty, its namespace directory.
    static func removeState(_ paths: ShimPaths) {
        unlink(paths.socket)
        do {
            try FileManager.default.removeItem(atPath: paths.stateDirectory)
        } catch {
            if FileManager.default.fileExists(atPath: paths.stateDirectory) {
                FileHandle.standardError.write(Data("cannot remove \(paths.stateDirectory): \(error)\n".utf8))
            }
        }
        // Empty namespace directory: remove it too (ignore if others remain).
        rmdir((paths.stateDirectory as NSString).deletingLastPathComponent)
    }

    /// The writeback after the container's VM died: a rescue VM mounts the writable
    /// disk in its guest and streams the layer back (the host never mounts it).
    static func rescueWriteBack(scratchImage: String, into target: RootfsWriteback.Target, policy: WritebackPolicy,
                                configuration: QemuboxConfiguration, paths: ShimPaths, logger: Logger) async {
        do {
            var pod = try PodConfiguration(id: "rescue", namespace: "", stateDirectory: paths.stateDirectory,
                                           host: configuration)
            pod.logger = logger
            let rescue = pod.sandbox(name: "qbx-rescue", directory: paths.stateDirectory + "/rescue",
                                     memoryMiB: configuration.memoryMiB, vcpus: 1)
            await Pod.rescueWriteBack(scratchImage: scratchImage, into: target, policy: policy, configuration: rescue)
        } catch {
            logger.error("writing the writable layer back into \(target.directory) failed: \(error)")
        }
    }

    /// Whether `pid` is the shim daemon for these paths (its command line names the socket).
    static func isShimDaemon(_ pid: Int32, _ paths: ShimPaths) -> Bool { QemuboxShim.isShimDaemon(pid, paths) }
}

extension QemuboxShim {
    /// Whether `pid` is the shim daemon for these paths (its command line names the socket).
    static func isShimDaemon(_ pid: Int32, _ paths: ShimPaths) -> Bool {
        guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return raw.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == paths.socket }
    }
}
