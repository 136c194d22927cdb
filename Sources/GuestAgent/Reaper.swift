#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import Dispatch

/// Collects the exit status of every child of the agent (as PID 1 that is every
/// orphan of the guest too) with `waitpid(-1)` on a thread of its own, and hands
/// each status to whoever waits for that pid.
///
/// Statuses nobody waits for yet are kept (bounded), so a process that exits
/// before its waiter registers is not lost. Pids are reused, so every status
/// carries a sequence number and a waiter names the sequence from before the
/// process existed (``mark()`` before spawning): older statuses of the same pid
/// are ignored.
public final class Reaper: Sendable {
    /// The process-wide reaper (one `waitpid(-1)` loop per process).
    public static let shared = Reaper()

    /// Most statuses kept for pids nobody waits for (orphans' statuses).
    static let maxUnclaimed = 4096

    private struct Waiter {
        let since: UInt64
        let continuation: CheckedContinuation<Int32, Never>
    }

    private struct State {
        var sequence: UInt64 = 0
        var exited: [Int32: (sequence: UInt64, status: Int32)] = [:]
        var waiters: [Int32: Waiter] = [:]
        var started = false
    }

    private let state = NIOLockedValueBox(State())
    /// Value 1 when a child was spawned since the reaper last found none.
    private let spawned = SpawnSignal()

    init() {}

    /// Starts the reaping thread (idempotent).
    public func start() {
        let first = state.withLockedValue { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        PosixThread.start(name: "vminitd-reaper") { [self] in loop() }
    }

    /// The current sequence; pass it to ``wait(pid:since:)`` for a process
    /// spawned after this call.
    public func mark() -> UInt64 {
        state.withLockedValue { $0.sequence }
    }

    /// Tells the reaper that a child exists (wakes it when it found none).
    public func childSpawned() {
        spawned.signal()
    }

    /// The raw wait status of `pid`, once it exited after sequence `since`.
    public func wait(pid: Int32, since: UInt64) async -> Int32 {
        await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> Int32? in
                if let exited = state.exited[pid], exited.sequence > since {
                    state.exited[pid] = nil
                    return exited.status
                }
                state.waiters[pid] = Waiter(since: since, continuation: continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Records a reaped status (called by the loop; internal for tests).
    func deliver(pid: Int32, status: Int32) {
        let waiter = state.withLockedValue { state -> Waiter? in
            state.sequence += 1
            if let waiter = state.waiters.removeValue(forKey: pid) { return waiter }
            state.exited[pid] = (state.sequence, status)
            if state.exited.count > Self.maxUnclaimed,
               let oldest = state.exited.min(by: { $0.value.sequence < $1.value.sequence }) {
                state.exited[oldest.key] = nil
            }
            return nil
        }
        waiter?.continuation.resume(returning: status)
    }

    private func loop() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid > 0 {
                deliver(pid: pid, status: status)
            } else if errno == ECHILD {
                spawned.wait(seconds: 1)
            } else if errno != EINTR {
                usleep(10_000)
            }
        }
    }

    /// containerd's exit status for a raw wait status: the exit code, or 128+N
    /// for a process killed by signal N.
    public static func exitStatus(fromWaitStatus status: Int32) -> UInt32 {
        let signal = status & 0x7f
        if signal == 0 { return UInt32((status >> 8) & 0xff) }
        return 128 + UInt32(signal)
    }
}

/// A flag with a condition: set by spawners, awaited by the idle reaper.
private final class SpawnSignal: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)

    func signal() {
        semaphore.signal()
    }

    /// Returns when signalled (now or since the last wait) or after `seconds`;
    /// several signals before a wait count as one.
    func wait(seconds: Double) {
        _ = semaphore.wait(timeout: .now() + .nanoseconds(Int(seconds * 1_000_000_000)))
        while semaphore.wait(timeout: .now()) == .success {}
    }
}
