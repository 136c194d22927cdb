import Foundation
import NIOConcurrencyHelpers

/// The guest's serial console: drained continuously by its own thread (a serial
/// port that is not drained stalls the guest), written to a log file rotated at a
/// size limit, and kept as a bounded in-memory tail for readiness checks and exit
/// reports. Input can be written back to the guest.
final class ConsoleLog: Sendable {
    private struct State {
        var fd: Int32
        var tail: [UInt8] = []
        var logFD: Int32
        var logBytes = 0
        var finished = false
        var nextWaiter = 0
        var waiters: [Int: (needle: [UInt8], cont: CheckedContinuation<Bool, Never>)] = [:]
        /// Waiter ids whose timeout fired before they were registered.
        var expired: Set<Int> = []
    }

    private let state: NIOLockedValueBox<State>
    private let logPath: String
    private let settings: ConsoleSettings
    private let done = NIOLockedValueBox<[CheckedContinuation<Void, Never>]?>([])

    /// Takes ownership of `fd` (the host end of the console socket).
    init(fd: Int32, logPath: String, settings: ConsoleSettings) throws {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0o600)
        guard logFD >= 0 else {
            let e = errno
            close(fd)
            throw QemuboxError(.stateDirectory, "open \(logPath): \(String(cString: strerror(e)))")
        }
        self.state = NIOLockedValueBox(State(fd: fd, logFD: logFD))
        self.logPath = logPath
        self.settings = settings
        let thread = Thread { [self] in self.drain(fd) }
        thread.name = "qemubox-console"
        thread.start()
    }

    private func drain(_ fd: Int32) {
        var buf = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            append(buf[0..<n])
        }
        let waiters = state.withLockedValue { s -> [CheckedContinuation<Bool, Never>] in
            s.finished = true
            close(s.fd)
            s.fd = -1
            close(s.logFD)
            s.logFD = -1
            defer { s.waiters = [:] }
            return s.waiters.values.map(\.cont)
        }
        for w in waiters { w.resume(returning: false) }
        let finishers = done.withLockedValue { d -> [CheckedContinuation<Void, Never>] in
            defer { d = nil }
            return d ?? []
        }
        for f in finishers { f.resume() }
    }

    private func append(_ bytes: ArraySlice<UInt8>) {
        let matched = state.withLockedValue { s -> [CheckedContinuation<Bool, Never>] in
            var rest = bytes
            while !rest.isEmpty {
                if s.logBytes >= settings.maxLogBytes {
                    // Rotate: keep one previous generation, so at most twice the limit on disk.
                    if s.logFD >= 0 { close(s.logFD) }
                    rename(logPath, logPath + ".1")
                    s.logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0o600)
                    s.logBytes = 0
                }
                let piece = rest.prefix(settings.maxLogBytes - s.logBytes)
                if s.logFD >= 0 {
                    _ = piece.withUnsafeBytes { Glibc.write(s.logFD, $0.baseAddress, $0.count) }
                }
                s.logBytes += piece.count
                rest = rest.dropFirst(piece.count)
            }
            s.tail.append(contentsOf: bytes)
            if s.tail.count > settings.memoryTailBytes {
                s.tail.removeFirst(s.tail.count - settings.memoryTailBytes)
            }
            var hits: [CheckedContinuation<Bool, Never>] = []
            for (id, w) in s.waiters where Self.contains(s.tail, w.needle) {
                hits.append(w.cont)
                s.waiters[id] = nil
            }
            return hits
        }
        for c in matched { c.resume(returning: true) }
    }

    private static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, hay.count >= needle.count else { return needle.isEmpty }
        let first = needle[0]
        var i = 0
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == first && hay[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    /// The recent console output (at most ``ConsoleSettings/memoryTailBytes``).
    var tail: String {
        String(decoding: state.withLockedValue { $0.tail }, as: UTF8.self)
    }

    /// Waits until the recent output contains `text`. Returns false if the console
    /// closed (QEMU exited) or `timeout` passed first.
    func wait(for text: String, timeout: Duration) async -> Bool {
        let needle = Array(text.utf8)
        let id = state.withLockedValue { s -> Int in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        let timer = Task { [state] in
            do { try await Task.sleep(for: timeout) } catch { return }
            let w = state.withLockedValue { s in
                let w = s.waiters.removeValue(forKey: id)
                if w == nil { s.expired.insert(id) }
                return w
            }
            w?.cont.resume(returning: false)
        }
        defer {
            timer.cancel()
            state.withLockedValue { _ = $0.expired.remove(id) }
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let outcome = state.withLockedValue { s -> Bool? in
                    if Self.contains(s.tail, needle) { return true }
                    if s.finished || Task.isCancelled || s.expired.contains(id) { return false }
                    s.waiters[id] = (needle, c)
                    return nil
                }
                if let outcome { c.resume(returning: outcome) }
            }
        } onCancel: { [state] in
            let w = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            w?.cont.resume(returning: false)
        }
    }

    /// Writes `text` to the guest's console input. Fails once the console is closed.
    func write(_ text: String) throws {
        try state.withLockedValue { s in
            guard s.fd >= 0 else { throw QemuboxError(.invalidState, "console is closed") }
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let n = bytes.withUnsafeBytes { Glibc.write(s.fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw QemuboxError(.system, "console write: \(String(cString: strerror(errno)))")
                }
                bytes = bytes.dropFirst(n)
            }
        }
    }

    /// Waits until the drain thread has seen end of file and closed everything.
    func waitFinished() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let already = done.withLockedValue { d -> Bool in
                guard d != nil else { return true }
                d?.append(c)
                return false
            }
            if already { c.resume() }
        }
    }
}
