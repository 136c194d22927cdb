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
        var map: [Int32] = []
        for d in r.descriptors { map += [d.source, d.target] }
        let argv = [r.path] + r.arguments
        var pid: pid_t = 0
        let err = withCStrings(argv) { cargv in
            withCStrings(r.environment) { cenv in
                map.withUnsafeBufferPointer { m in
                    qbx_spawn(r.path, cargv, cenv, m.baseAddress, Int32(r.descriptors.count),
                              r.networkNamespace ?? -1, r.newNetworkNamespace ? 1 : 0, SIGKILL, &pid)
                }
            }
        }
        if err != 0 {
            throw QemuboxError(.spawnFailed, "\(r.path): \(String(cString: strerror(err))) (errno \(err))")
        }
        return pid
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { buffer in
        // Never empty (the terminating nil), so the base address exists.
        guard let base = buffer.baseAddress else { preconditionFailure("empty argv") }
        return body(base)
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
