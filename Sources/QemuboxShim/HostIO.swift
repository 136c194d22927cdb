#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import QemuboxKit
import VsockTransport

/// The host side of one process's stdio: containerd's FIFOs (or `file://` and
/// `binary://` URIs) joined to the process's yamux streams.
///
/// stdout/stderr FIFOs are opened read-write, which never blocks and keeps them
/// usable while containerd restarts (a write end without a reader would fail
/// with EPIPE). The stdin FIFO is opened read-only by the pump thread (blocking
/// until containerd's client opens its end), so the client closing it is the
/// process's end-of-file; containerd's `CloseIO` ends it too (``closeStdin()``),
/// after the bytes already in the FIFO were relayed.
final class HostIO: ProcessIO {
    /// The paths/URIs as containerd gave them.
    let stdin: String
    let stdout: String
    let stderr: String
    let terminal: Bool

    private let stdinPath: String?
    private let stdoutFD: Int32?
    private let stderrFD: Int32?
    private let binary: NIOLockedValueBox<pid_t?>
    private let stdinClosing = NIOLockedValueBox(false)
    private let outputTask = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let closed = NIOLockedValueBox(false)
    /// stdout/stderr descriptors still open (each is closed once its stream ended, or at ``close()``).
    private let openOutputs: NIOLockedValueBox<Set<Int32>>
    private let logger: Logger

