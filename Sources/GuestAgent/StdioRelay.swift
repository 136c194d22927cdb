#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import NIOCore

/// The stdio of one container process: the yamux streams the host opened and
/// the pipes (or pty) on the process's side, with a thread per direction
/// copying between them.
///
/// stdout/stderr streams are half-closed after the process's last byte; the
/// stdin stream's half-close closes the process's stdin (for a pty, the
/// agent's copy of the terminal). ``abort()`` resets whatever is still open.
final class ProcessIO: Sendable {
    let terminal: Bool
    let stdin: AgentStream?
    let stdout: AgentStream?
    let stderr: AgentStream?

    private struct FDs {
        /// Ends handed to the child (closed once it was spawned).
        var childStdin: CInt = -1
        var childStdout: CInt = -1
        var childStderr: CInt = -1
        /// Our ends.
        var stdinWriter: CInt = -1
        var stdoutReader: CInt = -1
        var stderrReader: CInt = -1
        /// The pty master (kept for resize while the process runs).
        var master: CInt = -1
        /// The stdin thread is inside a write to `stdinWriter` (it then owns the fd:
        /// ``closeStdin()`` asks it to stop instead of closing under it).
        var writingStdin = false
        /// ``closeStdin()`` came while the stdin thread was writing.
        var stdinCloseRequested = false
        /// Wakes the stdin thread out of its wait for room (written by ``closeStdin()``).
        var stdinCancelRead: CInt = -1
        var stdinCancelWrite: CInt = -1
        /// Whether the copying threads own our ends.
        var started = false
    }
    private let fds = NIOLockedValueBox(FDs())
    /// Opened when stdout and stderr reached EOF and their streams were closed.
    let outputDone = Latch()

    private init(terminal: Bool, stdin: AgentStream?, stdout: AgentStream?, stderr: AgentStream?) {
        self.terminal = terminal
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
    }

    /// Claims the named streams (empty key: none) and creates the pipes.
    static func prepare(terminal: Bool, stdin: String, stdout: String, stderr: String,
                        registry: StdioRegistry, timeout: Duration = .seconds(10)) async throws -> ProcessIO {
        let inStream = stdin.isEmpty ? nil : try await registry.take(stdin, timeout: timeout)
        let outStream: AgentStream?
        let errStream: AgentStream?
        do {
            outStream = stdout.isEmpty ? nil : try await registry.take(stdout, timeout: timeout)
            errStream = (stderr.isEmpty || terminal) ? nil : try await registry.take(stderr, timeout: timeout)
        } catch {
            inStream?.stream.reset()
            throw error
        }
        let io = ProcessIO(terminal: terminal, stdin: inStream, stdout: outStream, stderr: errStream)
        guard !terminal else { return io }
        do {
            try io.fds.withLockedValue { fds in
                if inStream != nil {
                    let p = try Command.makePipe()
                    (fds.childStdin, fds.stdinWriter) = (p[0], p[1])
                }
                if outStream != nil {
                    let p = try Command.makePipe()
                    (fds.stdoutReader, fds.childStdout) = (p[0], p[1])
                }
                if errStream != nil {
                    let p = try Command.makePipe()
                    (fds.stderrReader, fds.childStderr) = (p[0], p[1])
                }
            }
        } catch {
            io.abort()
            throw error
        }
        return io
    }

    /// The fds for the child's 0, 1, 2 (-1: /dev/null).
    var childFDs: (CInt, CInt, CInt) {
        fds.withLockedValue { ($0.childStdin, $0.childStdout, $0.childStderr) }
    }

    /// Closes the child's ends (after spawning it) and starts copying. For a
    /// terminal, `master` is the pty master received from crun.
    func start(master: CInt? = nil) {
        let (inFD, outFD, errFD) = fds.withLockedValue { fds -> (CInt, CInt, CInt) in
            for fd in [fds.childStdin, fds.childStdout, fds.childStderr] where fd >= 0 { close(fd) }
            fds.childStdin = -1
            fds.childStdout = -1
            fds.childStderr = -1
            fds.started = true
            if let master, master >= 0 {
                fds.master = master
                fds.stdinWriter = stdin == nil ? -1 : dup(master)
                fds.stdoutReader = stdout == nil ? -1 : dup(master)
            }
            return (fds.stdinWriter, fds.stdoutReader, fds.stderrReader)
        }
        let pending = NIOLockedValueBox(2)
        let finished: @Sendable () -> Void = { [outputDone] in
            let left = pending.withLockedValue { value -> Int in
                value -= 1
                return value
            }
            if left == 0 { outputDone.open() }
        }
        startOutput(fd: outFD, stream: stdout, finished: finished)
        startOutput(fd: errFD, stream: stderr, finished: finished)
        if let stdin, inFD >= 0 { startInput(stream: stdin) }
    }

