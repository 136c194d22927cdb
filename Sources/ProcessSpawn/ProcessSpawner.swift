import CProcessSpawn
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// The one way qemubox starts a process: fork and exec from one dedicated thread,
/// with an exact descriptor map, default signal dispositions, optionally a session of
/// its own, a parent-death signal, a network namespace to join or create, TAPs created
/// there, and a jail (``JailSpec``) entered before exec.
///
/// The parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread* that forked
/// exits, not the process, and Swift's cooperative threads may come and go; so every
/// fork happens on one thread that lives as long as the process. Nothing blocks the
/// caller's thread in ``spawn(_:)``: the caller awaits; ``spawnBlocking(_:)`` is for
/// code already on a thread of its own.
public final class ProcessSpawner: @unchecked Sendable {
    /// What to start.
    public struct Request: Sendable {
        /// Absolute path of the executable.
        public var path: String
        /// argv[1...].
        public var arguments: [String]
        /// `KEY=value` strings, the whole environment.
        public var environment: [String]
        /// (source descriptor in this process, number in the child); 0, 1 and 2 must be
        /// included. Every other descriptor is closed on exec.
        public var descriptors: [(source: Int32, target: Int32)]
        /// A network namespace to join (an open `/run/netns/NAME`), or nil.
        public var networkNamespace: Int32?
        /// Without `networkNamespace`: a new, empty network namespace for the child.
        public var newNetworkNamespace = false
        /// A session (and process group) of its own: signals to the owner's group miss it,
        /// and `kill(-pid, …)` reaches everything it starts.
        public var newSession = true
        /// Sent to the child when the owner exits (nil: it outlives the owner, e.g. a daemon).
        public var deathSignal: Int32? = SIGKILL
        /// The child (and what it executes, unless that resets its personality) gets the
        /// same address-space layout every time (`ADDR_NO_RANDOMIZE`). Under QEMU's TCG,
        /// code at the same addresses reuses earlier translations; see the guest agent.
        public var fixedAddressLayout = false
        /// TAPs the child creates in its network namespace and gets as descriptors.
        public var taps: [Tap] = []
        /// Confinement entered after the descriptors are installed; nil: none.
        public var jail: JailSpec?
        /// The child's nice value, set before it runs anything (nil: the spawning thread's,
        /// which in a Swift process depends on which thread that is).
        public var nice: Int32?

        /// Creates a request.
        public init(path: String, arguments: [String], environment: [String],
                    descriptors: [(source: Int32, target: Int32)], networkNamespace: Int32? = nil,
                    newNetworkNamespace: Bool = false, newSession: Bool = true, deathSignal: Int32? = SIGKILL,
                    taps: [Tap] = [], jail: JailSpec? = nil, nice: Int32? = nil) {
            self.path = path
            self.arguments = arguments
            self.environment = environment
            self.descriptors = descriptors
            self.networkNamespace = networkNamespace
            self.newNetworkNamespace = newNetworkNamespace
            self.newSession = newSession
            self.deathSignal = deathSignal
            self.nice = nice
            self.taps = taps
            self.jail = jail
        }
    }

    /// A TAP created by the child, in its network namespace.
    public struct Tap: Sendable, Hashable {
        /// Interface name (created if absent, attached if it exists).
        public var name: String
        /// Its descriptor number in the child.
        public var target: Int32
        /// `IFF_VNET_HDR`.
        public var vnetHeader: Bool
        /// Where `/dev/vhost-net` goes in the child, if wanted.
        public var vhostTarget: Int32?

        /// Creates a TAP request.
        public init(name: String, target: Int32, vnetHeader: Bool = true, vhostTarget: Int32? = nil) {
            self.name = name
            self.target = target
            self.vnetHeader = vnetHeader
            self.vhostTarget = vhostTarget
        }
    }

    /// The process-wide spawner.
    public static let shared = ProcessSpawner()

    /// Guards ``queue``; its value says whether the queue holds work, which the thread waits for.
    private let pending = ConditionLock(value: false)
    private var queue: [(Request, @Sendable (Result<pid_t, any Error>) -> Void)] = []

    private init() {
        // Without its thread nothing could ever be spawned: that is not recoverable.
        guard DetachedThread.start({ [unowned self] in self.run() }) else { fatalError("cannot start the spawner thread") }
    }

    /// Forks and execs; returns the pid once exec succeeded. The caller reaps it
    /// (``Subprocess`` does that for you).
    public func spawn(_ request: Request) async throws -> pid_t {
        try await withCheckedThrowingContinuation { cont in
            enqueue(request) { cont.resume(with: $0) }
        }
    }

    /// ``spawn(_:)`` for a caller on a thread of its own (never Swift's cooperative pool).
    public func spawnBlocking(_ request: Request) throws -> pid_t {
        let done = ConditionLock(value: false)
        let box = ResultBox()
        enqueue(request) { result in
            done.lock()
            box.result = result
            done.unlock(withValue: true)
        }
        done.lock(whenValue: true)
        let result = box.result
        done.unlock()
        guard let result else { throw SpawnError(.spawnFailed, "\(request.path): no result") }
        return try result.get()
    }

    private func enqueue(_ request: Request, _ completion: @escaping @Sendable (Result<pid_t, any Error>) -> Void) {
        pending.lock()
        queue.append((request, completion))
        pending.unlock(withValue: true)
    }

    private func run() {
        while true {
            pending.lock(whenValue: true)
            let (request, completion) = queue.removeFirst()
            pending.unlock(withValue: !queue.isEmpty)
            completion(Result { try Self.spawnNow(request) })
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
                    death_signal: r.deathSignal ?? 0, new_session: r.newSession ? 1 : 0,
                    no_address_randomization: r.fixedAddressLayout ? 1 : 0,
                    taps: t.baseAddress, tap_count: Int32(t.count), jail: nil,
                    set_nice: r.nice == nil ? 0 : 1, nice_value: r.nice ?? 0)
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
            throw SpawnError(.spawnFailed, "\(r.path): \(Self.describe(stage: stage, index: Int(index), r)): \(reason) (errno \(err))",
                             errno: err)
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

/// A spawn result handed to a blocked caller (written and read under its ConditionLock).
private final class ResultBox: @unchecked Sendable {
    var result: Result<pid_t, any Error>?
}