    private init(stdin: String, stdout: String, stderr: String, terminal: Bool, fds: (Int32?, Int32?, Int32?),
                 binary: pid_t?, logger: Logger) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal
        stdinPath = stdin.isEmpty ? nil : stdin
        (_, stdoutFD, stderrFD) = fds
        openOutputs = NIOLockedValueBox(Set([fds.1, fds.2].compactMap { $0 }))
        self.binary = NIOLockedValueBox(binary)
        self.logger = logger
    }

    /// Opens the host ends. `binary://` drivers are started (and waited for) here.
    static func open(stdin: String, stdout: String, stderr: String, terminal: Bool, containerID: String,
                     namespace: String, logger: Logger) throws -> HostIO {
        var opened: [Int32] = []
        do {
            if !stdin.isEmpty && stdin.contains("://") {
                throw ShimError(.invalidArgument, "stdin must be a FIFO path, not \(stdin)")
            }
            let input: Int32? = nil
            var out: Int32?, err: Int32?, binary: pid_t?
            if stdout.hasPrefix("binary://") {
                let started = try startBinary(stdout, containerID: containerID, namespace: namespace)
                (out, err, binary) = (started.stdout, started.stderr, started.pid)
                opened += [started.stdout, started.stderr]
            } else {
                out = try stdout.isEmpty ? nil : openPath(stdout, output: true)
                if let out { opened.append(out) }
                if !terminal && !stderr.isEmpty {
                    err = stderr == stdout ? out.map { dup($0) } : try openPath(stderr, output: true)
                    if let err { opened.append(err) }
                }
            }
            return HostIO(stdin: stdin, stdout: stdout, stderr: stderr, terminal: terminal, fds: (input, out, err),
                          binary: binary, logger: logger)
        } catch {
            for fd in opened { Glibc.close(fd) }
            throw error
        }
    }

    /// True when the process needs a stdin stream.
    var wantsStdin: Bool { stdinPath != nil }
    var wantsStdout: Bool { stdoutFD != nil }
    var wantsStderr: Bool { stderrFD != nil }

    /// Starts relaying between the host ends and the guest streams.
    func attach(_ stdio: ProcessStdio) {
        if let path = stdinPath, let stream = stdio.stdin {
            let closing = stdinClosing
            let logger = self.logger
            let thread = Thread { Self.pumpStdin(path: path, stream: stream, closing: closing, logger: logger) }
            thread.name = "qemubox-stdin"
            thread.start()
        }
        let out = stdoutFD, err = stderrFD
        let openOutputs = self.openOutputs
        // Once a stream ends, its FIFO is closed: we hold it read-write, so its reader sees
        // end-of-file only then (CRI's ExecSync waits for it before deleting the process).
        @Sendable func relay(_ stream: YamuxStream, _ fd: Int32) async {
            _ = try? await StdioRelay.copy(from: stream, to: fd)
            Self.closeOutput(fd, openOutputs)
        }
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                if let stream = stdio.stdout, let fd = out {
                    group.addTask { await relay(stream, fd) }
                }
                if let stream = stdio.stderr, let fd = err {
                    group.addTask { await relay(stream, fd) }
                }
            }
        }
        outputTask.withLockedValue { $0 = task }
    }

    /// Ends stdin once the bytes already written to the FIFO are relayed (`CloseIO`).
    func closeStdin() {
        stdinClosing.withLockedValue { $0 = true }
        // A pump still blocked opening the FIFO (no writer yet) is woken by a
        // writer that comes and goes at once.
        if let path = stdinPath {
            let fd = Glibc.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 { Glibc.close(fd) }
        }
    }

    /// Waits until stdout and stderr reached end of stream, at most `timeout`.
    func waitOutput(timeout: Duration) async -> Bool {
        guard let task = outputTask.withLockedValue({ $0 }) else { return true }
        let done = NIOLockedValueBox(false)
        let waiter = Task {
            await task.value
            done.withLockedValue { $0 = true }
        }
        let deadline = ContinuousClock.now + timeout
        while !done.withLockedValue({ $0 }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        waiter.cancel()
        return done.withLockedValue { $0 }
    }

    /// Closes every host descriptor (output relays still running are cut off) and
    /// reaps a `binary://` driver. Idempotent.
    func close() async {
        let first = closed.withLockedValue { was in
            defer { was = true }
            return !was
        }
        guard first else { return }
        _ = await waitOutput(timeout: .milliseconds(500))
        closeStdin()
        outputTask.withLockedValue { $0 }?.cancel()
        for fd in [stdoutFD, stderrFD].compactMap({ $0 }) { Self.closeOutput(fd, openOutputs) }
        if let pid = binary.withLockedValue({ $0 }) {
            _ = await Spawn.reap(pid, timeout: .seconds(5))
        }
    }

    /// Closes an output descriptor once.
    static func closeOutput(_ fd: Int32, _ open: NIOLockedValueBox<Set<Int32>>) {
        let mine = open.withLockedValue { $0.remove(fd) != nil }
        if mine { Glibc.close(fd) }
    }

    // MARK: stdin

    static func pumpStdin(path: String, stream: YamuxStream, closing: NIOLockedValueBox<Bool>, logger: Logger) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            logger.warning("cannot open stdin \(path): \(String(cString: strerror(errno)))")
            Task { try? await stream.closeWrite() }
            return
        }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var draining = false
        while true {
            if !draining && closing.withLockedValue({ $0 }) {
                draining = true
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            }
            if !draining {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, 100)
                if ready == 0 || (ready < 0 && errno == EINTR) { continue }
                if ready < 0 { break }
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || (errno == EAGAIN && !draining) { continue }
                break
            }
            if n == 0 { break }
            do {
                try stream.writeFuture(ByteBuffer(bytes: buffer[0..<n])).wait()
            } catch {
                logger.debug("stdin relay ended: \(error)")
                return
            }
        }
        Task { try? await stream.closeWrite() }
    }

    // MARK: opening

    static func openPath(_ target: String, output: Bool) throws -> Int32 {
        if target.hasPrefix("file://") {
            guard output else { throw ShimError(.invalidArgument, "stdin cannot be a file:// URI (\(target))") }
            let path = URL(string: target)?.path ?? String(target.dropFirst("file://".count))
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw ShimError(.internal, "open \(path): \(String(cString: strerror(errno)))") }
            return fd
        }
        if target.contains("://") && !target.hasPrefix("fifo://") {
            throw ShimError(.invalidArgument, "unsupported stdio URI \(target) (FIFO paths, file:// and binary:// are)")
        }
        let path = target.hasPrefix("fifo://") ? String(target.dropFirst("fifo://".count)) : target
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw ShimError(.internal, "open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Starts a `binary://` logging driver: fd 3 is its stdout pipe, 4 its stderr
    /// pipe, 5 a pipe it closes when ready (containerd's convention).
    static func startBinary(_ uri: String, containerID: String, namespace: String) throws
        -> (pid: pid_t, stdout: Int32, stderr: Int32)
    {
        guard let components = URLComponents(string: uri), !components.path.isEmpty else {
            throw ShimError(.invalidArgument, "malformed binary:// URI \(uri)")
        }
        var arguments: [String] = []
        for item in components.queryItems ?? [] {
            arguments.append(item.name)
            if let value = item.value, !value.isEmpty { arguments.append(value) }
        }
        let out = try Spawn.pipe()
        let err = try Spawn.pipe()
        let ready = try Spawn.pipe()
        defer {
            Glibc.close(out.read)
            Glibc.close(err.read)
        }
        let null = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { Glibc.close(null) }
        var environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        environment += ["CONTAINER_ID=\(containerID)", "CONTAINER_NAMESPACE=\(namespace)"]
        let pid: pid_t
        do {
            pid = try Spawn.run(components.path, arguments, environment: environment,
                                descriptors: [(null, 0), (null, 1), (null, 2), (out.read, 3), (err.read, 4),
                                              (ready.write, 5)],
                                newSession: false)
        } catch {
            Glibc.close(out.write)
            Glibc.close(err.write)
            Glibc.close(ready.read)
            Glibc.close(ready.write)
            throw error
        }
        // Wait (bounded) for the driver to close its ready pipe.
        Glibc.close(ready.write)
        var poller = pollfd(fd: ready.read, events: Int16(POLLIN), revents: 0)
        _ = poll(&poller, 1, 10_000)
        Glibc.close(ready.read)
        return (pid, out.write, err.write)
    }
}
