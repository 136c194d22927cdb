#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

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
public final class Subprocess: Sendable {
    /// The child's pid (valid for signalling only through ``signal(_:)``).
    public let pid: pid_t
    private struct State {
        var termination: ProcessTermination?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<ProcessTermination?, Never>] = [:]
    }
    private let state = NIOLockedValueBox(State())

    /// Takes over reaping `pid`, a child of this process that nobody else waits for.
    public init(pid: pid_t) {
        self.pid = pid
        if !DetachedThread.start({ [self] in self.reap() }) {
            // No thread to spare: reap from a task (it blocks one pool thread until the exit).
            Task.detached { [self] in self.reap() }
        }
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
    public var termination: ProcessTermination? { state.withLockedValue { $0.termination } }

    /// Waits for the process to end.
    public func wait() async -> ProcessTermination {
        // Without a timeout the continuation is only ever resumed by the reaper.
        await wait(timeout: nil) ?? .exited(-1)
    }

    /// Waits at most `timeout`; nil if still running then.
    public func wait(timeout: Duration?) async -> ProcessTermination? {
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
    public func signal(_ signal: Int32) -> Bool {
        state.withLockedValue { s in
            guard s.termination == nil else { return false }
            return kill(pid, signal) == 0
        }
    }
}
