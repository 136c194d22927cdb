import NIOConcurrencyHelpers

/// A one-shot signal many tasks can wait for, with an optional timeout.
final class Latch: Sendable {
    private struct State {
        var open = false
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var nextID = 0
    }
    private let state = NIOLockedValueBox(State())

    /// Whether ``open()`` was called.
    var isOpen: Bool { state.withLockedValue { $0.open } }

    /// Opens the latch, releasing every waiter (idempotent).
    func open() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Bool, Never>] in
            state.open = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Waits until the latch opens (true) or `timeout` passes (false).
    func wait(timeout: Duration? = nil) async -> Bool {
        let id = state.withLockedValue { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        let timer: Task<Void, Never>? = timeout.map { timeout in
            Task { [self] in
                try? await Task.sleep(for: timeout)
                let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(returning: false)
            }
        }
        defer { timer?.cancel() }
        return await withCheckedContinuation { continuation in
            let open = state.withLockedValue { state -> Bool in
                if state.open { return true }
                state.waiters[id] = continuation
                return false
            }
            if open { continuation.resume(returning: true) }
        }
    }
}
