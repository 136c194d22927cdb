import CQemuboxSupport
import Foundation
import NIOConcurrencyHelpers

/// Starts child processes that die with their owner.
///
/// The child gets `PR_SET_PDEATHSIG(SIGKILL)` between fork and exec. Linux sends
/// that signal when the *thread* that forked exits, not the process, and Swift's
/// cooperative threads may come and go; so every fork happens on one dedicated
/// thread that lives as long as the process.
final class ProcessSpawner: @unchecked Sendable {
    /// What to start.
    struct Request: Sendable {
        var path: String
        var arguments: [String]
        var environment: [String]
        /// (source descriptor in this process, number in the child); 0, 1 and 2 must be included.
        var descriptors: [(source: Int32, target: Int32)]
        /// A network namespace to join (an open `/run/netns/NAME`), or nil.
        var networkNamespace: Int32?
        /// Without `networkNamespace`: a new, empty network namespace for the child.
        var newNetworkNamespace = false
        /// TAPs the child creates in its network namespace and gets as descriptors.
        var taps: [Tap] = []
        /// Confinement entered after the descriptors are installed; nil: none.
        var jail: JailSpec?
    }

    /// A TAP created by the child, in its network namespace.
    struct Tap: Sendable {
        var name: String
        /// Its descriptor number in the child.
        var target: Int32
        var vnetHeader: Bool
        /// Where `/dev/vhost-net` goes in the child, if wanted.
        var vhostTarget: Int32?
    }

    /// The child's jail, as ``QEMUJail`` plans it.
    struct JailSpec: Sendable {
        enum StepKind: Int32, Sendable {
            case directory = 1, bindDirectory = 2, bindFile = 3, symlink = 4, tmpfs = 5
        }
        struct Step: Sendable, Hashable {
            var kind: StepKind
            var readOnly = false, noSuid = true, noDev = true, noExec = false
            /// Bind source or symlink target.
            var source = ""
            /// Full host path under the root.
            var target: String
            var mode: UInt32 = 0o755
        }
        /// An existing empty directory the root is built on.
        var root: String
        var steps: [Step]
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
        /// The compiled seccomp program; empty: none.
        var filter: SeccompProgram
    }

    static let shared = ProcessSpawner()

    private let condition = NSCondition()
    private var queue: [(Request, CheckedContinuation<pid_t, any Error>)] = []

    private init() {
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "qemubox-spawner"
        thread.start()
    }

    /// Forks and execs; returns the pid once exec succeeded.
    func spawn(_ request: Request) async throws -> pid_t {
        try await withCheckedThrowingContinuation { cont in
            condition.lock()
            queue.append((request, cont))
            condition.signal()
            condition.unlock()
        }
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let (request, cont) = queue.removeFirst()
            condition.unlock()
            cont.resume(with: Result { try Self.spawnNow(request) })
        }
    }

    private static func spawnNow(_ r: Request) throws -> pid_t {
        // Every C string the child reads lives until the fork returned (the arena frees them).
        let arena = CStringArena()
        var map: [Int32] = []
        for d in r.descriptors { map += [d.source, d.target] }
        let argv = arena.array([r.path] + r.arguments)
        let envp = arena.array(r.environment)
        let taps = r.taps.map {
            qbx_tap(name: arena.string($0.name), target: $0.target, vnet_hdr: $0.vnetHeader ? 1 : 0,
                    vhost_target: $0.vhostTarget ?? -1)
        }
        var pid: pid_t = 0
        var stage: Int32 = 0
        var index: Int32 = 0
        let err: Int32 = map.withUnsafeBufferPointer { m in
            taps.withUnsafeBufferPointer { t in
                var request = qbx_spawn_request(
                    path: arena.string(r.path), argv: argv, envp: envp,
                    fd_map: m.baseAddress, fd_map_count: Int32(r.descriptors.count),
                    netns_fd: r.networkNamespace ?? -1,
                    new_netns: r.networkNamespace == nil && r.newNetworkNamespace ? 1 : 0,
                    death_signal: SIGKILL, taps: t.baseAddress, tap_count: Int32(t.count), jail: nil)
                guard let jail = r.jail else { return qbx_spawn(&request, &pid, &stage, &index) }
                let steps = jail.steps.map { s in
                    qbx_jail_step(kind: s.kind.rawValue,
                                  flags: (s.readOnly ? 1 : 0) | (s.noSuid ? 2 : 0) | (s.noDev ? 4 : 0) | (s.noExec ? 8 : 0),
                                  source: UnsafePointer(arena.string(s.source)), target: UnsafePointer(arena.string(s.target)),
                                  mode: s.mode)
                }
                return steps.withUnsafeBufferPointer { st in
                    jail.groups.withUnsafeBufferPointer { g in
                        jail.filter.withUnsafeBytes { f in
                            var cjail = qbx_jail(root: arena.string(jail.root), steps: st.baseAddress,
                                                 step_count: Int32(st.count), uid: jail.uid, gid: jail.gid,
                                                 groups: g.baseAddress, group_count: Int32(g.count),
                                                 filter: f.baseAddress, filter_count: Int32(jail.filter.count))
                            return withUnsafePointer(to: &cjail) { j in
                                request.jail = j
                                return qbx_spawn(&request, &pid, &stage, &index)
                            }
                        }
                    }
                }
            }
        }
        if err != 0 {
            let reason = String(cString: strerror(err))
            throw QemuboxError(.spawnFailed, "\(r.path): \(Self.describe(stage: stage, index: Int(index), r)): \(reason) (errno \(err))")
        }
        return pid
    }

    /// Names where a child failed, from `qbx_spawn`'s stage and index.
    private static func describe(stage: Int32, index: Int, _ r: Request) -> String {
        switch Int(stage) {
        case Int(QBX_STAGE_NETNS): return "entering its network namespace"
        case Int(QBX_STAGE_TAP): return "creating TAP \(r.taps.indices.contains(index) ? r.taps[index].name : "#\(index)")"
        case Int(QBX_STAGE_VHOST): return "opening /dev/vhost-net"
        case Int(QBX_STAGE_FDS): return "installing descriptors"
        case Int(QBX_STAGE_UNSHARE): return "jail: new mount namespace"
        case Int(QBX_STAGE_ROOT): return "jail: root tmpfs on \(r.jail?.root ?? "?")"
        case Int(QBX_STAGE_STEP):
            guard let steps = r.jail?.steps, steps.indices.contains(index) else { return "jail: step \(index)" }
            let s = steps[index]
            return "jail: \(s.kind) \(s.source.isEmpty ? "" : s.source + " → ")\(s.target)"
        case Int(QBX_STAGE_PIVOT): return "jail: pivot_root"
        case Int(QBX_STAGE_IDENTITY): return "jail: dropping to uid \(r.jail?.uid ?? 0) without capabilities"
        case Int(QBX_STAGE_DEATHSIG): return "setting the parent-death signal"
        case Int(QBX_STAGE_SECCOMP): return "jail: loading the seccomp filter"
        case Int(QBX_STAGE_EXEC): return "exec"
        default: return "fork"
        }
    }
}

