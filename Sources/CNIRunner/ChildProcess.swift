import Foundation
import ProcessSpawn
#if canImport(Glibc)
import Glibc
#endif

/// Runs one short-lived child process (a CNI plugin, `ip`, `tc`) on a dedicated thread:
/// feeds stdin, collects bounded stdout/stderr, kills the whole process group on timeout,
/// on cancellation of the calling task, or when stdout exceeds its limit.
///
/// Nothing here blocks Swift's cooperative pool: the spawn, the poll loop and the wait run on
/// a thread of their own, bridged with a continuation.
enum ChildProcess {
    /// How a run ended.
    struct Output: Sendable {
        /// The exit status, when the process exited.
        var exitStatus: Int32?
        /// The signal that ended it, when it was killed.
        var signal: Int32?
        /// Standard output (at most the limit).
        var stdout = Data()
        /// The tail of standard error (at most the limit).
        var stderr = Data()
        /// Why the runner stopped the process, if it did.
        var stopReason: StopReason?

        var succeeded: Bool { exitStatus == 0 && stopReason == nil }

        /// The tail of stderr as text, trimmed, for error messages.
        var stderrText: String {
            String(decoding: stderr.suffix(2048), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// "exit status 3" / "killed by signal 9".
        var statusText: String {
            if let exitStatus { return "exit status \(exitStatus)" }
            if let signal { return "killed by signal \(signal)" }
            return "unknown status"
        }
    }

    /// Why the runner ended a process early.
    enum StopReason: Sendable, Equatable {
        case timeout, cancelled, outputTooLarge
    }

    /// Runs `executable` (an absolute path) with `arguments` (argv[1...]) and `environment`
    /// ("K=V" strings), writing `input` to its stdin. A spawn failing with ETXTBSY is retried
    /// as `busyRetry` says; `timeout` counts from the successful spawn.
    static func run(executable: String, arguments: [String], environment: [String], input: Data,
                    timeout: Duration, stdoutLimit: Int = 1 << 20, stderrLimit: Int = 64 << 10,
                    busyRetry: BusyRetry = .standard) async throws -> Output {
        let control = Control()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Output, any Error>) in
                let thread = Thread {
                    continuation.resume(with: Result {
                        try runBlocking(executable: executable, arguments: arguments, environment: environment, input: input,
                                        timeout: timeout, stdoutLimit: stdoutLimit, stderrLimit: stderrLimit,
                                        busyRetry: busyRetry, control: control)
                    })
                }
                thread.name = "cni-child"
                thread.start()
            }
        } onCancel: {
            control.stop(.cancelled)
        }
    }

    /// How often, and how patiently, a spawn that failed with ETXTBSY ("Text file busy") is
    /// retried. exec refuses a file that some process holds open for writing: a plugin binary
    /// being replaced in place (`cp`, `install` over it) during an upgrade, or a file this
    /// process has just written while another thread spawned a child (which then holds a copy
    /// of the write descriptor until it execs). Both last moments, so a few retries with
    /// exponential backoff turn them into a short delay instead of a failure.
    struct BusyRetry: Sendable {
        /// Spawn attempts in all (1: no retry).
        var attempts: Int
        /// The wait before the first retry; doubled for each further one.
        var firstDelay: Duration
        /// The longest wait between two attempts.
        var maximumDelay: Duration
        /// Called on the worker thread before each wait, with the attempt that failed (1...).
        /// For tests.
        var willRetry: (@Sendable (_ failedAttempt: Int) -> Void)?

        /// 12 attempts, 5 ms doubling up to 200 ms: about 1.3 s of waiting at most. (On a loaded
        /// machine a child another thread spawned can sit between fork and exec, holding its
        /// copy of a write descriptor, for well over 10 ms.)
        static let standard = BusyRetry(attempts: 12, firstDelay: .milliseconds(5), maximumDelay: .milliseconds(200))

        /// The wait after failed attempt `attempt` (1...).
        func delay(after attempt: Int) -> Duration {
            var delay = firstDelay
            for _ in 1..<max(attempt, 1) where delay < maximumDelay { delay *= 2 }
            return min(delay, maximumDelay)
        }
    }

    /// The result of one spawn: a pid, or the errno it failed with.
    typealias SpawnOutcome = Result<pid_t, SpawnFailure>

    struct SpawnFailure: Error, Equatable {
        var errno: Int32
    }

    /// Calls `spawnOnce` until it succeeds, fails with something other than ETXTBSY, or
    /// `retry.attempts` are used up; waits ``BusyRetry/delay(after:)`` between attempts.
    /// Returns nil when `isStopped` turns true while waiting (the caller was cancelled).
    static func spawnRetryingBusy(_ retry: BusyRetry, isStopped: () -> Bool,
                                  _ spawnOnce: () -> SpawnOutcome) -> (outcome: SpawnOutcome, attempts: Int)? {
        var attempt = 1
        while true {
            let outcome = spawnOnce()
            guard case .failure(let failure) = outcome, failure.errno == ETXTBSY, attempt < retry.attempts else {
                return (outcome, attempt)
            }
            retry.willRetry?(attempt)
            if isStopped() { return nil }
            let delay = retry.delay(after: attempt)
            var wait = timespec(tv_sec: Int(delay.components.seconds), tv_nsec: Int(delay.components.attoseconds / 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&wait, &remaining) != 0, errno == EINTR { wait = remaining }
            if isStopped() { return nil }
            attempt += 1
        }
    }

    /// Shared between the worker thread, the timeout timer and the cancellation handler.
    final class Control: @unchecked Sendable {
        private let lock = NSLock()
        private var pid: pid_t = 0
        private var reaped = false
        private var wakeFD: Int32 = -1
        private(set) var reason: StopReason?

        /// Records the running child and the descriptor that wakes the poll loop; kills the
        /// child at once if a stop was requested before it existed.
        func started(pid: pid_t, wakeFD: Int32) {
            lock.lock()
            defer { lock.unlock() }
            self.pid = pid
            self.wakeFD = wakeFD
            if reason != nil { killLocked() }
        }

        /// Kills the process group (unless already reaped) and wakes the poll loop.
        func stop(_ why: StopReason) {
            lock.lock()
            defer { lock.unlock() }
            if reason == nil { reason = why }
            killLocked()
        }

        /// Called once the child has exited but before it is reaped, so its pid (and
        /// process group id) cannot have been reused when ``stop(_:)`` signals it.
        func exited() {
            lock.lock()
            reaped = true
            wakeFD = -1
            lock.unlock()
        }

        var stopReason: StopReason? {
            lock.lock()
            defer { lock.unlock() }
            return reason
        }

        private func killLocked() {
            guard pid > 0, !reaped else { return }
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            if wakeFD >= 0 {
                var byte: UInt8 = 1
                _ = write(wakeFD, &byte, 1)
            }
        }
    }

    private static func runBlocking(executable: String, arguments: [String], environment: [String], input: Data,
                                    timeout: Duration, stdoutLimit: Int, stderrLimit: Int, busyRetry: BusyRetry,
                                    control: Control) throws -> Output {
        // A write to a plugin that exited without reading stdin must give EPIPE, not kill the
        // process: block SIGPIPE on this (short-lived) thread only.
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)

        let stdinPipe = try makePipe(), stdoutPipe = try makePipe(), stderrPipe = try makePipe(), wakePipe = try makePipe()
        var parentFDs = [stdinPipe.write, stdoutPipe.read, stderrPipe.read, wakePipe.read, wakePipe.write]
        var childFDs = [stdinPipe.read, stdoutPipe.write, stderrPipe.write]
        defer { for fd in parentFDs + childFDs where fd >= 0 { close(fd) } }

        guard let spawned = spawnRetryingBusy(busyRetry, isStopped: { control.stopReason != nil }, {
            spawn(executable: executable, arguments: arguments, environment: environment,
                  stdin: stdinPipe.read, stdout: stdoutPipe.write, stderr: stderrPipe.write)
        }) else {
            return Output(stopReason: control.stopReason)
        }
        let pid: pid_t
        switch spawned.outcome {
        case .success(let child):
            pid = child
        case .failure(let failure):
            let tries = spawned.attempts > 1 ? " (\(spawned.attempts) attempts)" : ""
            throw CNIError(.system, "cannot execute \(executable): \(String(cString: strerror(failure.errno)))\(tries)")
        }
        for fd in childFDs { close(fd) }
        childFDs = []
        control.started(pid: pid, wakeFD: wakePipe.write)

        let timer = DispatchWorkItem { control.stop(.timeout) }
        let nanoseconds = timeout.components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = nanoseconds.overflow ? Int64.max : nanoseconds.partialValue &+ timeout.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: total)), execute: timer)
        defer { timer.cancel() }

        var output = Output()
        var stdinFD = stdinPipe.write
        _ = fcntl(stdinFD, F_SETFL, fcntl(stdinFD, F_GETFL) | O_NONBLOCK)
        var written = 0
        if input.isEmpty {
            close(stdinFD)
            stdinFD = -1
        }
        var outOpen = true, errOpen = true
        var buffer = [UInt8](repeating: 0, count: 65536)
        loop: while outOpen || errOpen {
            var fds = [pollfd(fd: stdoutPipe.read, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stderrPipe.read, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)]
            if !outOpen { fds[0].fd = -1 }
            if !errOpen { fds[1].fd = -1 }
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                control.stop(.cancelled)
                break
            }
            if fds[2].revents != 0 { break loop }
            if stdinFD >= 0, fds[3].revents != 0 {
                let count = input.withUnsafeBytes { raw -> Int in
                    guard let base = raw.baseAddress else { return 0 }
                    return write(stdinFD, base + written, min(raw.count - written, 65536))
                }
                if count > 0 { written += count }
                if written >= input.count || (count < 0 && errno != EAGAIN && errno != EINTR) {
                    close(stdinFD)
                    stdinFD = -1
                }
            }
            if outOpen, fds[0].revents != 0 {
                let count = read(stdoutPipe.read, &buffer, buffer.count)
                if count > 0 {
                    output.stdout.append(contentsOf: buffer[0..<count])
                    if output.stdout.count > stdoutLimit {
                        output.stdout = output.stdout.prefix(stdoutLimit)
                        control.stop(.outputTooLarge)
                        break loop
                    }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    outOpen = false
                }
            }
            if errOpen, fds[1].revents != 0 {
                let count = read(stderrPipe.read, &buffer, buffer.count)
                if count > 0 {
                    output.stderr.append(contentsOf: buffer[0..<count])
                    if output.stderr.count > 2 * stderrLimit { output.stderr = Data(output.stderr.suffix(stderrLimit)) }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    errOpen = false
                }
            }
        }
        if stdinFD >= 0 { close(stdinFD) }
        parentFDs.removeAll { $0 == stdinPipe.write }
        if output.stderr.count > stderrLimit { output.stderr = Data(output.stderr.suffix(stderrLimit)) }

        // Wait without reaping, mark it exited, then reap: the group is never signalled
        // after its id could be reused.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0, errno == EINTR {}
        control.exited()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        if status & 0x7F == 0 {
            output.exitStatus = (status >> 8) & 0xFF
        } else {
            output.signal = status & 0x7F
        }
        output.stopReason = control.stopReason
        return output
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        if let pipe2 = LibC.pipe2 {
            guard pipe2(&fds, O_CLOEXEC) == 0 else {
                throw CNIError(.system, "pipe2: \(String(cString: strerror(errno)))")
            }
        } else {
            guard pipe(&fds) == 0 else {
                throw CNIError(.system, "pipe: \(String(cString: strerror(errno)))")
            }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        return (fds[0], fds[1])
    }

    /// One spawn through ProcessSpawn (every descriptor but 0, 1 and 2 closed on exec, default
    /// signal dispositions, a session and process group of its own so the whole group can be
    /// killed, and SIGKILL if this process dies).
    private static func spawn(executable: String, arguments: [String], environment: [String],
                              stdin: Int32, stdout: Int32, stderr: Int32) -> SpawnOutcome {
        do {
            return .success(try ProcessSpawner.shared.spawnBlocking(.init(
                path: executable, arguments: arguments, environment: environment,
                descriptors: [(source: stdin, target: Int32(0)), (source: stdout, target: Int32(1)), (source: stderr, target: Int32(2))],
                newSession: true, deathSignal: SIGKILL)))
        } catch let error as SpawnError {
            return .failure(SpawnFailure(errno: error.errno ?? EIO))
        } catch {
            return .failure(SpawnFailure(errno: EIO))
        }
    }
}

/// glibc functions the Glibc module does not export (they are declared under _GNU_SOURCE),
/// looked up at run time.
enum LibC {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

    /// `pipe2(2)` (glibc 2.9).
    static let pipe2: Pipe2? = symbol("pipe2").map { unsafeBitCast($0, to: Pipe2.self) }

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)
    }
}
