#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QemuboxKit
import QemuboxShim

/// A VM the shim started and that is running now, as `qemubox ps` shows it.
public struct RunningVM: Codable, Sendable, Hashable {
    /// The task id containerd created it for (the state directory's name).
    public var id: String
    /// The containerd namespace.
    public var namespace: String
    /// QEMU's pid (verified: start time and `-name` marker match the VM's record).
    public var pid: Int32
    /// The shim's pid from its record (nil when the record is missing or unreadable).
    public var shimPid: Int32?
    /// The shim's ttrpc socket from its record (nil as `shimPid`, or when it lies outside
    /// `state_dir/s/`).
    public var shimSocket: String?
    /// vCPUs online: after a resize the shim's ``VMResourcesRecord``, else QEMU's `-smp`.
    public var vcpus: Int?
    /// Guest memory in MiB: after a resize the shim's record, else QEMU's `-m`.
    public var memoryMiB: Int?
    /// Seconds since QEMU started.
    public var uptimeSeconds: Double
    /// `kvm` or `tcg` (QEMU's `-accel`).
    public var accelerator: String?
    /// The VM's directory (QEMU's record, console log, QEMU's stderr).
    public var directory: String
}

/// Finds the running VMs under a state directory: `<state_dir>/<namespace>/<id>/shim.json`
/// (the shim's ``ShimRecord``) and `<…>/vm/qemu.json` (QEMU's ``VMStateRecord``).
///
/// Every file there may be stale (a VM that died, a shim killed before it cleaned up) or
/// malformed: such entries are skipped with a warning, never trusted. A VM counts as running
/// only when its recorded pid still has the recorded start time and `-name` marker.
public struct VMInventory: Sendable {
    /// The shims' state root (`state_dir`).
    public var stateDirectory: String
    /// Root of procfs.
    public var procRoot: String

    /// What a scan found.
    public struct Scan: Sendable {
        /// The running VMs, sorted by namespace and id.
        public var vms: [RunningVM]
        /// Entries skipped, and why.
        public var warnings: [String]
    }

    /// Creates an inventory of `stateDirectory`.
    public init(stateDirectory: String, procRoot: String = "/proc") {
        self.stateDirectory = stateDirectory
        self.procRoot = procRoot
    }

    /// What ``taskDirectories()`` calls the namespace of a spare VM no container has taken.
    public static let spareNamespace = "(spare)"

    /// The state directory of every task: `(namespace, id, path)`, sorted; then every spare VM
    /// no container has taken yet (namespace ``spareNamespace``, the spare's name as id).
    /// `s/` holds the sockets; a task that took a spare links its `vm` into `.spares/`.
    public func taskDirectories() -> [(namespace: String, id: String, path: String)] {
        let fm = FileManager.default
        var found: [(String, String, String)] = []
        for namespace in ((try? fm.contentsOfDirectory(atPath: stateDirectory)) ?? []).sorted()
        where namespace != "s" && !namespace.hasPrefix(".") {
            let nsPath = stateDirectory + "/" + namespace
            guard Self.isDirectory(nsPath) else { continue }
            for name in ((try? fm.contentsOfDirectory(atPath: nsPath)) ?? []).sorted() {
                let path = nsPath + "/" + name
                guard Self.isDirectory(path) else { continue }
                // A long id's directory is a digest of it; its shim record names the id.
                let record = fm.contents(atPath: path + "/" + ShimRecord.fileName)
                    .flatMap { try? JSONDecoder().decode(ShimRecord.self, from: $0) }
                found.append((namespace, record?.id ?? name, path))
            }
        }
        let spares = stateDirectory + "/" + ShimPaths.sparesDirectoryName
        for name in ((try? fm.contentsOfDirectory(atPath: spares)) ?? []).sorted() where !name.hasPrefix(".") {
            let path = spares + "/" + name
            guard Self.isDirectory(path), !fm.fileExists(atPath: path + "/" + ShimPaths.spareClaimedMarker) else { continue }
            found.append((Self.spareNamespace, name, path))
        }
        return found
    }

