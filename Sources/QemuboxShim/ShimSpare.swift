#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import OCISpec
import ProcessSpawn
import QemuboxKit

/// What a claimed spare process hands the shim daemon it becomes.
struct SpareHandoff: Sendable {
    /// The spare's started VM.
    var sandbox: Sandbox
    /// The spare's directory (`<state_dir>/.spares/<name>`), removed when the shim exits.
    var directory: String
    /// The claim's connection: the daemon's `ok` (or why not) goes there.
    var answer: Int32
}

/// Spare VMs (`warm_spares = N`): processes of this executable that each start a VM
/// ahead (restored from a template with warm start, like any container's) and wait for
/// a container. `start` claims one instead of launching a daemon: the spare process
/// becomes that container's shim, with the VM already its child, so nothing changes
/// hands but a socket path. Its first create uses the VM when the container fits it
/// (``Pod/adopt(spare:)``) and starts its own otherwise.
///
/// Each spare has a directory `<state_dir>/.spares/<name>` (0700) holding `lock`
/// (`flock`ed by the spare for its whole life: a directory whose lock is free belongs to
/// nobody), `claim.sock` (0600, root only) once its VM is ready, `claimed` once a
/// container took it, its VM's directory `vm` (the task's state directory links to it)
/// and `spare.log` (its log until claimed). A shim whose container was created tops the
/// pool up; a spare nobody claims within `warm_spare_idle_seconds` shuts down, as does one
/// whose template went stale or whose directory was removed.
enum ShimSpare {
    /// The hidden action of a spare process: `spare-vm DIR`, descriptor 3 its held lock.
    static let action = "spare-vm"
    static let rootName = ShimPaths.sparesDirectoryName
    static let claimSocket = "claim.sock"
    static let claimedMarker = ShimPaths.spareClaimedMarker
    static let lockName = "lock"
    static let logName = "spare.log"
    /// A claim: the daemon's arguments, the environment containerd gave `start`, the bundle,
    /// and which shim executable claims (``executableIdentity()``).
    struct Claim: Codable, Sendable {
        var arguments: [String]
        var environment: [String: String]
        var bundle: String
        var executable: String?
    }

