#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import OCISpec
import QemuboxAPI
import QemuboxKit
import SwiftProtobuf

/// `delete`: finish the cleanup of a task whose shim died, print the DeleteResponse.
enum ShimDelete {
    /// Set (to the pod's or task's id) in the detached process that finishes a cleanup.
    static let detachedVariable = "QEMUBOX_DELETE_DETACHED"

    static func run(_ arguments: ShimArguments, environment: [String: String]) async throws {
        let configuration = try QemuboxShim.configuration(environment)
        // A pod's container shares its sandbox's shim. containerd runs `delete` whenever a
        // task's connection closes, also after a normal delete: while the pod's shim serves,
        // it owns its containers and a container's `delete` leaves it alone. Once it died
        // (QEMU with it), any task's `delete` cleans up the whole pod; the others find nothing.
        let detached = environment[detachedVariable]
        let pod = detached == nil ? ShimPaths.podID(bundle: FileManager.default.currentDirectoryPath) : nil
        let paths = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace,
                                  id: detached ?? pod ?? arguments.id)
        if detached == nil, let fd = ShimLogHandler.openLogFIFO("log") {
            ShimLogHandler.bootstrap(fd: fd, level: arguments.debug ? .debug : .info)
        }
        let logger = Logger(label: "qemubox.shim.delete")
        if detached != nil {
            // The slow part, after the `delete` containerd waits for has answered.
            try await cleanup(paths: paths, configuration: configuration, logger: logger, deferWritebacks: false)
            return
        }
        if pod != nil, QemuboxShim.servingDaemon(paths) != nil {
            logger.info("delete: \(arguments.id) belongs to pod \(pod ?? "") whose shim serves; nothing to clean up")
        } else if try await cleanup(paths: paths, configuration: configuration, logger: logger, deferWritebacks: true) {
            // containerd kills a `delete` after 5 s; a rescue VM per writable layer takes ~2 s
            // each under TCG: the writebacks go on in a process of their own.
            let null = open("/dev/null", O_RDWR | O_CLOEXEC)
            defer { if null >= 0 { close(null) } }
            let variables = environment.merging([detachedVariable: pod ?? arguments.id]) { $1 }
            let pid = try Spawn.run(Spawn.executablePath(), Array(CommandLine.arguments.dropFirst()),
                                    environment: variables.map { "\($0.key)=\($0.value)" },
                                    descriptors: [(null, 0), (null, 1), (null, 2)], newSession: true)
            logger.info("delete: the writable layers are written back by process \(pid)")
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
    /// a `delete` 5 s, and the deletes of a pod's tasks run at once: one at a time holds the
    /// state directory's lock (a `delete` that finds it taken leaves the work to its holder),
    /// and each goes on where the one before stopped.
    /// With `deferWritebacks`, stops before the first writeback and returns whether one is
    /// due (the state stays for whoever finishes).
    @discardableResult
    static func cleanup(paths: ShimPaths, configuration: QemuboxConfiguration, logger: Logger,
                        deferWritebacks: Bool = false) async throws -> Bool {
        guard FileManager.default.fileExists(atPath: paths.stateDirectory) else {
            unlink(paths.socket)
            return false
        }
        let lock = open(paths.stateDirectory + "/cleanup.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { if lock >= 0 { close(lock) } }
        if lock >= 0 {
            if deferWritebacks {
                // containerd's `delete`: someone else (another task's delete, or the writebacks
                // of one) is at it already and does it all; this one must answer in time.
                guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
                    logger.info("delete: another cleanup of \(paths.stateDirectory) is under way")
                    return false
                }
            } else {
                while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
            }
        }
        // The turn before may have finished everything.
        guard FileManager.default.fileExists(atPath: paths.recordFile)
            || FileManager.default.fileExists(atPath: paths.vmDirectory) else {
            removeState(paths)
            return false
        }
        if let pid = QemuboxShim.servingDaemon(paths), pid != getpid() {
            kill(pid, SIGKILL)
        }
        var record = ShimRecord.read(from: paths)
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
        if deferWritebacks, let record, record.pendingWritebacks {
            return true
        }
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
        return false
    }

    /// Removes the state directory and, if empty, its namespace directory.
    static func removeState(_ paths: ShimPaths) {
        unlink(paths.socket)
        // A task that ran in a spare VM: its VM's directory is the spare's, whose process is gone.
        if let spare = ShimRecord.read(from: paths)?.spareDirectory,
           ((spare as NSString).deletingLastPathComponent as NSString).lastPathComponent == ShimSpare.rootName,
           ShimSpare.state(of: spare) == .dead {
            try? FileManager.default.removeItem(atPath: spare)
        }
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
                                     shape: VMShape(vcpus: 1, memoryMiB: configuration.memoryMiB))
            await Pod.rescueWriteBack(scratchImage: scratchImage, into: target, policy: policy, configuration: rescue)
        } catch {
            logger.error("writing the writable layer back into \(target.directory) failed: \(error)")
        }
    }
}
