#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
import Tracing
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The OCI runtime (crun) as the agent drives it. Every container's state
/// lives under ``root``; crun always uses `pivot_root`.
struct Runtime: Sendable {
    /// crun's binary.
    var binary: String = "/usr/bin/crun"
    /// crun's state directory (`--root`).
    var root: String = "/run/crun"
    /// Where the agent keeps pid files, logs, console sockets and exec specs.
    var stateDirectory: String = "/run/qemubox/state"

    private func base() -> [String] { [binary, "--root", root] }

    /// `crun --version`'s first line.
    func version() async -> String {
        guard let result = try? await Command.run([binary, "--version"]), result.status == 0 else {
            return "crun (unavailable)"
        }
        return result.output.split(separator: "\n").first.map(String.init) ?? "crun"
    }

    /// Runs a crun subcommand whose stdio are not a container's; failures carry crun's stderr.
    @discardableResult
    func run(_ arguments: [String], what: String) async throws -> Command.Result {
        let result = try await withSpan("crun \(arguments.first ?? "")", ofKind: .client) { span in
            span.attributes["process.command_args"] = arguments.joined(separator: " ")
            return try await Command.run(base() + arguments)
        }
        guard result.status == 0 else {
            throw Self.failure(what, status: result.status, message: result.errorOutput)
        }
        return result
    }

    static func failure(_ what: String, status: UInt32, message: String) -> GuestAgentError {
        let text = message.trimmedWhitespace()
        let code: GuestAgentError.Code = text.contains("does not exist") || text.contains("No such") ? .notFound : .internal
        return GuestAgentError(code, "\(what): crun exited with \(status)\(text.isEmpty ? "" : ": \(text)")")
    }

    /// `crun create` or `crun exec -d`: spawns crun with the process's stdio,
    /// waits for it, and returns the process's pid (from the pid file) and the
    /// pty master when `terminal`. `since` is the reaper mark taken before.
    func launch(_ arguments: [String], key: String, io: ProcessIO, what: String) async throws -> (pid: Int32, master: CInt?) {
        try ensureDirectory(stateDirectory)
        let pidFile = "\(stateDirectory)/\(key).pid"
        let logFile = "\(stateDirectory)/\(key).log"
        unlink(pidFile)
        unlink(logFile)
        defer { unlink(pidFile) }
        var console: ConsoleSocket?
        var argv = [binary, "--root", root, "--log", "file:\(logFile)"] + arguments.prefix(1)
            + ["--pid-file", pidFile]
        if io.terminal {
            console = try ConsoleSocket(path: "\(stateDirectory)/\(key).console")
            argv += ["--console-socket", console?.path ?? ""]
        }
        argv += arguments.dropFirst()
        let (fd0, fd1, fd2) = io.childFDs
        let result: Command.Result
        do {
            result = try await withSpan("crun \(arguments.first ?? "")", ofKind: .client) { span in
                span.attributes["qemubox.process"] = key
                return try await Command.run(argv, stdin: fd0, stdout: fd1 >= 0 ? fd1 : -1, stderr: fd2 >= 0 ? fd2 : -1)
            }
        } catch {
            console?.cancel()
            throw error
        }
        guard result.status == 0 else {
            console?.cancel()
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            throw Self.failure(what, status: result.status, message: Self.lastLogMessage(log))
        }
        unlink(logFile)
        let master: CInt?
        if let console {
            master = await console.receive(timeout: .seconds(10))
            guard master != nil else {
                throw GuestAgentError(.internal, "\(what): crun sent no terminal on its console socket")
            }
        } else {
            master = nil
        }
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmedWhitespace()), pid > 0 else {
            if let master { close(master) }
            throw GuestAgentError(.internal, "\(what): crun wrote no pid file")
        }
        return (pid, master)
    }

    /// The message of crun's last log line (`--log` writes JSON-ish or plain lines).
    static func lastLogMessage(_ log: String) -> String {
        guard let line = log.split(separator: "\n").last(where: { !$0.isEmpty }) else { return "" }
        if let entry = try? JSONDecoder().decode(LogEntry.self, from: Data(line.utf8)) {
            return entry.msg
        }
        return String(line)
    }

    /// The one field of a crun log line vminitd reports.
    private struct LogEntry: Decodable {
        let msg: String
    }
}

/// mkdir -p.
func ensureDirectory(_ path: String, mode: mode_t = 0o755) throws {
    var current = ""
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, mode) != 0, errno != EEXIST {
            throw GuestAgentError.system("mkdir \(current)")
        }
    }
}

/// The unix socket crun sends a container's pty master to (`--console-socket`).
final class ConsoleSocket: Sendable {
    let path: String
    private let listener: CInt
    private let result = NIOLockedBox<CInt?>(nil)
    private let done = Latch()

    init(path: String) throws {
        self.path = path
        unlink(path)
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw GuestAgentError.system("console socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            close(fd)
            throw GuestAgentError(.invalidArgument, "console socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            let err = errno
            close(fd)
            throw GuestAgentError.system("console socket \(path)", errno: err)
        }
        listener = fd
        let result = self.result
        let done = self.done
        PosixThread.start(name: "console-socket") {
            let connection = qb_accept_cloexec(fd)
            if connection >= 0 {
                let master = qb_recv_fd(connection)
                close(connection)
                if master >= 0 { result.set(master) }
            }
            done.open()
        }
    }

    /// The received master, waiting up to `timeout`; closes the socket.
    func receive(timeout: Duration) async -> CInt? {
        if !(await done.wait(timeout: timeout)) {
            shutdown(listener, CInt(SHUT_RDWR))
            _ = await done.wait(timeout: .seconds(1))
        }
        finish()
        return result.get()
    }

    /// Gives up (crun failed): unblocks the accepting thread and closes.
    func cancel() {
        shutdown(listener, CInt(SHUT_RDWR))
        Task { [self] in
            _ = await done.wait(timeout: .seconds(2))
            finish()
            if let fd = result.get() { close(fd) }
        }
    }

    private func finish() {
        close(listener)
        unlink(path)
    }
}
