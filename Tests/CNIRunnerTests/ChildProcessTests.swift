import Foundation
import Testing
import TestSupport
@testable import CNIRunner

/// ``ChildProcess``'s retry of a spawn that fails with ETXTBSY.
@Suite("ChildProcess retries ETXTBSY")
struct ChildProcessTests {
    /// A thread-safe counter the retry hook (called on the worker thread) bumps.
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        @discardableResult func increment() -> Int { lock.withLock { count += 1; return count } }
    }

    static func quick(attempts: Int, willRetry: (@Sendable (Int) -> Void)? = nil) -> ChildProcess.BusyRetry {
        ChildProcess.BusyRetry(attempts: attempts, firstDelay: .milliseconds(1), maximumDelay: .milliseconds(5), willRetry: willRetry)
    }

    @Test func backoffSchedule() {
        let standard = ChildProcess.BusyRetry.standard
        let delays = (1..<standard.attempts).map { standard.delay(after: $0) }
        #expect(delays == [5, 10, 20, 40, 80, 160, 200, 200, 200, 200, 200].map { .milliseconds($0) })
        let total = delays.reduce(Duration.zero, +)
        #expect(total < .seconds(2), "bounded: \(total)")
    }

    @Test func onlyTextFileBusyIsRetried() {
        let calls = Counter(), retries = Counter()
        var busy = 2
        let spawned = ChildProcess.spawnRetryingBusy(Self.quick(attempts: 5) { _ in retries.increment() }, isStopped: { false }) {
            calls.increment()
            if busy > 0 { busy -= 1; return .failure(.init(errno: ETXTBSY)) }
            return .success(42)
        }
        #expect(spawned?.outcome == .success(42))
        #expect(spawned?.attempts == 3 && calls.value == 3 && retries.value == 2)

        let missing = ChildProcess.spawnRetryingBusy(Self.quick(attempts: 5), isStopped: { false }) {
            calls.increment()
            return .failure(.init(errno: ENOENT))
        }
        #expect(missing?.outcome == .failure(.init(errno: ENOENT)))
        #expect(missing?.attempts == 1 && calls.value == 4, "ENOENT is not retried")

        let stuck = ChildProcess.spawnRetryingBusy(Self.quick(attempts: 4), isStopped: { false }) {
            calls.increment()
            return .failure(.init(errno: ETXTBSY))
        }
        #expect(stuck?.outcome == .failure(.init(errno: ETXTBSY)))
        #expect(stuck?.attempts == 4 && calls.value == 8, "gives up after the bounded number of attempts")

        let stopped = ChildProcess.spawnRetryingBusy(Self.quick(attempts: 100), isStopped: { true }) {
            calls.increment()
            return .failure(.init(errno: ETXTBSY))
        }
        #expect(stopped == nil && calls.value == 9, "a stop request ends the retries")
    }

    /// A script and a descriptor holding it open for writing, so exec of it gets ETXTBSY
    /// for as long as the descriptor is open.
    static func withBusyScript<T>(_ body: (_ path: String, _ writer: Int32) async throws -> T) async throws -> T {
        let directory = try CNIFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/busy"
        try CNIFixture.writeScript(path, "echo ok\n")
        let writer = open(path, O_WRONLY | O_CLOEXEC)
        try #require(writer >= 0)
        return try await body(path, writer)
    }

    @Test func busyExecutableRunsOnceItIsClosed() async throws {
        try await Self.withBusyScript { path, writer in
            let retries = Counter()
            // The first attempt is certain to fail (the descriptor is open); the hook closes it.
            // Later attempts may still fail for a while: a child another test is spawning
            // can hold a copy of the descriptor until its exec, which on a loaded machine
            // takes well over 10 ms. Hence a budget like the standard one (about 2 s here).
            let retry = ChildProcess.BusyRetry(attempts: 200, firstDelay: .milliseconds(1), maximumDelay: .milliseconds(10)) { _ in
                if retries.increment() == 1 { close(writer) }
            }
            let output = try await ChildProcess.run(executable: path, arguments: [], environment: [], input: Data(),
                                                    timeout: .seconds(20), busyRetry: retry)
            #expect(output.succeeded)
            #expect(String(decoding: output.stdout, as: UTF8.self) == "ok\n")
            #expect(retries.value >= 1)
        }
    }

    @Test func executableBusyForTooLongIsASystemError() async throws {
        try await Self.withBusyScript { path, writer in
            defer { close(writer) }
            let error = await #expect(throws: CNIError.self) {
                try await ChildProcess.run(executable: path, arguments: [], environment: [], input: Data(),
                                           timeout: .seconds(20), busyRetry: Self.quick(attempts: 3))
            }
            #expect(error?.code == .system)
            #expect(error?.message.contains("Text file busy (3 attempts)") == true, "\(error?.message ?? "")")
        }
    }

    @Test func cancellationEndsTheRetries() async throws {
        try await Self.withBusyScript { path, writer in
            defer { close(writer) }
            let retries = Counter()
            let retry = ChildProcess.BusyRetry(attempts: 1_000_000, firstDelay: .milliseconds(1), maximumDelay: .milliseconds(20)) { _ in
                retries.increment()
            }
            let task = Task {
                try await ChildProcess.run(executable: path, arguments: [], environment: [], input: Data(),
                                           timeout: .seconds(60), busyRetry: retry)
            }
            #expect(await eventually(timeout: .seconds(20)) { retries.value >= 1 })
            task.cancel()
            let output = try await task.value
            #expect(output.stopReason == .cancelled)
            #expect(output.exitStatus == nil)
        }
    }
}