/// C strings that live as long as the arena.
private final class CStringArena {
    private var pointers: [UnsafeMutablePointer<CChar>] = []
    private var arrays: [UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>] = []

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        // strdup fails only without memory, where nothing else can go on either.
        guard let p = strdup(s) else { fatalError("out of memory") }
        pointers.append(p)
        return p
    }

    /// A NULL-terminated array of strings.
    func array(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let a = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
        for (i, s) in strings.enumerated() { a[i] = string(s) }
        a[strings.count] = nil
        arrays.append(a)
        return a
    }

    deinit {
        for p in pointers { free(p) }
        for a in arrays { a.deallocate() }
    }
}

/// How a child process ended, from `waitpid`.
public enum ProcessTermination: Sendable, Hashable, CustomStringConvertible {
    /// `exit(status)`.
    case exited(Int32)
    /// Killed by a signal.
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let s): "exited with status \(s)"
        case .signaled(let s): "killed by signal \(s)"
        }
    }
}

/// A started child: reaped by a waiter thread as soon as it exits (no zombie),
/// signalled only while it is known not to be reaped (no pid reuse race).
final class ChildProcess: Sendable {
    let pid: pid_t
    private struct State {
        var termination: ProcessTermination?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<ProcessTermination?, Never>] = [:]
    }
    private let state = NIOLockedValueBox(State())

    init(pid: pid_t) {
        self.pid = pid
        let thread = Thread { [self] in self.reap() }
        thread.name = "qemubox-reaper"
        thread.start()
    }

    private func reap() {
        var status: Int32 = 0
        var r: pid_t
        repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
        let t: ProcessTermination
        if r < 0 {
            t = .exited(-1)
        } else if status & 0x7f == 0 {
            t = .exited((status >> 8) & 0xff)
        } else {
            t = .signaled(status & 0x7f)
        }
        let waiters = state.withLockedValue { s -> [CheckedContinuation<ProcessTermination?, Never>] in
            s.termination = t
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume(returning: t) }
    }

    /// The termination, if the process has been reaped.
    var termination: ProcessTermination? { state.withLockedValue { $0.termination } }

    /// Waits for the process to end.
    func wait() async -> ProcessTermination {
        // Without a timeout the continuation is only ever resumed by the reaper.
        await wait(timeout: nil) ?? .exited(-1)
    }

    /// Waits at most `timeout`; nil if still running then.
    func wait(timeout: Duration?) async -> ProcessTermination? {
        await withCheckedContinuation { (c: CheckedContinuation<ProcessTermination?, Never>) in
            let registered = state.withLockedValue { s -> Int? in
                if s.termination != nil { return nil }
                let id = s.nextWaiter
                s.nextWaiter += 1
                s.waiters[id] = c
                return id
            }
            guard let id = registered else {
                c.resume(returning: termination)
                return
            }
            guard let timeout else { return }
            Task { [state] in
                try? await Task.sleep(for: timeout)
                let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(returning: nil)
            }
        }
    }

    /// Sends `signal` unless the process was already reaped. Returns whether it was sent.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        state.withLockedValue { s in
            guard s.termination == nil else { return false }
            return kill(pid, signal) == 0
        }
    }
}