    /// This process's executable as `DEVICE:INODE:MTIME` (`/proc/self/exe`): a spare started
    /// by a shim binary that has since been replaced (an upgrade) refuses claims from the new one.
    static func executableIdentity() -> String? {
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return nil }
        return "\(st.st_dev):\(st.st_ino):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    static func root(_ configuration: QemuboxConfiguration) -> String {
        configuration.stateDirectory + "/" + rootName
    }

    // MARK: claiming (in `start`)

    /// Whether a container with `spec` could run in a spare at all: not a CRI pod's app
    /// container (it joins its sandbox's VM; a sandbox may take a spare), no namespace but
    /// the network one given by path (a spare's NICs move into that one), a network
    /// namespace at all (host networking gives a VM no NIC, a spare has them), `io.qemubox.*`
    /// annotations the host accepts, warm start not refused. The rest (size, kernel
    /// arguments, shares, how many interfaces) is checked at create, where a spare that does
    /// not fit is discarded.
    static func mayClaim(_ spec: RuntimeSpec, policy: AnnotationPolicy) -> Bool {
        let annotations = spec.annotations ?? [:]
        guard annotations[PodSpec.containerTypeAnnotation] == nil || PodSpec.isPodSandbox(spec),
              let options = try? ContainerOptions(annotations: annotations, policy: policy),
              options.warmStart != false else { return false }
        let namespaces = spec.linux?.namespaces ?? []
        return namespaces.contains { $0.type == .network }
            && !namespaces.contains { $0.type != .network && !($0.path ?? "").isEmpty }
    }

    /// Hands the task `daemon` describes to a ready spare; true once that spare serves it
    /// on `daemon.socket`. Spares that do not answer, or refuse, are skipped.
    static func claim(_ daemon: ShimArguments, environment: [String: String], bundle: String,
                      configuration: QemuboxConfiguration) -> Bool {
        let root = root(configuration)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return false }
        let request = Claim(arguments: daemon.daemonArguments(), environment: environment, bundle: bundle,
                            executable: executableIdentity())
        guard let json = try? JSONEncoder().encode(request) else { return false }
        let line = String(decoding: json, as: UTF8.self) + "\n"
        for name in names.shuffled() where !name.hasPrefix(".") {
            let path = root + "/" + name + "/" + claimSocket
            guard FileManager.default.fileExists(atPath: path),
                  let fd = try? UnixSocket.connect(to: path, receiveTimeout: .seconds(10)) else { continue }
            defer { close(fd) }
            guard UnixSocket.peerUID(fd) == geteuid(), UnixSocket.write(fd, line) else { continue }
            // A spare answers once it serves the task's socket (milliseconds); one that hangs is passed over.
            if UnixSocket.readLine(fd, limit: 4096, timeout: .seconds(10)) == "ok" { return true }
        }
        return false
    }

    // MARK: refilling (in a shim whose container was created)

    /// Starts spares until `warm_spares` are alive and unclaimed, and removes what dead
    /// spares left. One refill at a time per state root (others skip: it is under way).
    static func refill(configuration: QemuboxConfiguration, environment: [String: String], logger: Logger) async {
        let root = root(configuration)
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            logger.warning("spare VMs: cannot create \(root): \(error)")
            return
        }
        let refillLock = open(root + "/.refill.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard refillLock >= 0 else { return }
        defer { close(refillLock) }
        guard flock(refillLock, LOCK_EX | LOCK_NB) == 0 else { return }
        var ready = 0
        let failures = root + "/.failed"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where !name.hasPrefix(".") {
            let directory = root + "/" + name
            switch state(of: directory) {
            case .alive: ready += 1
            case .claimed: break
            case .dead:
                // A spare that ends by itself removes its directory: one left unclaimed failed —
                // if its process ran at all (it opens its log first); one without a log is what a
                // refiller killed before it started the process left.
                if !FileManager.default.fileExists(atPath: directory + "/" + claimedMarker),
                   FileManager.default.fileExists(atPath: directory + "/" + logName) {
                    _ = FileManager.default.createFile(atPath: failures, contents: nil)
                }
                await removeDead(directory, logger: logger)
            }
        }
        // After a failure, at most one new spare a minute (a broken setup must not cost every start).
        if let failed = (try? FileManager.default.attributesOfItem(atPath: failures))?[.modificationDate] as? Date,
           Date().timeIntervalSince(failed) < failureBackoffSeconds {
            logger.info("spare VMs: one failed within the last \(Int(failureBackoffSeconds)) s; starting none now")
            return
        }
        while ready < configuration.warmSpares {
            do {
                try await spawn(root: root, environment: environment)
                ready += 1
            } catch {
                logger.warning("spare VMs: \(error)")
                return
            }
        }
    }

    /// How long after a failed spare the refills start none.
    static let failureBackoffSeconds: TimeInterval = 60

    enum SpareState { case alive, claimed, dead }

    /// A spare is alive while its process holds the lock.
    static func state(of directory: String) -> SpareState {
        let fd = open(directory + "/" + lockName, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return .dead }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return .dead }
        return FileManager.default.fileExists(atPath: directory + "/" + claimedMarker) ? .claimed : .alive
    }

    /// What a spare that died left: its VM (killed if a QEMU of its record still runs) and directory.
    static func removeDead(_ directory: String, logger: Logger) async {
        if let log = try? String(contentsOfFile: directory + "/" + logName, encoding: .utf8), !log.isEmpty {
            logger.info("spare VMs: removing \(directory), its log ends: \(log.suffix(1024))")
        }
        _ = try? await VMStateRecord.cleanupStale(stateDirectory: directory + "/vm")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Makes a spare's directory, takes its lock and starts the spare process with it.
    static func spawn(root: String, environment: [String: String]) async throws {
        let name = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        let directory = root + "/" + name
        guard mkdir(directory, 0o700) == 0 else {
            throw ShimError(.internal, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let lock = open(directory + "/" + lockName, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if lock >= 0 { close(lock) }
            try? FileManager.default.removeItem(atPath: directory)
            throw ShimError(.internal, "cannot lock \(directory)/\(lockName)")
        }
        defer { close(lock) }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        do {
            let pid = try await ProcessSpawner.shared.spawn(.init(
                path: Spawn.executablePath(), arguments: [action, directory],
                environment: environment.map { "\($0.key)=\($0.value)" },
                descriptors: [(null, Int32(0)), (null, Int32(1)), (null, Int32(2)), (lock, Int32(3))], newSession: true, deathSignal: nil))
            _ = Subprocess(pid: pid)  // reaped if it exits while this process runs
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw ShimError(.internal, "cannot start a spare VM process: \(error)")
        }
    }
}
