/// An async counting semaphore for tests that use scarce machine resources.
///
/// Swift Testing runs suites in parallel; a 2-core machine runs at most two
/// TCG virtual machines usefully at once. Every test that boots a VM wraps the
/// boot in `ConcurrencyLimit.vms.run { ... }`.
public actor ConcurrencyLimit {
    /// Shared limit for tests that boot QEMU (two at a time).
    public static let vms = ConcurrencyLimit(2)

    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Creates a limit admitting `limit` concurrent holders.
    public init(_ limit: Int) { available = limit }

    private func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            available += 1
        } else {
            waiters.removeFirst().resume()
        }
    }

    /// Runs `body` while holding one slot.
    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns
/// whether it held. For asynchronous effects (a peer noticing a closed socket)
/// on a loaded machine, where a fixed sleep would be flaky.
public func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
}