    private func startOutput(fd: CInt, stream: AgentStream?, finished: @escaping @Sendable () -> Void) {
        guard let stream, fd >= 0 else {
            finished()
            return
        }
        PosixThread.start(name: "stdio-out") {
            var buffer = [UInt8](repeating: 0, count: 32 * 1024)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n < 0, errno == EINTR { continue }
                // EIO: the pty's other side is gone (the process exited).
                guard n > 0 else { break }
                do {
                    try stream.stream.writeFuture(ByteBuffer(bytes: buffer[0..<n])).wait()
                } catch {
                    break
                }
            }
            close(fd)
            _ = try? blockingAwait { try await stream.stream.closeWrite() }
            finished()
        }
    }

    /// Copies the stdin stream into the process. Never holds the lock across a write: a
    /// process that does not read its stdin blocks only this thread, and `CloseIO`,
    /// `ResizePty`, `Delete` (which take the lock) stay prompt. Writes wait for room with
    /// `poll` beside a cancel pipe that ``closeStdin()`` writes to.
    private func startInput(stream: AgentStream) {
        let cancel = try? Command.makePipe()
        fds.withLockedValue { fds in
            fds.stdinCancelRead = cancel?[0] ?? -1
            fds.stdinCancelWrite = cancel?[1] ?? -1
        }
        let piece = terminal ? 64 : Int(PIPE_BUF)
        PosixThread.start(name: "stdio-in") { [self] in
            while true {
                guard let chunk = try? blockingAwait({ try await stream.read() }) else { break }
                let target = fds.withLockedValue { fds -> (fd: CInt, cancel: CInt)? in
                    guard fds.stdinWriter >= 0 else { return nil }
                    fds.writingStdin = true
                    return (fds.stdinWriter, fds.stdinCancelRead)
                }
                guard let target else { break }
                let ok = chunk.withUnsafeReadableBytes { raw in
                    Self.write(raw, to: target.fd, cancel: target.cancel, piece: piece)
                }
                let stop = fds.withLockedValue { fds -> Bool in
                    fds.writingStdin = false
                    return fds.stdinCloseRequested
                }
                if !ok || stop { break }
            }
            fds.withLockedValue { fds in
                fds.writingStdin = false
                for fd in [fds.stdinWriter, fds.stdinCancelRead, fds.stdinCancelWrite] where fd >= 0 { close(fd) }
                fds.stdinWriter = -1
                fds.stdinCancelRead = -1
                fds.stdinCancelWrite = -1
            }
        }
    }

    /// Writes all of `raw` to `fd` in pieces that fit the room `poll` reported (a pipe
    /// with room takes PIPE_BUF bytes without blocking), unless `cancel` becomes readable
    /// or the reader is gone. Returns false when it stopped early.
    private static func write(_ raw: UnsafeRawBufferPointer, to fd: CInt, cancel: CInt, piece: Int) -> Bool {
        guard let base = raw.baseAddress else { return true }
        var offset = 0
        while offset < raw.count {
            var polls = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0),
                         pollfd(fd: cancel, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&polls, cancel >= 0 ? 2 : 1, -1)
            if ready < 0, errno == EINTR { continue }
            guard ready > 0, polls[1].revents == 0 || cancel < 0 else { return false }
            guard polls[0].revents & Int16(POLLOUT) != 0 else { return false }  // POLLERR/POLLHUP: reader gone
            let n = Glibc.write(fd, base + offset, min(piece, raw.count - offset))
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    /// Closes the process's stdin (EOF for a pipe; the agent's copy for a pty). Never
    /// blocks: while the stdin thread is writing, it is told to stop and closes it.
    func closeStdin() {
        fds.withLockedValue { fds in
            guard fds.stdinWriter >= 0 else { return }
            if fds.writingStdin {
                fds.stdinCloseRequested = true
                if fds.stdinCancelWrite >= 0 {
                    var one: UInt8 = 1
                    _ = Glibc.write(fds.stdinCancelWrite, &one, 1)
                }
            } else {
                close(fds.stdinWriter)
                fds.stdinWriter = -1
            }
        }
    }

    /// Sets the terminal size; a no-op without a terminal.
    func resize(width: UInt32, height: UInt32) throws {
        try fds.withLockedValue { fds in
            guard fds.master >= 0 else { return }
            if qb_set_winsize(fds.master, UInt16(clamping: height), UInt16(clamping: width)) != 0 {
                throw GuestAgentError.system("resize pty")
            }
        }
    }

    /// Releases everything still open: child ends, the pty master, and the
    /// streams (reset; output streams already closed are unaffected).
    func abort() {
        fds.withLockedValue { fds in
            if fds.writingStdin, fds.stdinCancelWrite >= 0 {
                fds.stdinCloseRequested = true
                var one: UInt8 = 1
                _ = Glibc.write(fds.stdinCancelWrite, &one, 1)
            }
            for fd in [fds.childStdin, fds.childStdout, fds.childStderr, fds.master] where fd >= 0 { close(fd) }
            if !fds.started {
                for fd in [fds.stdinWriter, fds.stdoutReader, fds.stderrReader] where fd >= 0 { close(fd) }
                fds.stdinWriter = -1
                fds.stdoutReader = -1
                fds.stderrReader = -1
            }
            fds.childStdin = -1
            fds.childStdout = -1
            fds.childStderr = -1
            fds.master = -1
        }
        stdin?.stream.reset()
        if !outputDone.isOpen {
            stdout?.stream.reset()
            stderr?.stream.reset()
        }
    }

    /// Closes the pty master once the process is gone.
    func releaseTerminal() {
        fds.withLockedValue { fds in
            if fds.master >= 0 { close(fds.master) }
            fds.master = -1
        }
    }
}