    /// Scans the state directory.
    public func scan() -> Scan {
        var scan = Scan(vms: [], warnings: [])
        for task in taskDirectories() {
            let vmDirectory = task.path + "/vm"
            let record: VMStateRecord
            do {
                guard let found = try VMStateRecord.read(from: vmDirectory) else {
                    if let warning = Self.leftover(task) { scan.warnings.append(warning) }
                    continue
                }
                record = found
            } catch {
                scan.warnings.append("\(task.namespace)/\(task.id): skipped: \(Self.message(error))")
                continue
            }
            guard record.matchesLiveProcess(procRoot: procRoot) else {
                scan.warnings.append("\(task.namespace)/\(task.id): skipped: stale record, QEMU pid \(record.pid) "
                    + "is gone or is another process now")
                continue
            }
            var shimPid: Int32?
            var shimSocket: String?
            let shimFile = task.path + "/" + ShimRecord.fileName
            if let data = FileManager.default.contents(atPath: shimFile) {
                if let shim = try? JSONDecoder().decode(ShimRecord.self, from: data) {
                    shimPid = shim.shimPid
                    let sockets = stateDirectory + "/s/"
                    if shim.socket.hasPrefix(sockets), !shim.socket.dropFirst(sockets.count).contains("/") {
                        shimSocket = shim.socket
                    }
                } else {
                    scan.warnings.append("\(task.namespace)/\(task.id): \(shimFile) is malformed; shown without it")
                }
            }
            let arguments = Self.commandLine(of: record.pid, procRoot: procRoot)
            var resized: VMResourcesRecord?
            do {
                resized = try VMResourcesRecord.read(from: vmDirectory)
            } catch {
                scan.warnings.append("\(task.namespace)/\(task.id): \(Self.message(error)); showing the boot size")
            }
            scan.vms.append(RunningVM(
                id: task.id, namespace: task.namespace, pid: record.pid, shimPid: shimPid, shimSocket: shimSocket,
                vcpus: resized?.vcpus ?? Self.option("-smp", in: arguments).flatMap { Int($0.prefix { $0.isNumber }) },
                memoryMiB: resized?.memoryMiB ?? Self.option("-m", in: arguments).flatMap(Self.memoryMiB),
                uptimeSeconds: Self.uptime(startTicks: record.startTime, procRoot: procRoot) ?? 0,
                accelerator: Self.option("-accel", in: arguments).map { String($0.prefix { $0 != "," }) },
                directory: vmDirectory))
        }
        return scan
    }

    /// A warning for a task directory without a VM whose shim is gone too (nil while the shim
    /// runs: its VM is starting or stopped).
    static func leftover(_ task: (namespace: String, id: String, path: String)) -> String? {
        let file = task.path + "/" + ShimRecord.fileName
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        guard let shim = try? JSONDecoder().decode(ShimRecord.self, from: data) else {
            return "\(task.namespace)/\(task.id): skipped: \(file) is malformed"
        }
        guard kill(shim.shimPid, 0) != 0, errno == ESRCH else { return nil }
        return "\(task.namespace)/\(task.id): skipped: no VM and shim pid \(shim.shimPid) is gone "
            + "(leftover state; `ctr task delete` removes it)"
    }

    /// QEMU's argv.
    static func commandLine(of pid: Int32, procRoot: String) -> [String] {
        guard let raw = ProcFile.read("\(procRoot)/\(pid)/cmdline") else { return [] }
        return raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value after the first `name` in `arguments`.
    static func option(_ name: String, in arguments: [String]) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }

    /// MiB of a `-m` value: `256M`, `1G`, `256M,slots=4,maxmem=1024M`, `size=256M`, a bare MiB count.
    static func memoryMiB(_ value: String) -> Int? {
        var size = String(value.split(separator: ",").first ?? "")
        if size.hasPrefix("size=") { size.removeFirst(5) }
        guard let last = size.last else { return nil }
        if last.isNumber { return Int(size) }
        guard let amount = Int(size.dropLast()) else { return nil }
        switch last {
        case "M", "m": return amount
        case "G", "g": return amount * 1024
        case "T", "t": return amount * 1024 * 1024
        case "K", "k": return amount / 1024
        default: return nil
        }
    }

    /// Seconds since a process started (`starttime` is in clock ticks since boot).
    static func uptime(startTicks: UInt64, procRoot: String) -> Double? {
        guard let text = ProcFile.text(procRoot + "/uptime"),
              let since = text.split(separator: " ").first.flatMap({ Double($0) }) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard ticks > 0 else { return nil }
        return max(0, since - Double(startTicks) / ticks)
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func message(_ error: any Error) -> String {
        (error as? QemuboxError)?.message ?? "\(error)"
    }
}

extension VMInventory {
    /// The VM directory of task `id`: in `namespace` when given, else in the one namespace
    /// that has it.
    public func vmDirectory(id: String, namespace: String?) throws -> String {
        guard !id.isEmpty, !id.contains("/"), id != ".", id != ".." else {
            throw OperatorError(.usage, "\(id.isEmpty ? "an empty id" : id) is not a task id")
        }
        let matches = taskDirectories().filter { $0.id == id && (namespace == nil || $0.namespace == namespace) }
        guard let match = matches.first else {
            let scope = namespace.map { "namespace \($0) of " } ?? ""
            throw OperatorError(.notFound, "no task \(id) in \(scope)\(stateDirectory)")
        }
        guard matches.count == 1 else {
            throw OperatorError(.usage, "task \(id) exists in namespaces \(matches.map(\.namespace).joined(separator: ", ")); "
                + "pass --namespace")
        }
        let directory = match.path + "/vm"
        guard FileManager.default.fileExists(atPath: directory) else {
            throw OperatorError(.notFound, "task \(match.namespace)/\(id) has no VM directory (not started, or stopped)")
        }
        return directory
    }
}
